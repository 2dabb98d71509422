"""Shared fixtures: small random GPT-2 models (never the network) and the bundled model."""
from __future__ import annotations

import contextlib
import gc
import os
import re

# One PyTorch thread, here and in the apps the tests start: the suite's models are tiny, and on two
# cores shared with a Streamlit server and Chromium, more threads than cores make PyTorch's workers
# wait for each other (measured: the model card's evaluation took 11 s with one thread, 143 s with
# two while another process kept both cores busy).
os.environ.setdefault("OMP_NUM_THREADS", "1")

from typing import TYPE_CHECKING  # noqa: E402

import pytest  # noqa: E402

from core.lessons import LESSONS_DIR  # noqa: E402
from core.models import BUNDLED_MODEL_DIR, load_model  # noqa: E402

# PyTorch and transformers are imported where a test needs them, not here: under pytest-xdist the
# process that only deals the tests out imports this file too (about 7 s of a core for nothing).
if TYPE_CHECKING:
    from transformers import GPT2LMHeadModel


def pytest_configure(config):
    """The collector off while the tests are collected: collecting imports PyTorch, transformers,
    Streamlit and Plotly, millions of objects that all live on, and Python's collector would scan
    them again and again on the way (as in the app's warm-up, course_ui.warm_up_in_background)."""
    gc.disable()


def pytest_collection_finish(session):
    gc.freeze()  # what collection loaded stays loaded: the collector need not scan it again
    gc.enable()


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(autouse=True, scope="session")
def scan_for_streamlit_components_once():
    """Each new AppTest scans the metadata of every installed package for Streamlit components
    (streamlit.components.v2.manifest_scanner): about a second with this environment's ~600
    packages, most of a page's run in the tests. Installed packages do not change while the tests
    run, so the scan is made once and its result reused."""
    try:
        from streamlit.components.v2 import manifest_scanner
    except ImportError:  # another Streamlit: nothing to share
        yield
        return
    scan = manifest_scanner.scan_component_manifests
    found = scan()
    manifest_scanner.scan_component_manifests = lambda max_workers=None: list(found)
    yield
    manifest_scanner.scan_component_manifests = scan


@pytest.fixture(autouse=True, scope="session")
def scripts_compiled_once():
    """The scripts do not change while the tests run (AppTest.from_string writes each string to a
    file of its own): each is compiled once for the session, as a server compiles it once."""
    from tests.streamlit_server import compile_scripts_once

    undo = compile_scripts_once()
    yield
    undo()


@pytest.fixture(autouse=True, scope="session")
def full_error_details():
    """AppTest reads .streamlit/config.toml, which hides error messages from students; a failing
    test should show them."""
    from streamlit import config

    config.set_option("client.showErrorDetails", "full")
    yield


def lesson_text(file_name: str) -> str:
    """A lesson file's words with its line breaks folded into spaces, to find a quoted sentence in."""
    return " ".join((LESSONS_DIR / file_name).read_text(encoding="utf-8").split())


def quoted(pattern: str, text: str) -> tuple[str, ...]:
    """What a lesson sentence quotes, as written (a number's decimals say how it was rounded)."""
    found = re.search(pattern, text)
    assert found is not None, f"the lesson no longer says: {pattern}"
    return found.groups()


def random_gpt2(n_layer=2, n_head=2, n_embd=32, n_positions=64, vocab_size=100, seed=0, **extra) -> GPT2LMHeadModel:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel  # noqa: F811 (the name above is for type checkers only)

    torch.manual_seed(seed)
    config = GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd, n_positions=n_positions,
                        vocab_size=vocab_size, attn_implementation="eager", **extra)
    model = GPT2LMHeadModel(config)
    model.eval()
    return model


@pytest.fixture(scope="session")
def bundled():
    if not (BUNDLED_MODEL_DIR / "config.json").is_file():
        pytest.fail(f"the bundled model is missing: run `python -m core.build_course_model` ({BUNDLED_MODEL_DIR})")
    return load_model("glassbox-stories")


def sent_array(value):
    """A number array of a figure's dict as the browser gets it ({"dtype", "bdata", "shape"}: Plotly's
    binary block) as a numpy array; a plain list as it is."""
    import base64

    import numpy as np

    if not isinstance(value, dict):
        return np.asarray(value)
    flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return flat.reshape([int(n) for n in str(value["shape"]).split(",")]) if value.get("shape") else flat


@pytest.fixture(scope="session")
def default_runs() -> tuple[dict, dict[str, set[str]]]:
    """Every page of the app opened once under AppTest with the default prompt, as a student does
    it (Home first, then the page), and the figure builders each page really handed to
    `course_ui.render_lesson`, recorded on the way: ({page: AppTest}, {page: slot names})."""
    from streamlit.testing.v1 import AppTest

    import course_ui
    from core.course import APP_DIR, COURSE
    from tests.streamlit_server import open_every_section

    pages = ["Home.py"] + [entry.page for entry in COURSE if entry.is_built]
    builders: dict[str, set[str]] = {}
    drawing = {"page": "Home.py"}
    render_lesson = course_ui.render_lesson

    def recording(lesson, figures, key, **options):
        builders.setdefault(drawing["page"], set()).update(figures)
        return render_lesson(lesson, figures, key, **options)

    course_ui.render_lesson = recording  # the pages call course_ui.render_lesson at run time
    runs = {}
    try:
        for page in pages:
            drawing["page"] = "Home.py"
            app = AppTest.from_file(str(APP_DIR / "Home.py"), default_timeout=60)
            open_every_section(app)
            app.run()
            if page != "Home.py":
                assert not app.exception, [e.value for e in app.exception]
                drawing["page"] = page
                app.switch_page(page).run()
            runs[page] = app
    finally:
        course_ui.render_lesson = render_lesson
    return runs, builders


# --- the real browser: one app server for every browser test of the session -----------------------
SHARED_APP = "glassbox_app_url"  # the controller's app server, as pytest-xdist hands it to each worker (workerinput)
_shared_app: tuple[str, contextlib.ExitStack] | None = None  # in the controller: (its address, what stops it)


@pytest.hookimpl(optionalhook=True)  # (a pytest-xdist hook: called in the controller, as each worker starts)
def pytest_configure_node(node):
    """Under pytest-xdist, one app server for the browser tests of every worker, as a class shares
    one app: started by the controller as the workers start (its warm-up, ~10 s of a core, runs once,
    when a test first opens Home, and what one worker's tests computed is cached for the other's),
    and handed to each worker by its address. Where the browser is missing, none is started: the
    tests that need it skip, or fail where required (app_url below)."""
    global _shared_app
    from tests.streamlit_server import browser_missing, running_app

    if browser_missing():
        return
    if _shared_app is None:
        stop = contextlib.ExitStack()
        url, _, _ = stop.enter_context(running_app(wait=False))  # the workers wait for it, while they collect
        _shared_app = url, stop
    node.workerinput[SHARED_APP] = _shared_app[0]


def pytest_unconfigure(config):
    """The controller stops its app server once every worker has finished."""
    global _shared_app
    if _shared_app is not None:
        _shared_app[1].close()
        _shared_app = None


@pytest.fixture(scope="session")
def app_url(request):
    """`streamlit run Home.py` on a free port, for the whole session (each test opens its own browser
    session on it): the controller's, under pytest-xdist, else one started here. Skipped, or failed
    where required, without Debian's chromium."""
    from tests.streamlit_server import require_browser, running_app, wait_for_health

    require_browser()
    shared = getattr(request.config, "workerinput", {}).get(SHARED_APP)
    if shared:
        wait_for_health(shared)
        yield shared
        return
    with running_app() as (url, _, _):
        yield url


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A browser test that fails leaves what its page showed (tests/artifacts/failed-<test>.png and
    .txt), and its report shows the page's text and the app server's traceback, if it logged one:
    on a CI machine the report is all that is kept."""
    report = yield
    opened = getattr(item, "funcargs", {}).get("page")
    if report.when == "call" and report.failed and opened is not None:
        from tests.streamlit_server import save_failed_page, server_traceback

        shown = save_failed_page(opened, item.name)
        report.sections.append(("what the page showed", f"{shown[:2000]}\n[…]\n{shown[-2000:]}" if len(shown) > 4000
                                else shown))
        logged = server_traceback(item.funcargs.get("app_url", ""))
        if logged:
            report.sections.append(("the app server's traceback", logged))
    return report


@pytest.fixture
def page(app_url):
    """A headless Chromium page for one test (tests.streamlit_server.browser_page: a new browser, from
    the worker's one Playwright driver). A browser of its own per test: one Chromium
    shared by a worker's tests, with a context per test, cost Chromium more CPU, not less (one pair
    of runs of tests/test_browser.py: 113 s against 87 s), so it was not kept. What a failing test's
    page showed is kept (pytest_runtest_makereport above)."""
    from tests.streamlit_server import browser_page

    with browser_page() as opened:
        yield opened


# Fixtures whose one building costs seconds: under pytest-xdist, the tests that use one run on one
# worker, so that it is built once and not on both (each model card's `measured` re-evaluates its
# model, ~8 s; `default_runs` opens every page). test_ray_runs.py keeps its Ray instance in a group of its own.
SHARED_FIXTURES = ("default_runs", "measured")


# The longest single test (two app servers behind nginx, ~40 s) is handed out first: the workers take
# work as they finish, and handed out last it ran on alone while the other worker had nothing left
LONGEST_FIRST = {"test_replicas.py"}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own, which reads the groups into the test ids
def pytest_collection_modifyitems(items):
    """Under pytest-xdist (`pytest -n N`), the browser tests are dealt in turn into N groups, one
    per worker, which run side by side on the one app server (pytest_configure_node). The tests
    sharing an expensive fixture (SHARED_FIXTURES) are kept together on one worker."""
    groups = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    items.sort(key=lambda item: item.path.name not in LONGEST_FIRST)  # (a stable sort: the rest keep their order)
    browser = [item for item in items if "app_url" in getattr(item, "fixturenames", ())  # (`page` needs it too)
               or item.path.name.startswith("test_browser")]
    for index, item in enumerate(browser):
        item.add_marker(pytest.mark.xdist_group(f"browser-{index % groups}"))
    for item in items:
        shared = [name for name in SHARED_FIXTURES if name in getattr(item, "fixturenames", ())]
        if shared and item not in browser and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(shared[0]))  # both model cards' `measured`: one group, each built once
