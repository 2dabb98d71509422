"""A class at once: `python bench/bench_class.py [students ...]`. Prints figures; asserts nothing.

Starts the real app (`streamlit run Home.py`, bundled model) and opens one headless Chromium
tab per student, each its own Streamlit session. Every student types a different prompt (so
no two share a cached trace: the worst case), then the whole class clicks through lessons
1-6 together: all click the same sidebar link at the same moment, and each tab's time is
measured from the click until its lesson is drawn (its main figure is on screen and the
script has finished). Printed per class size and lesson: the median and the slowest
student's wait, and the CPU time the app process spent serving the whole class that lesson;
then the app's peak memory.

The browser runs on the same two cores as the app and draws every tab's Plotly figures
(measured for one student: Chromium spends 1-3 s of CPU per lesson, the app 0.3-0.6 s), so
with many tabs the waits mostly measure the browser: an upper bound on what a class, each
student drawing on their own computer, would see. The app's CPU time is the server's share.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import course  # noqa: E402
from tests.streamlit_server import CHROMIUM_FLAGS, STUDENT_BROWSERS, chromium_path, running_app, wait_until_idle  # noqa: E402

PROMPTS = ["Once upon a time, there was a girl named {name}. {name} had a red ball. One day,",
           "The cat sat on the mat. {name} saw the cat and",
           "{name} went to the park with her dog. The dog",
           "One day, {name} found a small box under the"]
NAMES = ["Mia", "Tom", "Lily", "Ben", "Zoe", "Sam", "Ava", "Max", "Ella", "Leo", "Ruby", "Jack", "Nora", "Finn",
         "Ivy", "Owen"]
# lesson link -> JavaScript that is true once that lesson's main figure is drawn
LESSONS = {
    "Tokenization": "document.querySelector('.gb-chip')",
    "Embeddings": "[...document.querySelectorAll('svg .gtitle')].some(t => t.textContent.includes('token embedding matrix'))",
    "Positional encoding": "[...document.querySelectorAll('svg .gtitle')].some(t => t.textContent.includes('input to block 0'))",
    "Attention": "[...document.querySelectorAll('svg .gtitle')].some(t => t.textContent.includes('Attention flow'))",
    "Feed forward": "[...document.querySelectorAll('svg .gtitle')].some(t => t.textContent.includes('Direct contributions'))",
    "Sampling": "[...document.querySelectorAll('svg .gtitle')].some(t => t.textContent.includes('Where the logit of'))",
}
DRAWN = "() => !!({figure}) && !document.querySelector('[data-testid=\"stStatusWidget\"]') && " \
        "[...document.querySelectorAll('h1')].some(h => h.textContent.includes('{title}'))"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def class_session(url: str, app_pid: int, browser, students: int) -> dict[str, tuple[list[float], float]]:
    """Per lesson: each student's wait (seconds), and the app's CPU seconds for the class."""
    pages = []
    for index in range(students):
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.goto(url)
        page.get_by_text("The lessons").first.wait_for(timeout=120_000)
        wait_until_idle(page, timeout_ms=120_000)
        prompt = PROMPTS[index % len(PROMPTS)].format(name=NAMES[index % len(NAMES)])
        box = page.get_by_role("textbox", name="Your prompt")
        box.fill(prompt)
        box.press("Control+Enter")
        wait_until_idle(page, timeout_ms=120_000)
        pages.append(page)
    seconds: dict[str, tuple[list[float], float]] = {}
    for lesson, figure in LESSONS.items():
        titles = {"Tokenization": "Tokenization", "Embeddings": "Embeddings", "Positional encoding": "Positional",
                  "Attention": "Attention", "Feed forward": "Feed-forward", "Sampling": "From logits"}
        drawn = DRAWN.format(figure=figure, title=titles[lesson])
        sidebar_name = {"Feed forward": course.LESSONS[4].title, "Sampling": course.LESSONS[5].title}.get(lesson, lesson)
        links = [page.get_by_role("link", name=sidebar_name, exact=True).first for page in pages]
        cpu_before = cpu_seconds(app_pid)
        began = time.perf_counter()
        for link in links:
            link.click(no_wait_after=True)
        finished: dict[int, float] = {}
        while len(finished) < len(pages):
            for index, page in enumerate(pages):
                if index not in finished and page.evaluate(drawn):
                    finished[index] = time.perf_counter() - began
            if time.perf_counter() - began > 180:
                raise TimeoutError(f"{lesson}: {len(pages) - len(finished)} students never saw the lesson")
            time.sleep(0.02)
        seconds[lesson] = list(finished.values()), cpu_seconds(app_pid) - cpu_before
    for page in pages:
        page.context.close()
    return seconds


def main() -> None:
    from playwright.sync_api import sync_playwright

    sizes = [int(arg) for arg in sys.argv[1:]] or [1, 5, 10]
    if chromium_path(STUDENT_BROWSERS) is None:
        raise SystemExit("Debian's chromium is needed: apt-get install chromium")
    print("== a class clicking through lessons 1-6 together (bundled model, a new prompt per student; "
          "seconds from the click until the lesson is drawn: median / slowest student, and the app's CPU "
          "seconds for the whole class) ==")
    for students in sizes:
        with running_app() as (url, process, _), sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium_path(STUDENT_BROWSERS), args=CHROMIUM_FLAGS, headless=True)
            seconds = class_session(url, process.pid, browser, students)
            browser.close()
            status = Path(f"/proc/{process.pid}/status").read_text()
            peak_mb = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024
        print(f"{students} student(s), app peak memory {peak_mb:.0f} MB", flush=True)
        for lesson, (times, app_cpu) in seconds.items():
            print(f"    {lesson:20s} wait {statistics.median(times):6.2f} / {max(times):6.2f} s   "
                  f"app CPU {app_cpu:6.2f} s ({app_cpu / students:.2f} s a student)", flush=True)


if __name__ == "__main__":
    main()
