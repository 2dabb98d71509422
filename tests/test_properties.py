"""Property-based tests (Hypothesis) for the pieces with edge cases: top-p with ties, the lesson
parser, and a prompt's way to tokens with any Unicode at all. Each property is stated from the
definition, not from the implementation; the examples are few and the deadline off, to stay quick."""
from __future__ import annotations

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.lessons import ANY_SLOT, OPTION, Figure, Markdown, Question, parse_lesson
from core.sampling import MASS_TOLERANCE, Strategy, funnel, top_p_keep
from core.tokenization import END_OF_TEXT, decode_piece, gpt2_tokenizer, prompt_tokens, symbols_to_bytes

QUICK = settings(max_examples=60, deadline=None)


# --- top-p with ties ------------------------------------------------------------------------------
# Small integer weights make exact ties common; a weight of 0 is a token with probability 0.
weights = st.lists(st.integers(0, 6), min_size=1, max_size=30).filter(lambda w: sum(w) > 0)
cutoffs = st.floats(0.01, 1.0)


def log_probs_of(weights: list[int]) -> torch.Tensor:
    probs = torch.tensor(weights, dtype=torch.float64) / sum(weights)  # [vocab]
    return probs.log()  # -inf for the zero weights


@QUICK
@given(weights, cutoffs)
@example([1, 1, 1, 1], 0.5)  # four tied tokens: half the mass is two of them, but a tie is kept whole
@example([3, 2, 2, 1], 0.6)  # the cut falls inside a tie
@example([5, 0, 5], 0.3)
def test_top_p_keeps_the_smallest_top_set_reaching_p_and_never_splits_a_tie(weights, p):
    probs = [w / sum(weights) for w in weights]
    keep = top_p_keep(log_probs_of(weights), p).tolist()
    kept = [q for q, k in zip(probs, keep) if k]
    dropped = [q for q, k in zip(probs, keep) if not k]
    assert kept and max(kept) == max(probs)  # the most likely token is always kept
    assert all(q > 0 for q in kept)  # a token of probability 0 never is
    assert all(d < min(kept) for d in dropped)  # the most likely ones, and no tie is split
    if any(q > 0 for q in dropped):
        assert sum(kept) >= p - MASS_TOLERANCE  # enough: the kept mass reaches p
    above_lowest = sum(q for q in kept if q > min(kept))
    assert above_lowest < p - MASS_TOLERANCE or above_lowest == 0  # smallest: without its last tie group it would not


@QUICK
@given(weights, cutoffs, st.integers(0, 8))
def test_the_funnel_samples_from_what_top_k_and_top_p_keep_renormalised(weights, p, k):
    logits = log_probs_of(weights).float()  # any logits: log-weights (−inf for 0) work as well as any
    stage = funnel(logits, Strategy(temperature=1.0, top_k=k, top_p=p))
    keep = stage.kept_by_top_p
    assert keep.any() and not (keep & ~stage.kept_by_top_k).any()  # top-p only narrows top-k's set
    final = stage.final.exp()
    assert float(final[keep].sum()) == pytest.approx(1.0, abs=1e-9) and float(final[~keep].sum()) == 0.0
    ratios = final[keep] / stage.log_probs.exp()[keep]  # the kept tokens keep their proportions
    assert torch.allclose(ratios, ratios[0].expand_as(ratios))


# --- the lesson parser ----------------------------------------------------------------------------
line_text = st.text(st.characters(exclude_characters="\n\r", exclude_categories=("Cs",)), min_size=1, max_size=30)
markdown_line = line_text.filter(lambda s: s.strip() and not ANY_SLOT.match(s) and s.strip().lower() != "::: question")
slot_name = st.from_regex(r"[A-Za-z0-9_\-]{1,20}", fullmatch=True)
prompt_line = markdown_line.filter(lambda s: s.strip() not in ("---", ":::") and not OPTION.match(s))
explanation_line = line_text.filter(lambda s: s.strip() != ":::")


@st.composite
def questions(draw) -> tuple[list[str], Question]:
    prompt = draw(st.lists(prompt_line, min_size=1, max_size=3))
    options = draw(st.lists(st.tuples(line_text.filter(str.strip), st.booleans()), max_size=4))
    explanation = draw(st.lists(explanation_line, max_size=3))
    lines = ["::: question", *prompt, *(f"- [{'x' if right else ' '}] {text}" for text, right in options),
             "---", *explanation, ":::"]
    return lines, Question("\n".join(prompt).strip(), tuple((text.strip(), right) for text, right in options),
                           "\n".join(explanation).strip())


@st.composite
def lessons(draw) -> tuple[str, dict, list]:
    title, summary = draw(line_text.filter(str.strip)), draw(line_text.filter(str.strip))
    lines, parts = ["---", f"title: {title}", f"summary: {summary}", "---"], []
    for kind in draw(st.lists(st.sampled_from(["markdown", "figure", "question"]), max_size=8)):
        if kind == "markdown":
            text = draw(st.lists(markdown_line, min_size=1, max_size=3))
            lines += text
            if parts and isinstance(parts[-1], Markdown):  # consecutive text is one markdown part
                parts[-1] = Markdown(parts[-1].text + "\n" + "\n".join(text))
            else:
                parts.append(Markdown("\n".join(text)))
        elif kind == "figure":
            name = draw(slot_name)
            lines.append(draw(st.sampled_from(["{{ figure: %s }}", "{{figure:%s}}", "  {{ figure :  %s  }}  "])) % name)
            parts.append(Figure(name))
        else:
            question_lines, question = draw(questions())
            lines += question_lines
            parts.append(question)
    return "\n".join(lines), {"title": title.strip(), "summary": summary.strip()}, parts


@QUICK
@given(lessons())
def test_a_lesson_file_parses_into_exactly_the_parts_it_was_written_from(lesson):
    text, meta, parts = lesson
    parsed = parse_lesson(text)
    assert (parsed.title, parsed.summary) == (meta["title"], meta["summary"])
    assert parsed.parts == parts
    assert parse_lesson(text.replace("\n", "\r\n")).parts == parts  # Windows line ends read the same


@QUICK
@given(st.text(max_size=300))
def test_any_text_at_all_parses_without_error_into_non_empty_parts(text):
    lesson = parse_lesson(text)
    assert all(part.text.strip() for part in lesson.parts if isinstance(part, Markdown))


# --- a prompt's way to tokens ---------------------------------------------------------------------
prompts = st.text(st.characters(exclude_categories=("Cs",)), max_size=60) | st.builds(
    lambda a, b: a + END_OF_TEXT + b, st.text(max_size=10), st.text(max_size=10))


@pytest.fixture(scope="module", params=["course", "gpt2"])
def tokenizer(request, bundled):
    return bundled.tokenizer if request.param == "course" else gpt2_tokenizer()


@QUICK
@given(prompt=prompts)
@example(prompt="")
@example(prompt="a\x00b\u200b\u202e🙂👍🏽 e\u0301" + "\u0301" * 50)
def test_any_prompt_becomes_tokens_that_spell_it_exactly(tokenizer, prompt):
    tokens = prompt_tokens(tokenizer, prompt)
    assert (tokens == []) == (prompt == "")
    assert symbols_to_bytes("".join(t.symbols for t in tokens)) == prompt.encode("utf-8")  # no byte lost or added
    assert [t.id for t in tokens] == tokenizer.convert_tokens_to_ids([t.symbols for t in tokens])
    assert all(0 <= t.id < len(tokenizer) and t.text == decode_piece(t.symbols) for t in tokens)
    eos = tokenizer.convert_tokens_to_ids(END_OF_TEXT)
    assert eos not in [t.id for t in tokens]  # a typed "<|endoftext|>" is text, not the control token


@given(st.text(max_size=60))
@example("<b>Mia</b> & <script>alert(1)</script>")
@settings(max_examples=200, deadline=None)
def test_a_chart_named_for_a_screen_reader_says_the_students_text_as_typed(text):
    """A figure's title carries the student's text escaped for Plotly; the chart's accessible name
    (core.figures.plain_text) gives that text back as written, with no tag of it dropped."""
    from core.figures import plain_text, plotly_text, visible

    title = f"Where the logit of {plotly_text(text)} comes from"
    assert plain_text(title) == " ".join(f"Where the logit of {visible(text)} comes from".split())


def markdown_shows(source: str) -> str:
    """The text markdown (CommonMark) shows for `source` made only of text, backslash escapes and
    entity references, read left to right as CommonMark does: a backslash before ASCII punctuation
    gives that character, and an escaped character never starts an entity."""
    import html
    import re

    reference = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{0,31});")
    shown, index = [], 0
    while index < len(source):
        if source[index] == "\\" and index + 1 < len(source) and re.match(r"[!-/:-@\[-`{-~]", source[index + 1]):
            shown.append(source[index + 1])
            index += 2
        elif source[index] == "&" and (entity := reference.match(source, index)):
            shown.append(html.unescape(entity.group()))
            index = entity.end()
        else:
            shown.append(source[index])
            index += 1
    return "".join(shown)


@given(st.text(max_size=60))
@example("don't say \"hi\" & <b>Mia</b>'s # [x](javascript:alert(1))")
@settings(max_examples=200, deadline=None)
def test_a_students_text_in_markdown_shows_as_typed(text):
    """A hostile-student pass: every apostrophe in the student's text showed as `&#x27;` (lesson 6's
    guess "don't", lesson 1's merges, a folder named "Mia's model"). Escaped for markdown, the text
    shows exactly as typed, and no tag, link or heading can come of it (no unescaped < or ( or #)."""
    import re

    from core.figures import md_escape

    escaped = md_escape(text)
    assert markdown_shows(escaped) == text
    assert not re.search(r"(?<!\\)[<>\[\]()#*_`$]", escaped)
