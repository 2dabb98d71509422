"""The lesson markdown format (documented for instructors in `lessons/README.md`).

A lesson file is markdown with three extras:

    ---                                   front matter: title and one-line summary
    title: Tokenization
    summary: How text becomes the numbers a model reads.
    ---
    {{ figure: token-chips }}             a figure slot, on a line of its own
    {{ figure: qkv | on request: Show … }}  a slot drawn only when the student opens it
    ::: question                          a question block
    Which token ...?
    - [ ] a wrong option
    - [x] the right option                (no options: an open question)
    ---
    Why the right option is right.
    :::
    ::: more How the model got its circuit   a passage the student opens (markdown only)
    The longer story, for those who want it.
    :::

`parse_lesson` turns a file into a list of parts, in order; the page renders markdown
parts as markdown, asks the page's figure builders for figure parts (an unknown name
becomes a visible warning), renders questions as small quizzes and asides as closed sections.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

LESSONS_DIR = Path(__file__).resolve().parent.parent / "lessons"
FIGURE_SLOT = re.compile(r"^\s*\{\{\s*figure\s*:\s*([A-Za-z0-9_\-]+)\s*(?:\|\s*on request\s*:\s*([^{}]*?\S)\s*)?\}\}\s*$")
ANY_SLOT = re.compile(r"^\s*\{\{(.*)\}\}\s*$")
ASIDE = re.compile(r"^:::\s*more\s+(\S.*?)\s*$", re.IGNORECASE)
OPTION = re.compile(r"^\s*[-*]\s*\[( |x|X)\]\s*(.+)$")


@dataclass(frozen=True)
class Markdown:
    text: str


@dataclass(frozen=True)
class Figure:
    name: str
    on_request: str | None = None  # the label of the switch that draws it; None: drawn at once


@dataclass(frozen=True)
class BadSlot:
    """A `{{ ... }}` line that is not a well-formed figure slot."""
    line: str


@dataclass(frozen=True)
class Aside:
    """A passage the student opens: its label, and its markdown (no figure slots or questions in it)."""
    label: str
    text: str


@dataclass(frozen=True)
class Question:
    prompt: str
    options: tuple[tuple[str, bool], ...]  # (text, is_correct); empty for an open question
    explanation: str

    def is_right(self, picked: str) -> bool:
        return dict(self.options).get(picked, False)


@dataclass(frozen=True)
class QuizScore:
    """How a student has done on one lesson's multiple-choice questions so far."""
    answered: int
    right: int
    total: int


@dataclass
class Lesson:
    title: str
    summary: str
    meta: dict[str, str] = field(default_factory=dict)  # every front-matter field
    parts: list = field(default_factory=list)

    @property
    def figure_names(self) -> list[str]:
        return [part.name for part in self.parts if isinstance(part, Figure)]

    @property
    def questions(self) -> list[Question]:
        return [part for part in self.parts if isinstance(part, Question)]

    def quiz_score(self, picked: dict[int, str]) -> QuizScore:
        """`picked` maps a question's number in this lesson (0, 1, …, open questions
        included) to the option the student chose. Options no longer in the lesson (an
        instructor edited it) do not count."""
        chosen = [(question, picked.get(number)) for number, question in enumerate(self.questions)
                  if question.options]
        answered = [(question, text) for question, text in chosen if text in dict(question.options)]
        return QuizScore(answered=len(answered), right=sum(q.is_right(text) for q, text in answered),
                         total=len(chosen))


def _front_matter(lines: list[str]) -> tuple[dict[str, str], list[str]]:
    if not lines or lines[0].strip() != "---":
        return {}, lines
    for end in range(1, len(lines)):
        if lines[end].strip() == "---":
            meta = {}
            for line in lines[1:end]:
                if ":" in line:
                    key, value = line.split(":", 1)
                    meta[key.strip().lower()] = value.strip()
            return meta, lines[end + 1:]
    return {}, lines


def _question(block: list[str]) -> Question:
    split = next((i for i, line in enumerate(block) if line.strip() == "---"), len(block))
    head, explanation = block[:split], "\n".join(block[split + 1:]).strip()
    prompt_lines, options = [], []
    for line in head:
        match = OPTION.match(line)
        if match:
            options.append((match.group(2).strip(), match.group(1).lower() == "x"))
        else:
            prompt_lines.append(line)
    return Question("\n".join(prompt_lines).strip(), tuple(options), explanation)


def parse_lesson(text: str) -> Lesson:
    meta, lines = _front_matter(text.replace("\r\n", "\n").split("\n"))
    parts: list = []
    buffer: list[str] = []

    def flush() -> None:
        if "".join(buffer).strip():
            parts.append(Markdown("\n".join(buffer).strip("\n")))
        buffer.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        aside = ASIDE.match(line.strip())
        if aside or line.strip().lower() == "::: question":
            flush()
            end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == ":::"), len(lines))
            parts.append(Aside(aside.group(1), "\n".join(lines[i + 1:end]).strip("\n")) if aside
                         else _question(lines[i + 1:end]))
            i = end + 1
            continue
        figure = FIGURE_SLOT.match(line)
        if figure:
            flush()
            parts.append(Figure(figure.group(1), figure.group(2)))
        elif ANY_SLOT.match(line):
            flush()
            parts.append(BadSlot(line.strip()))
        else:
            buffer.append(line)
        i += 1
    flush()
    return Lesson(title=meta.get("title", ""), summary=meta.get("summary", ""), meta=meta, parts=parts)


def load_lesson(file_name: str) -> Lesson:
    """A lesson as its file says now: parsed again only when the file changes (an instructor's edit
    shows at the next rerun), not at every rerun of every page that names it. Shared: never change one."""
    path = LESSONS_DIR / file_name
    stat = path.stat()
    return _parsed_lesson(path, stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=64)
def _parsed_lesson(path: Path, mtime_ns: int, size: int) -> Lesson:
    return parse_lesson(path.read_text(encoding="utf-8"))
