"""The lesson markdown format, and the real lesson files."""
from __future__ import annotations

import re

import pytest

from core.course import APP_DIR, LESSONS, lesson_files_exist, neighbours
from core.lessons import BadSlot, Figure, Markdown, Question, QuizScore, load_lesson, parse_lesson

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


@pytest.mark.parametrize("entry", [e for e in LESSONS if e.is_built], ids=lambda e: e.markdown)
def test_every_built_page_has_a_builder_for_every_slot_in_its_lesson(entry):
    page = open(APP_DIR / entry.page, encoding="utf-8").read()
    builders = set(re.findall(r'"([a-z\-]+)": [a-z_]+,', page))
    slots = set(load_lesson(entry.markdown).figure_names)
    assert slots and slots <= builders, slots - builders


def test_neighbours():
    from core.course import MAP

    assert neighbours(0) == (None, LESSONS[0])  # the map of the model comes before lesson 1
    assert neighbours(1) == (MAP, LESSONS[1])
    assert neighbours(7) == (LESSONS[5], None)
