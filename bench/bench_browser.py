"""What a student feels, measured in headless Chromium: `python bench/bench_browser.py [model ...]`.
Prints figures; asserts nothing.

- cold start: the server healthy, Home drawn, and the first lesson drawn right after Home and,
  on a fresh server, after 10 s of reading Home
- every page, first and second visit: from the click in the sidebar to the script idle and
  every Plotly chart drawn (the count of Plotly layers stops changing); for the second visit, where
  the time went: until the server's last message arrived, and the drawing after it
- the main control of lessons 4-6: from the change to the script idle and the charts redrawn, in
  three parts (the message to the server sent, its last reply arrived, the page still)
- the server's CPU seconds for a lesson on a prompt no one has used before (AppTest, in-process)
- the machine's speed before and after (20 million Python additions): every figure scales with it
Models: the two course models by default (any registry key or folder can be named, and
`random-gpt2-small`: GPT-2 small's shape with random weights, saved to a temporary folder).
"""
from __future__ import annotations

import contextlib
import gc
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.course import COURSE  # noqa: E402
from tests.streamlit_server import STUDENT_BROWSERS, browser_page, pick_index, running_app, wait_until_idle  # noqa: E402

PAGES = [(entry.url_path, f"Lesson {entry.number} ·") for entry in COURSE]
CONTROLS = {  # lesson path -> (what the student moves, how: the n-th move)
    "Attention": ("head picker", lambda page, n: pick_index(page, "Head", (n + 1) % 4)),
    "Feed_forward": ("layer picker", lambda page, n: pick_index(page, "Layer", (n + 1) % 4)),
    "Sampling": ("temperature slider", lambda page, n: slide(page, "Temperature T")),
}


def slide(page, label: str) -> None:
    page.get_by_role("slider", name=label).focus()  # (get_by_label finds the label's help icon first)
    page.keyboard.press("ArrowRight")


def drawn(page, timeout_s: float = 60.0) -> None:
    """Script idle and the number of drawn Plotly layers steady for 300 ms."""
    wait_until_idle(page, int(timeout_s * 1000))
    last, steady_since, began = -1, time.perf_counter(), time.perf_counter()
    while time.perf_counter() - began < timeout_s:
        count = page.locator(".js-plotly-plot .main-svg").count()
        if count != last:
            last, steady_since = count, time.perf_counter()
        elif time.perf_counter() - steady_since >= 0.3:
            return
        page.wait_for_timeout(50)


# the time of the page's last change, in the page's own clock: every DOM mutation but the running
# indicator's (Plotly's drawing, Streamlit's elements, the stale-element fading at the end of a run)
WATCH_CHANGES = """() => {
    window.glassboxLastChange = performance.now();
    new MutationObserver(records => {
        if (records.some(r => !(r.target.closest && r.target.closest(
                '[data-testid="stStatusWidget"], [data-testid="stHeader"], [data-testid="stToolbar"]')))) {
            window.glassboxLastChange = performance.now();
        }
    }).observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
}"""


# the page's websocket traffic, in the page's own clock: when each message to the server left and
# each message from it arrived (a message waits for the page's main thread, so a late arrival can
# also mean the page was busy drawing what came before)
WATCH_SOCKET = """(() => {
    window.glassboxSocket = [];
    const Native = window.WebSocket;
    window.WebSocket = function (...args) {
        const socket = new Native(...args);
        const send = socket.send.bind(socket);
        socket.send = data => { window.glassboxSocket.push(['sent', performance.now()]); return send(data); };
        socket.addEventListener('message', () => window.glassboxSocket.push(['received', performance.now()]));
        return socket;
    };
    window.WebSocket.prototype = Native.prototype;
    Object.assign(window.WebSocket, Native);
})();"""


@dataclass(frozen=True)
class Timing:
    """One action, from the student's click or key press (seconds): `sent` when the page's message
    left for the server, `replied` when the server's last message arrived, `still` when the page
    stopped changing (the figure a student feels)."""

    sent: float
    replied: float
    still: float


def timed(work, page) -> Timing:
    """From the student's action to the page's last change, once the script is idle and the page
    has been still for 300 ms (neither the fixed waits of `drawn` nor the stillness window count).
    The page must have been opened with WATCH_SOCKET as an init script (`watched_page`)."""
    if not page.evaluate("() => 'glassboxLastChange' in window"):
        page.evaluate(WATCH_CHANGES)
    page.evaluate("() => { window.glassboxSocket = []; }")
    began = page.evaluate("() => performance.now()")
    work()
    drawn(page)
    traffic = page.evaluate("() => window.glassboxSocket")
    sent = next((at for kind, at in traffic if kind == "sent"), began)
    replied = max((at for kind, at in traffic if kind == "received"), default=sent)
    still = page.evaluate("() => window.glassboxLastChange")
    return Timing(*((moment - began) / 1000 for moment in (sent, replied, still)))


@contextlib.contextmanager
def watched_page():
    """A browser page whose websocket traffic is timed (WATCH_SOCKET)."""
    with browser_page(STUDENT_BROWSERS) as page:
        page.add_init_script(WATCH_SOCKET)
        yield page


# charts whose margins Plotly's automargin widened after the first drawing: each was drawn twice
# (core.plot_style.finished works the margins out beforehand)
DRAWN_TWICE = """() => [...document.querySelectorAll('.js-plotly-plot')].filter(plot => {
    const layout = plot._fullLayout;
    return layout && ['l', 'r', 't', 'b'].some(side => Math.round(layout._size[side]) > Math.round(layout.margin[side]));
}).length"""


def visit(page, url: str, path: str, title: str) -> Timing:
    def go() -> None:
        page.locator('[data-testid="stSidebarNav"] a[href$="/' + path + '"]').first.click()
        page.get_by_text(title).first.wait_for(timeout=60_000)
    return timed(go, page)


READING_HOME = 10.0  # seconds a student spends on Home before the first lesson (the warm-up's time)


def after_reading_home(model: str) -> float:
    """A fresh server: Home drawn, READING_HOME seconds, then lesson 1: what the warm-up started
    with Home (imports, the model's load) saves a student who reads Home first."""
    with running_app() as (url, _, _), watched_page() as page:
        page.goto(f"{url}/?model={model}")
        page.get_by_text("The lessons").first.wait_for(timeout=60_000)
        drawn(page)
        page.wait_for_timeout(READING_HOME * 1000)
        return visit(page, url, *PAGES[1]).still


def browser_table(model: str) -> None:
    print(f"== {model}: Chromium, one student ==")
    reading = after_reading_home(model)  # its own fresh server and browser, before this one's
    began = time.perf_counter()
    with running_app() as (url, _, healthy_after), watched_page() as page:
        page.goto(f"{url}/?model={model}")
        page.get_by_text("The lessons").first.wait_for(timeout=60_000)
        home_shown = time.perf_counter() - began  # what the student reads (the lessons' elements load after)
        drawn(page)
        home = time.perf_counter() - began
        first_lesson = visit(page, url, *PAGES[1]).still  # lesson 1: pays for the heavy imports unless warmed up
        print(f"cold start: healthy {healthy_after:.2f} s, Home shown {home_shown:.2f} s, drawn {home:.2f} s, lesson 1 drawn "
              f"{first_lesson:.2f} s after a click the moment Home is drawn, "
              f"{reading:.2f} s after {READING_HOME:.0f} s of reading Home")
        rows = []
        for path, title in PAGES:
            rows.append((path, visit(page, url, path, title)))
        for index, (path, title) in enumerate(PAGES):
            second = visit(page, url, path, title)
            layers = page.locator(".js-plotly-plot").count()
            rows[index] = (path, rows[index][1], second, layers, page.evaluate(DRAWN_TWICE))
        print(f"{'page':22s} {'first visit':>12s} {'second':>8s} {'Plotly charts':>14s} {'drawn twice':>12s}   "
              f"second visit: last reply, then drawing")
        for path, first, second, layers, twice in rows:
            print(f"{path:22s} {first.still:10.2f} s {second.still:6.2f} s {layers:14d} {twice:12d}   "
                  f"{second.replied:5.2f} s + {second.still - second.replied:4.2f} s")
        for path, (what, move) in CONTROLS.items():
            visit(page, url, path, dict(PAGES)[path])
            moves = [timed(lambda n=n, move=move: move(page, n), page) for n in range(4)]
            median = {part: statistics.median(getattr(m, part) for m in moves) * 1000 for part in ("sent", "replied", "still")}
            print(f"{path:22s} {what:20s} moved: median {median['still']:6.0f} ms (of {len(moves)}): "
                  f"sent {median['sent']:4.0f} ms, last reply {median['replied']:4.0f} ms, drawn "
                  f"{median['still'] - median['replied']:4.0f} ms after it")


def server_cpu(model: str, prompts: int = 3) -> None:
    """CPU seconds of one lesson run on a prompt no one has used before (AppTest, warm model, the
    test's own threads left out: bench_app.server_cpu_seconds): the median of `prompts` new prompts
    (one run alone varies by half on a shared machine)."""
    from streamlit.testing.v1 import AppTest

    from bench.bench_app import server_cpu_seconds
    from core.course import APP_DIR

    print(f"== {model}: server CPU for a lesson on a new prompt (AppTest) ==")
    for index, (path, _) in enumerate(PAGES):
        page = next(e.page for e in COURSE if e.url_path == path)
        app = AppTest.from_file(str(APP_DIR / "Home.py"), default_timeout=120)
        app.session_state["model_key"] = model
        app.run()
        app.switch_page(page).run()  # warm: model loaded, this page's code imported
        gc.collect()
        gc.freeze()  # as the server's warm-up does (course_ui.warm_up_in_background): what is loaded is not scanned again
        spent = []
        for attempt in range(prompts):
            app.session_state["prompt"] = (f"Once upon a time, there was a girl named Zoe{index}{attempt}. "
                                           f"Zoe had a red kite. One day,")
            spent.append(server_cpu_seconds(app.run))
        print(f"{path:22s} {statistics.median(spent) * 1000:7.0f} ms CPU (median of {prompts} new prompts)")


def machine_speed() -> float:
    """Seconds for 20 million Python additions: about 1.0 on this project's machine when its host is
    quiet, up to 3 when busy. Every figure above scales with it: printed with each table, so that
    tables from different days can be held against each other."""
    began, total = time.perf_counter(), 0
    for number in range(20_000_000):
        total += number
    return time.perf_counter() - began


def main() -> None:
    import logging

    from streamlit.logger import set_log_level

    from bench.bench_app import random_gpt2_small
    from tests.streamlit_server import compile_scripts_once

    set_log_level("error")
    compile_scripts_once()  # as a server does
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").addFilter(
        lambda record: "missing ScriptRunContext" not in record.getMessage())
    import tempfile

    models = sys.argv[1:] or ["glassbox-stories", "glassbox-stories-llama"]
    print(f"machine speed: {machine_speed():.2f} s for 20 million Python additions (about 1.0 when the host is quiet)")
    with tempfile.TemporaryDirectory() as folder:
        for model in models:
            if model == "random-gpt2-small":
                model = random_gpt2_small(Path(folder))
            browser_table(model)
            server_cpu(model)
    print(f"machine speed at the end: {machine_speed():.2f} s")


if __name__ == "__main__":
    main()
