"""The lesson markdown format, and the real lesson files."""
from __future__ import annotations

import re

from core.course import COURSE, LESSONS, lesson, lesson_files_exist, neighbours
from core.lessons import LESSONS_DIR, Aside, BadSlot, Figure, Markdown, Question, QuizScore, load_lesson, parse_lesson

SAMPLE = """---
title: A lesson
summary: One line.
default_prompt: Hello there
---
Intro text.

{{ figure: token-chips }}
More *text*.
{{figure:other_one}}
{{ figure }}

::: question
Which is right?
- [ ] not this
- [x] this one
---
Because **reasons**.
:::

::: question
An open question?
---
Its answer.
:::
Closing words.
"""


def test_parse_front_matter_slots_and_questions():
    lesson = parse_lesson(SAMPLE)
    assert (lesson.title, lesson.summary) == ("A lesson", "One line.")
    assert lesson.meta["default_prompt"] == "Hello there"
    kinds = [type(part) for part in lesson.parts]
    assert kinds == [Markdown, Figure, Markdown, Figure, BadSlot, Question, Question, Markdown]
    assert lesson.figure_names == ["token-chips", "other_one"]
    choice, open_question = lesson.questions
    assert choice.prompt == "Which is right?"
    assert choice.options == (("not this", False), ("this one", True))
    assert choice.explanation == "Because **reasons**."
    assert open_question.options == () and open_question.explanation == "Its answer."
    assert lesson.parts[-1].text == "Closing words."


def test_quiz_score_counts_answered_and_right_multiple_choice_questions_only():
    lesson = parse_lesson(SAMPLE + SAMPLE.split("Closing words.")[0].split("Intro text.")[1])
    # questions: 0 choice, 1 open, 2 choice, 3 open
    assert lesson.quiz_score({}) == QuizScore(answered=0, right=0, total=2)
    assert lesson.quiz_score({0: "this one", 1: "anything"}) == QuizScore(answered=1, right=1, total=2)
    assert lesson.quiz_score({0: "not this", 2: "this one"}) == QuizScore(answered=2, right=1, total=2)
    assert lesson.quiz_score({0: "an option since removed"}) == QuizScore(answered=0, right=0, total=2)


def test_file_without_front_matter_or_slots_is_all_markdown():
    lesson = parse_lesson("# Title\n\nJust text.\n")
    assert lesson.title == "" and lesson.parts == [Markdown("# Title\n\nJust text.")]


def test_an_aside_is_a_labelled_passage_the_student_opens():
    lesson = parse_lesson("Before.\n::: more How it was built\nThe **long** story.\n\nTwo paragraphs.\n:::\nAfter.\n"
                          "::: question\nWhy?\n---\nBecause.\n:::\n")
    assert lesson.parts[:3] == [Markdown("Before."), Aside("How it was built", "The **long** story.\n\nTwo paragraphs."),
                                Markdown("After.")]
    assert len(lesson.questions) == 1  # an aside is not a question and does not shift the questions' numbers


def test_every_aside_in_the_lessons_is_text_only_and_rendered_closed():
    from streamlit.testing.v1 import AppTest

    from core.course import APP_DIR

    asides = {entry.page: [part for part in load_lesson(entry.markdown).parts if isinstance(part, Aside)]
              for entry in LESSONS if entry.is_built}
    for page_asides in asides.values():
        for aside in page_asides:
            assert "{{" not in aside.text and ":::" not in aside.text  # no slot or question inside
    page, page_asides = next((page, found) for page, found in asides.items() if found)
    app = AppTest.from_file(str(APP_DIR / "Home.py"), default_timeout=90).run()
    app.switch_page(page).run()
    labels = {expander.label: expander for expander in app.expander}
    for aside in page_asides:
        assert aside.label in labels
        assert aside.text.split("\n")[0][:40] in labels[aside.label].markdown[0].value


def test_unclosed_question_takes_the_rest_of_the_file():
    lesson = parse_lesson("::: question\nWhy?\n---\nBecause.")
    assert lesson.questions == [Question("Why?", (), "Because.")]


def test_every_lesson_has_a_markdown_file_with_title_and_summary():
    assert lesson_files_exist()
    for entry in LESSONS:
        assert entry.title and entry.summary, entry.markdown


def test_built_lessons_have_questions_with_one_right_answer_each():
    built = [entry for entry in LESSONS if entry.is_built]
    assert built, "at least lesson 1 is built"
    for entry in built:
        questions = load_lesson(entry.markdown).questions
        assert len(questions) >= 3, entry.markdown
        for question in questions:
            assert question.explanation, question.prompt
            if question.options:
                assert sum(correct for _, correct in question.options) == 1, question.prompt


def test_every_slot_of_every_page_has_a_builder_on_that_page(default_runs):
    """The real mapping each page hands to course_ui.render_lesson (recorded while it ran), not its
    source text: every figure slot its markdown file uses must have a builder there."""
    _, builders = default_runs
    files = {"Home.py": "home.md"} | {entry.page: entry.markdown for entry in COURSE if entry.is_built}
    assert set(builders) == set(files)  # every page ran and handed its figures over
    for page, markdown in files.items():
        slots = set(load_lesson(markdown).figure_names)
        assert slots and slots <= builders[page], (page, slots - builders[page])


def readme_slots() -> dict[str, set[str]]:
    """The figure slots lessons/README.md lists for instructors, by page: the table of lesson 1,
    and the "Home page (...): `a`, `b`" and "Lesson N (...): `a` (what it shows), ..." paragraphs."""
    text = (LESSONS_DIR / "README.md").read_text(encoding="utf-8")
    section = text.split("### Figure slots", 1)[1].split("\n### ", 1)[0]
    listed: dict[str, set[str]] = {}
    table_of = None  # the page whose table comes next
    for paragraph in section.split("\n\n"):
        table = re.match(r"Figures of lesson (\d+) ", paragraph)
        if table:
            table_of = lesson(int(table.group(1))).page
            continue
        if table_of and paragraph.startswith("|"):
            listed[table_of] = set(re.findall(r"^\| `([^`]+)` \|", paragraph, flags=re.MULTILINE))
            table_of = None
            continue
        heading = re.match(r"(Home page|Lesson (\d+)) \(", paragraph)
        if heading:
            names = paragraph
            while re.search(r"\([^()]*\)", names):  # what each slot shows, and the lesson's name, in brackets
                names = re.sub(r"\([^()]*\)", "", names)
            page = "Home.py" if heading.group(2) is None else lesson(int(heading.group(2))).page
            listed[page] = set(re.findall(r"`([^`]+)`", names))
    return listed


def test_the_instructors_list_of_figure_slots_is_the_pages(default_runs):
    _, builders = default_runs
    listed = readme_slots()
    assert listed.keys() == builders.keys()
    for page, names in listed.items():
        assert names == builders[page], (page, "listed, no such figure:", names - builders[page],
                                         "figures not listed:", builders[page] - names)


def test_neighbours():
    from core.course import MAP

    assert neighbours(0) == (None, LESSONS[0])  # the map of the model comes before lesson 1
    assert neighbours(1) == (MAP, LESSONS[1])
    assert neighbours(7) == (LESSONS[5], None)
