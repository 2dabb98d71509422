"""Start the real app (`streamlit run Home.py`) on a free port and drive it with headless Chromium;
and, for AppTest, compile each script once as the real app does and open every section a lesson
draws on request.

Shared by the tests and the benchmarks; importing it changes nothing (tests/conftest.py, which
sets the tests' one PyTorch thread, is not for the benchmarks: their app runs as a student's does).
Playwright drives Debian's Chromium (`playwright install` cannot download a browser on our machines):
the tests prefer its headless shell (`chromium-headless-shell`, the same Blink without the desktop
browser around it), the benches the full `chromium` a student's browser is.
"""
from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

APP_DIR = Path(__file__).resolve().parent.parent
ARTIFACTS = APP_DIR / "tests" / "artifacts"  # screenshots, and what a failed browser test left behind
# a raised exception, an st.error, and a formula KaTeX could not read (a lesson's $…$ drawn as red source)
ERROR_BOXES = '[data-testid="stException"], [data-testid="stAlertContentError"], .katex-error'
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# The tests' browser: Debian's headless shell if installed, else its full chromium. The shell draws
# the same pages with the same Blink and cost a third less of the browser tests' CPU (one pair of runs
# of tests/test_browser.py: 142 CPU-s against 162, its browser process 8 against 34).
TEST_BROWSERS = ("chromium-headless-shell", "chromium", "chromium-browser")
STUDENT_BROWSERS = ("chromium", "chromium-browser")  # what the benches measure: the browser a student has
INSTALL_BROWSER = "apt-get install chromium-headless-shell"


def chromium_path(names: tuple[str, ...] = TEST_BROWSERS) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return None


REQUIRE_BROWSER = "GLASSBOX_REQUIRE_BROWSER"  # "1": a missing browser fails the browser tests (.ci/run sets it)


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if chromium_path() is None:
        return f"the browser tests need Debian's chromium, which is not installed: {INSTALL_BROWSER}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the browser tests need Playwright, which is not installed: pip install -r requirements.txt"
    return None


def require_browser() -> None:
    """Skip (say why and how to install) when the browser is missing; fail instead where the run
    requires the browser tests (GLASSBOX_REQUIRE_BROWSER=1, as .ci/run sets)."""
    import pytest

    reason = browser_missing()
    if reason is None:
        return
    if os.environ.get(REQUIRE_BROWSER) == "1":
        pytest.fail(f"{reason} ({REQUIRE_BROWSER}=1: this run requires them)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_health(url: str, process: subprocess.Popen | None = None, timeout: float = 60) -> float:
    """Seconds until the app at `url` answers ok at /_stcore/health (raises at once if its `process`,
    when known, has exited)."""
    began = time.perf_counter()
    while time.perf_counter() - began < timeout:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {process.returncode}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1) as reply:
                if reply.read().strip() == b"ok":
                    return time.perf_counter() - began
        time.sleep(0.05)
    raise TimeoutError(f"streamlit at {url} did not become healthy")


@contextlib.contextmanager
def running_app(port: int | None = None, wait: bool = True):
    """Yields (url, process, seconds until healthy), or (url, process, None) at once without `wait`
    (whoever uses it then waits: wait_for_health). The server's output goes to a file,
    tests/artifacts/server-<port>.log, kept when it holds a traceback and removed otherwise: a pipe
    no one reads would stop the server at its first write once 64 KiB had filled it."""
    port = port or free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ARTIFACTS.mkdir(exist_ok=True)
    url = f"http://127.0.0.1:{port}"
    log = server_log(url)
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "Home.py", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
             "--client.showErrorDetails", "full"],
            cwd=APP_DIR, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        yield url, process, wait_for_health(url, process) if wait else None
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        if not server_traceback(url) and not os.environ.get("GLASSBOX_KEEP_SERVER_LOG"):
            log.unlink(missing_ok=True)  # (missing: someone cleared tests/artifacts meanwhile)


_driver = None


def playwright_driver():
    """This process's Playwright (its driver is a Node.js process), started at the first browser
    and stopped when the process ends: a driver started for each browser cost ~0.4 s of CPU every
    time. Playwright's sync API belongs to the thread that started it; the tests and the benches
    drive their browsers from their main thread."""
    global _driver
    if _driver is None:
        from playwright.sync_api import sync_playwright

        _driver = sync_playwright().start()
        atexit.register(_stop_driver)
    return _driver


def _stop_driver() -> None:
    with contextlib.suppress(Exception):  # at exit: a driver already gone is no matter
        _driver.stop()


def launch_chromium(names: tuple[str, ...] = TEST_BROWSERS):
    """A new headless Debian chromium (its own profile, cookies and cache): the first of `names` installed."""
    executable = chromium_path(names)
    if executable is None:
        raise RuntimeError(f"Debian's chromium is not installed (apt-get install {names[0]})")
    return playwright_driver().chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS, headless=True)


@contextlib.contextmanager
def browser_page(names: tuple[str, ...] = TEST_BROWSERS):
    """A page of a new browser (launch_chromium's), closed afterwards."""
    browser = launch_chromium(names)
    try:
        yield browser.new_page(viewport={"width": 1400, "height": 1000})
    finally:
        browser.close()


def no_errors(page) -> None:
    """Assert that the page shows no raised exception and no st.error (saying which, if it does)."""
    boxes = page.locator(ERROR_BOXES)
    assert boxes.count() == 0, boxes.all_inner_texts()


def save_failed_page(page, name: str) -> str:
    """What a failed browser test left on screen, saved: a screenshot of the whole page and its text
    (returned: its address, then the text; empty when the page can no longer tell)."""
    ARTIFACTS.mkdir(exist_ok=True)
    stem = ARTIFACTS / f"failed-{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}"
    text = ""
    with contextlib.suppress(Exception):  # a page that crashed or closed leaves nothing to save
        boxes = page.locator(ERROR_BOXES).all_inner_texts()
        text = "\n\n".join([page.url, *(f"error box: {box}" for box in boxes), page.inner_text("body")])
        Path(f"{stem}.txt").write_text(text, encoding="utf-8")
        page.screenshot(path=f"{stem}.png", full_page=True)
    return text


def server_log(url: str) -> Path:
    """Where the app server at `url` (running_app's) writes its output."""
    return ARTIFACTS / f"server-{url.rsplit(':', 1)[-1]}.log"


def server_traceback(url: str, most: int = 4000) -> str:
    """The end of the last traceback in the log of the app server at `url` (running_app's), or ''."""
    try:
        text = server_log(url).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    start = text.rfind("Traceback")
    return text[start:][-most:] if start >= 0 else ""


# The page's own record of its script run (the app root's data-test-script-state): "running" until
# the run ends, "notRunning" after. The 'running' indicator alone is not enough: it is not shown while
# a cached function's spinner is (seen on lesson 7, whose first visit times a few training steps), and a
# test or bench that took that for the end went on while the script still ran.
SCRIPT_IDLE = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    return app && ['notRunning', 'compilationError'].includes(app.getAttribute('data-test-script-state'))
        && !document.querySelector('[data-testid="stStatusWidget"]');
}"""


def wait_until_idle(page, timeout_ms: int = 60_000) -> None:
    """Wait until Streamlit has finished running the script (SCRIPT_IDLE). The first 300 ms are
    waited out, so as not to catch the moment before a rerun just asked for begins."""
    page.wait_for_timeout(300)
    page.wait_for_function(SCRIPT_IDLE, timeout=timeout_ms, polling=100)


def pick_index(page, label: str, index: int) -> None:
    """Click `index` in a row of numbered buttons (course_ui.index_picker: a layer, a head)."""
    page.get_by_role("radiogroup", name=label, exact=True).first.get_by_role("radio", name=str(index), exact=True).click()


def start_training_run(page, url: str) -> None:
    """Open lesson 7, press Start (the default "1-minute" preset) and wait for the live loss chart."""
    page.goto(url + "/Training")
    start = page.get_by_role("button", name="Start", exact=True)
    start.wait_for(timeout=60_000)
    wait_until_idle(page)
    start.click()
    page.locator("svg .gtitle >> text=Loss while training").first.wait_for(timeout=60_000)


def compile_scripts_once() -> Callable[[], None]:
    """Make AppTest compile each script once, as a server does. AppTest gives every run a new
    ScriptCache (streamlit/testing/v1/app_test.py and local_script_runner.py), so each run parses,
    rewrites (st.write "magic") and compiles Home.py and the page again: ~50 ms of a lesson's CPU
    that a server, whose Runtime keeps one ScriptCache, pays only once (in the whole suite, about a
    fifth of the xdist workers' CPU). Returns what undoes it."""
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    from streamlit.testing.v1 import app_test, local_script_runner

    replaced = app_test.ScriptCache, local_script_runner.ScriptCache
    shared = ScriptCache()
    app_test.ScriptCache = local_script_runner.ScriptCache = lambda: shared

    def undo() -> None:
        app_test.ScriptCache, local_script_runner.ScriptCache = replaced

    return undo


def switch_to(app, page: str):
    """AppTest.switch_page, and "Home.py" for Home, as the sidebar's first link goes there.
    switch_page takes a page file, and Home is Home.py's own function page (its st.navigation), not
    a file: its script hash is the one registered at the address "" (AppTest keeps them in
    _registered_pages). Returns the app; run it next, as after switch_page."""
    if page != "Home.py":
        return app.switch_page(page)
    [home] = [page_hash for page_hash, shown in app._registered_pages.items() if shown.get("url_pathname") == ""]
    app._page_hash = home
    return app


def open_every_section(app) -> None:
    """Open every figure slot the lessons draw on request (`| on request:`), so that a test of a
    page's figures sees all of them. Closed is what a student sees first; tests/test_teaching.py
    checks that."""
    from course_ui import lesson_key, section_key
    from core.course import COURSE
    from core.lessons import load_lesson

    for entry in COURSE:
        for part in load_lesson(entry.markdown).parts:
            if getattr(part, "on_request", None):
                app.session_state[section_key(lesson_key(entry.number), part.name)] = True
