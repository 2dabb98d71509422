"""Benchmarks of the app: `python bench/bench_app.py`. Prints figures; asserts nothing.

For the bundled model and a random-weight gpt2-small (saved to a temporary folder, so no
network is needed):
- median rerun time of each page (AppTest, warm caches), default prompt and a 128-token one
- glass-box trace time against a plain Hugging Face forward on the same prompt (ratio)
- lesson 6: rerun when only the temperature slider moves, and 50 generated tokens (KV cache)
Once, for the real app:
- cold start: `streamlit run Home.py` to healthy, and to Home drawn in headless Chromium
- peak memory (resident set high-water mark) of the app process after Home and lesson 1
Targets (issue 2): rerun ≤ 300 ms on the bundled model, trace/forward ≤ 2, cold start ≤ 8 s,
peak memory ≤ 700 MB with the bundled model. Issue 4: 50 tokens ≤ 2 s on the bundled model.
"""
from __future__ import annotations

import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402
from transformers import GPT2Config, GPT2LMHeadModel  # noqa: E402
from transformers.utils import logging as transformers_logging  # noqa: E402

from core.course import APP_DIR, LESSONS  # noqa: E402
from core.glassbox import run_trace  # noqa: E402
from core.lessons import load_lesson  # noqa: E402
from core.models import load_model  # noqa: E402
from core.sampling import Strategy, generate  # noqa: E402
from core.tokenization import gpt2_tokenizer  # noqa: E402
from tests.streamlit_server import compile_scripts_once  # noqa: E402

PAGES = ["Home.py"] + [entry.page for entry in LESSONS if entry.is_built]
RERUNS = 15


def median_seconds(work, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def random_gpt2_small(folder: Path) -> str:
    torch.manual_seed(0)
    GPT2LMHeadModel(GPT2Config()).save_pretrained(folder)  # 124M parameters, random weights
    gpt2_tokenizer().save_pretrained(folder)
    return str(folder)


def trace_vs_forward(model_key: str, prompt: str) -> tuple[float, float, int]:
    loaded = load_model(model_key)
    ids = loaded.tokenizer(prompt)["input_ids"][-128:]
    with torch.no_grad():
        loaded.model(input_ids=torch.tensor([ids]))  # warm up
    run_trace(loaded.model, ids)
    forward = median_seconds(lambda: loaded.model(input_ids=torch.tensor([ids])), 20)
    trace = median_seconds(lambda: run_trace(loaded.model, ids), 20)
    return trace, forward, len(ids)


def server_cpu_seconds(run) -> float:
    """The CPU seconds `run()` (an AppTest run) costs the server's side: the whole process's CPU
    time (the script's thread, PyTorch's worker threads, Streamlit's) less that of the test's own
    threads, which a server does not have: AppTest's main thread, which polls every millisecond for
    the script's end and parses every element it sent, and tqdm's monitor thread."""
    import threading

    harness = [threading.main_thread()] + [t for t in threading.enumerate() if "tqdm" in type(t).__module__]
    clocks = [time.pthread_getcpuclockid(t.ident) for t in harness if t.ident is not None]
    process_before, harness_before = time.process_time(), sum(time.clock_gettime(c) for c in clocks)
    run()
    return (time.process_time() - process_before) - (sum(time.clock_gettime(c) for c in clocks) - harness_before)


def page_rerun(page: str, model_key: str, prompt: str | None = None) -> float:
    app = AppTest.from_file(str(APP_DIR / "Home.py"), default_timeout=120)
    app.session_state["model_key"] = model_key
    if prompt is not None:
        app.session_state["prompt"] = prompt
    app.run()  # cold: loads the model, fills the caches
    if page != "Home.py":
        app.switch_page(page).run()
    if app.exception:
        raise RuntimeError(f"{page}: {app.exception[0].value}")
    return median_seconds(app.run, RERUNS)


def slider_rerun(model_key: str) -> float:
    """Lesson 6 with the temperature slider moved to a new value before each rerun."""
    app = AppTest.from_file(str(APP_DIR / "Home.py"), default_timeout=120)
    app.session_state["model_key"] = model_key
    app.run()
    app.switch_page("lesson_pages/6_Sampling.py").run()
    values = iter([round(0.1 + 0.3 * i, 2) for i in range(RERUNS + 1)])
    return median_seconds(lambda: app.slider(key="s_temperature").set_value(next(values)).run(), RERUNS)


def generation_seconds(model_key: str, prompt: str, n_tokens: int = 50) -> float:
    loaded = load_model(model_key)
    ids = loaded.tokenizer(prompt)["input_ids"]
    strategy = Strategy(temperature=1.0, top_k=50, top_p=0.9)
    generate(loaded.model, ids, 5, strategy, seed=0)  # warm up
    return median_seconds(lambda: generate(loaded.model, ids, n_tokens, strategy, seed=0), 5)


def cold_start() -> tuple[float, float, float]:
    from tests.streamlit_server import browser_page, running_app, wait_until_idle

    began = time.perf_counter()
    with running_app() as (url, process, healthy_after):
        with browser_page() as page:
            page.goto(url)
            page.get_by_text("The lessons").first.wait_for(timeout=60_000)
            wait_until_idle(page)
            home_drawn = time.perf_counter() - began
            page.goto(url + "/Tokenization")
            page.locator(".gb-chip").first.wait_for(timeout=60_000)
            wait_until_idle(page)
        status = Path(f"/proc/{process.pid}/status").read_text()
        peak_kb = int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1])
    return healthy_after, home_drawn, peak_kb / 1024


def main() -> None:
    from streamlit.logger import set_log_level

    set_log_level("error")
    compile_scripts_once()  # as a server does
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").addFilter(
        lambda record: "missing ScriptRunContext" not in record.getMessage())  # AppTest's bare-mode warning
    transformers_logging.disable_progress_bar()
    torch.set_num_threads(2)
    prompt = load_lesson("home.md").meta["default_prompt"]
    long_prompt = ("Once upon a time, there was a boy named Tom. Tom had a blue kite. " * 20)
    with tempfile.TemporaryDirectory() as folder:
        models = {"bundled (glassbox-stories)": "glassbox-stories", "random gpt2-small": random_gpt2_small(Path(folder))}
        print("== trace vs Hugging Face forward (median of 20) ==")
        for label, key in models.items():
            for name, text in (("default prompt", prompt), ("128-token prompt", long_prompt)):
                trace, forward, n = trace_vs_forward(key, text)
                print(f"{label:28s} {name:17s} {n:4d} tokens  trace {trace * 1000:7.1f} ms  "
                      f"forward {forward * 1000:7.1f} ms  ratio {trace / forward:5.2f}")
        print(f"== page rerun, median of {RERUNS} (AppTest, warm caches; default prompt | 128-token prompt) ==")
        for label, key in models.items():
            for page in PAGES:
                print(f"{label:28s} {page:32s} {page_rerun(page, key) * 1000:7.1f} ms | "
                      f"{page_rerun(page, key, long_prompt) * 1000:7.1f} ms")
        print("== lesson 6 (median) ==")
        for label, key in models.items():
            print(f"{label:28s} rerun, temperature slider moved   {slider_rerun(key) * 1000:7.1f} ms")
            print(f"{label:28s} 50 tokens generated (KV cache)    {generation_seconds(key, prompt) * 1000:7.1f} ms")
    print("== the real app, bundled model ==")
    healthy, home, peak_mb = cold_start()
    print(f"cold start: healthy after {healthy:.2f} s; Home drawn in Chromium after {home:.2f} s")
    print(f"peak memory of the app process after Home and lesson 1: {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
