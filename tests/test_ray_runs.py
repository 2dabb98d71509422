"""Lesson 7's runs on a Ray cluster (issue 18): a local Ray instance started inside the tests, the
page's own code driving a run there, a worker that dies, an unreachable cluster, and no actor
outliving its student's pages.

Ray is a test and cluster dependency, not the app's: without it these tests are skipped with the
reason and the install line; `.ci/run` installs it and sets GLASSBOX_REQUIRE_RAY=1, which turns the
skip into a failure there.
"""
from __future__ import annotations

import os
import time
from dataclasses import replace

import pytest

from core import copy_task, live_training
from core.course import APP_DIR, LESSONS
from core.live_training import PRESETS
from tests.test_app import start_a_small_copy_run
from tests.test_live_training import wait_for

REQUIRE_RAY = "GLASSBOX_REQUIRE_RAY"
INSTALL = "pip install 'ray==2.60.0'"
TINY = replace(PRESETS["1-minute"], n_layer=1, n_head=2, n_embd=32, block_size=32, batch_size=8, warmup_steps=5)

pytestmark = pytest.mark.xdist_group("ray")  # one worker holds the Ray instance


@pytest.fixture(scope="module")
def cluster():
    """A local Ray instance (two CPUs, no dashboard), its address in RAY_ADDRESS as a deployment sets it."""
    try:
        import ray
    except ImportError:
        reason = f"the Ray tests need Ray, which is not installed: {INSTALL}"
        if os.environ.get(REQUIRE_RAY) == "1":
            pytest.fail(f"{reason} ({REQUIRE_RAY}=1: this run requires them)")
        pytest.skip(reason)
    from core.ray_runs import NAMESPACE

    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, namespace=NAMESPACE,
                       runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}})
    previous = os.environ.get("RAY_ADDRESS")
    os.environ["RAY_ADDRESS"] = context.address_info["address"]
    yield context
    if previous is None:
        os.environ.pop("RAY_ADDRESS", None)
    else:
        os.environ["RAY_ADDRESS"] = previous
    ray.shutdown()


@pytest.fixture(scope="module")
def copy_data():
    return live_training.prepare_data(copy_task.copy_task_documents(400), live_training.BYTE_VOCABULARY)


def ray_run(data, config=TINY, **options):
    from core.ray_runs import RayTrainingRun

    return RayTrainingRun(config, data, "ab cd | ab cd", "ab cd |", cpus=1, **options)


def test_the_training_page_trains_on_the_cluster_like_in_the_app(cluster, monkeypatch):
    """Start, live progress, the copy test, pause, resume, stop, the download and the model in the
    other lessons: the page's own code, with the run in a Ray actor; then the tab closes."""
    from streamlit.testing.v1 import AppTest

    import course_ui
    from core.ray_runs import RayTrainingRun, live_actor_names

    tab = {"open": True}  # the student's browser tab, as the server sees it
    monkeypatch.setattr(course_ui, "session_alive_check", lambda: lambda: tab["open"])

    app = AppTest.from_file(str(APP_DIR / "Home.py"), default_timeout=120).run()
    app.switch_page(LESSONS[6].page).run()
    run = start_a_small_copy_run(app)
    assert isinstance(run, RayTrainingRun) and run.actor_name in live_actor_names()

    last_asked = 0.0

    def progressing() -> bool:
        nonlocal last_asked
        if time.monotonic() - last_asked >= 1.0:  # the page asks, as its live view does (every two seconds),
            app.run()  # not at every look of the test, which would keep a core busy rerunning it
            last_asked = time.monotonic()
        return run.view().step > 0 and bool(run.view().copy_scores)

    assert wait_for(progressing, timeout=120)
    app.run()  # drawn from the view that has them
    assert not app.exception and any("t_loss" in c.proto.id for c in app.get("plotly_chart"))
    assert any("t_copy" in c.proto.id for c in app.get("plotly_chart"))
    assert any(c.value.startswith("At step") for c in app.caption)  # the copy test, scored on the cluster
    assert run.view().samples and run.view().snapshots and run.view().layer_grad_norms
    app.button(key="t_pause").click().run()
    assert run.status == "paused"
    assert wait_for(lambda: run.view().status == "paused" and run._heard)
    paused_at = run.view().step
    app.button(key="t_resume").click().run()
    assert wait_for(lambda: run.view().step > paused_at, timeout=60)
    app.button(key="t_stop").click().run()
    assert wait_for(lambda: run.view().status == "stopped", timeout=60)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    assert any(b.proto.label.startswith("Download the model") for b in app.get("download_button"))
    app.button(key="t_use").click().run()  # the model, brought back from the cluster, in every lesson
    assert not app.exception, [e.value for e in app.exception]
    app.switch_page(LESSONS[3].page).run()
    assert not app.exception, [e.value for e in app.exception]
    assert app.selectbox(key="model_box").value == str(run.save())
    run.abandon_after = 1.0
    tab["open"] = False  # the tab is closed: its actor ends
    assert wait_for(lambda: run.actor_name not in live_actor_names(), timeout=60)


def test_a_worker_that_dies_says_so_and_the_page_offers_to_start_again(cluster, copy_data):
    import ray

    run = ray_run(copy_data, replace(TINY, max_steps=100_000))
    run.attach(lambda: True)  # the student's page stays open (a busy cluster may take a while to start the actor)
    run.start()
    assert wait_for(lambda: run.view().step > 0, timeout=120)
    ray.kill(run._actor)  # the worker's machine is gone
    assert wait_for(lambda: run.status == "failed", timeout=60)
    assert "stopped working" in run.message and "Start" in run.message and not run.is_active
    assert run.view().step > 0  # the progress so far stays on the page


def test_an_unreachable_cluster_trains_here_and_says_so_in_one_sentence(cluster, copy_data, monkeypatch):
    import ray

    from core.training_run import TrainingRun, new_run

    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # as in a fresh app process
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:9")  # nothing listens there
    run, note = new_run(TINY, copy_data, "ab cd | ab cd", "ab cd |")
    assert type(run) is TrainingRun
    assert note.startswith("The Ray cluster at 127.0.0.1:9 cannot be reached") and note.endswith(
        "Your run trains on this machine instead.") and note.count(". ") <= 1


def test_no_actor_outlives_its_run_or_its_students_pages(cluster, copy_data):
    """A finished run brings its model home and ends its actor at once (its CPUs go to the next
    run, the page keeps the download); a closed tab ends a running run's actor, as it ends its
    thread in the app."""
    from core.ray_runs import live_actor_names

    pages = [{"open": True}, {"open": True}]
    running = ray_run(copy_data, replace(TINY, max_steps=100_000), abandon_after=1.0)
    finished = ray_run(copy_data, replace(TINY, max_steps=10), abandon_after=1.0)
    for run, page in zip((running, finished), pages):
        run.attach(lambda page=page: page["open"])
        run.start()
    assert wait_for(lambda: finished.status == "finished", timeout=120)
    assert wait_for(lambda: finished.actor_name not in live_actor_names(), timeout=60)  # its page is still open
    assert (finished.save() / "model.safetensors").is_file()  # the model came home first
    assert wait_for(lambda: running.view().step > 0, timeout=120) and running.actor_name in live_actor_names()
    pages[0]["open"] = False  # the running run's tab is closed
    assert wait_for(lambda: running.actor_name not in live_actor_names(), timeout=60)
    assert running.status == "stopped" and "closed" in running.message
    assert finished.status == "finished"  # its result is kept; only its actor is gone
