"""The course's lessons, in order: which markdown file and which page each one has.

Titles and one-line summaries live in each lesson's markdown front matter, so instructors
change them without touching Python. A lesson whose page does not exist yet is "coming soon".
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.lessons import LESSONS_DIR, load_lesson

APP_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class LessonEntry:
    number: int
    markdown: str  # file name in lessons/
    page: str  # page script, relative to the app folder

    @property
    def is_built(self) -> bool:
        return (APP_DIR / self.page).is_file()

    @property
    def url_path(self) -> str:
        """The page's address: its file name without the number ("Feed_forward").

        The pages' folder is not called `pages/`: Streamlit reads a folder of that name as an old-style
        multipage app, and a server whose first visitor came by a lesson's address named the pages in
        every sidebar by their file names ("Feed forward") instead of their titles."""
        return Path(self.page).stem.split("_", 1)[1]

    @property
    def title(self) -> str:
        return load_lesson(self.markdown).title

    @property
    def summary(self) -> str:
        return load_lesson(self.markdown).summary


LESSONS: tuple[LessonEntry, ...] = (
    LessonEntry(1, "01_tokenization.md", "lesson_pages/1_Tokenization.py"),
    LessonEntry(2, "02_embeddings.md", "lesson_pages/2_Embeddings.py"),
    LessonEntry(3, "03_positional_encoding.md", "lesson_pages/3_Positional_encoding.py"),
    LessonEntry(4, "04_attention.md", "lesson_pages/4_Attention.py"),
    LessonEntry(5, "05_feed_forward.md", "lesson_pages/5_Feed_forward.py"),
    LessonEntry(6, "06_sampling.md", "lesson_pages/6_Sampling.py"),
    LessonEntry(7, "07_training.md", "lesson_pages/7_Training.py"),
)


# The map of the whole model comes first: a newcomer sees every part before lesson 1 names them.
MAP = LessonEntry(0, "00_model_map.md", "lesson_pages/0_The_model_map.py")
COURSE: tuple[LessonEntry, ...] = (MAP,) + LESSONS


def lesson(number: int) -> LessonEntry:
    return next(entry for entry in COURSE if entry.number == number)


def neighbours(number: int) -> tuple[LessonEntry | None, LessonEntry | None]:
    """The previous and next pages of lesson `number` in the course (None at either end)."""
    index = [entry.number for entry in COURSE].index(number)
    previous = COURSE[index - 1] if index > 0 else None
    following = COURSE[index + 1] if index + 1 < len(COURSE) else None
    return previous, following


def lesson_files_exist() -> bool:
    return all((LESSONS_DIR / entry.markdown).is_file() for entry in COURSE)
