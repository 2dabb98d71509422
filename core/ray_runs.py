"""Lesson 7's training runs on a Ray cluster, for a class that outgrows one machine.

With a Ray address configured (`RAY_ADDRESS`, Ray's own setting, or `GLASSBOX_RAY_ADDRESS`), each
run trains in a Ray actor that asks the cluster for its CPUs; the page holds a `RayTrainingRun`,
which has the same face as `TrainingRun` (start, pause, resume, stop, `view()`, save). The page
never waits on the cluster: a watcher thread asks the actor for its progress and keeps the latest
copy, which is what `view()` returns. The watcher also carries the page's heartbeat: when no page
of the student's is open any more, it stops the run and ends the actor. A run that has ended
brings its trained model home (as a zip) and ends its actor at once, so that its CPUs go to
the next student's run while the page still offers the download.

Ray is imported only here, and only when an address is configured: a laptop or a Community Cloud
app never needs it.
"""
from __future__ import annotations

import io
import os
import socket
import threading
import time
import uuid
import zipfile
from dataclasses import replace
from pathlib import Path

import torch

from core.live_training import PreparedData
from core.training import TrainConfig
from core.training_run import (_SERIALS, ACTIVE, Attended, RunView, TrainingRun, TrainingSlots, app_lifetime_folder,
                               probe_token_ids)

NAMESPACE = "glassbox"  # every run's actor is named in this namespace ("glassbox-run-…"), so they can be counted
ACTOR_CPUS = int(os.environ.get("GLASSBOX_RAY_CPUS", "2"))  # what one run asks the cluster for
ACTOR_ABANDON_AFTER = 30.0  # seconds without the app asking: the app is gone, the actor's run stops
POLL_SECONDS = 0.5  # how often the watcher asks the actor for its progress


class ClusterUnavailable(RuntimeError):
    """No run can go to the cluster; the message is one sentence for the page."""


def ray_address() -> str | None:
    return os.environ.get("GLASSBOX_RAY_ADDRESS") or os.environ.get("RAY_ADDRESS") or None


def connect(address: str) -> None:
    """Join the cluster at `address` once per process (a no-op when Ray is already initialised,
    as in the tests). Raises `ClusterUnavailable` with the reason."""
    try:
        import ray
    except ImportError as error:
        raise ClusterUnavailable("A Ray address is set, but Ray is not installed here (pip install ray).") from error
    if ray.is_initialized():
        return
    host_port = address.removeprefix("ray://")
    if address != "auto" and ":" in host_port:
        host, port = host_port.rsplit(":", 1)
        try:
            socket.create_connection((host, int(port)), timeout=3).close()  # fail fast: ray.init retries for a minute
        except (OSError, ValueError) as error:
            raise ClusterUnavailable(f"The Ray cluster at {address} cannot be reached ({error}).") from error
    try:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
    except Exception as error:  # Ray raises several kinds (ConnectionError, RuntimeError, …)
        raise ClusterUnavailable(f"The Ray cluster at {address} cannot be joined ({error}).") from error


class RunActor:
    """Runs in a Ray worker: one `TrainingRun` in that process, with the whole process's slot."""

    def __init__(self, config: TrainConfig, data: PreparedData, probe_text: str, sample_prompt: str,
                 copy_test_lines: list[str] | None, cpus: int):
        torch.set_num_threads(cpus)
        self.run = TrainingRun(config, data, probe_text, sample_prompt, copy_test_lines=copy_test_lines,
                               slots=TrainingSlots(1), abandon_after=ACTOR_ABANDON_AFTER)

    def start(self) -> None:
        self.run.start()

    def pause(self) -> None:
        self.run.pause()

    def resume(self) -> None:
        self.run.resume()

    def stop(self, message: str) -> None:
        self.run.stop(message)

    def view(self) -> RunView:
        self.run.touch()  # the app still asks: its student is there
        return self.run.view()

    def zip_bytes(self) -> bytes:
        self.run.touch()
        return self.run.zip_bytes()


def _empty_view(config: TrainConfig, status: str, message: str) -> RunView:
    return RunView(status=status, message=message, step=0, max_steps=config.max_steps, steps=[], train_loss=[],
                   learning_rates=[], tokens_per_second=0.0, seconds_left=0.0, validation=[], samples=[],
                   snapshots=[], copy_scores=[], waiting=0, slots=0, layer_grad_norms={}, update_ratios={})


class RayTrainingRun(Attended):
    """A student's run, trained by a `RunActor` on the cluster; the page's side of it."""

    WAITING = "Waiting for the cluster to give this run its CPUs; it starts by itself."

    def __init__(self, config: TrainConfig, data: PreparedData, probe_text: str, sample_prompt: str,
                 copy_test_lines: list[str] | None = None, cpus: int = ACTOR_CPUS, abandon_after: float | None = None):
        import ray

        super().__init__(abandon_after)
        self.config, self.data, self.copy_test_lines = config, data, copy_test_lines
        self.probe_ids = probe_token_ids(data, probe_text, config)
        self.serial = next(_SERIALS)
        self.actor_name = f"glassbox-run-{uuid.uuid4().hex[:12]}"
        remote = ray.remote(RunActor).options(
            num_cpus=cpus, name=self.actor_name, namespace=NAMESPACE, max_restarts=0,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": str(cpus)}})
        self._actor = remote.remote(config, data, probe_text, sample_prompt, copy_test_lines, cpus)
        self._lock = threading.Lock()
        self._latest = _empty_view(config, "ready", "")
        self._heard = False  # has the actor answered yet (it may wait for CPUs)
        self._sent = 0  # controls sent so far: an answer asked for before the last control is stale
        self._ended = threading.Event()  # the watcher has finished: the actor is gone
        self._folder: Path | None = None
        self._zip: bytes | None = None
        self._watcher = threading.Thread(target=self._watch, name="glassbox-ray-watcher", daemon=True)
        self._watcher.start()

    # --- what the page reads: the latest copy, never a wait on the cluster ---
    def view(self) -> RunView:
        with self._lock:
            return self._latest

    @property
    def status(self) -> str:
        return self.view().status

    @property
    def message(self) -> str:
        return self.view().message

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    # --- control: sent to the actor (Ray keeps one caller's calls in order), shown at once ---
    def _send(self, method: str, *args, status: str | None = None, only_from: tuple[str, ...] = ()) -> None:
        with self._lock:
            if only_from and self._latest.status not in only_from or self._ended.is_set():
                return
            if status is not None:
                message = self._latest.message if self._heard else self.WAITING
                self._latest = _replace_status(self._latest, status, message)
            self._sent += 1
            getattr(self._actor, method).remote(*args)

    def start(self) -> None:
        self._send("start", status="running", only_from=("ready",))

    def pause(self) -> None:
        self._send("pause", status="paused", only_from=("running",))

    def resume(self) -> None:
        self._send("resume", status="running", only_from=("paused",))

    def stop(self, message: str = "Stopped.") -> None:
        self._send("stop", message, only_from=("running", "paused", "ready"))

    def wait(self, timeout: float | None = None) -> None:
        """Until the run has ended (or `timeout` seconds)."""
        end = None if timeout is None else time.monotonic() + timeout
        while self.is_active and (end is None or time.monotonic() < end):
            time.sleep(0.05)

    # --- the watcher: progress in, heartbeat out, the actor ended with the student's pages ---
    def _watch(self) -> None:
        import ray
        from ray.exceptions import RayActorError

        reference = None  # the one question in flight: an actor still waiting for CPUs gets no queue of them
        try:
            while self.page_is_open():
                if reference is None:
                    with self._lock:
                        reference, sent = self._actor.view.remote(), self._sent
                ready, _ = ray.wait([reference], timeout=max(1.0, POLL_SECONDS))
                if not ready:
                    continue
                view, reference = ray.get(reference), None
                if view.has_model:
                    self.zip_bytes()  # the trained model comes home, so that the actor can give its CPUs back
                with self._lock:
                    if sent == self._sent:  # no control was sent after the question: the answer is current
                        self._heard, self._latest = True, view
                if view.status not in ACTIVE and view.status != "ready":
                    return  # the run has ended: its actor ends (finally), the page keeps its last view
                time.sleep(POLL_SECONDS)
            self._actor.stop.remote("Stopped: the page was closed.")
        except RayActorError as error:
            with self._lock:
                self._latest = _replace_status(
                    self._latest, "failed", "The machine that trained this run stopped working "
                    f"({type(error).__name__}); its progress so far is shown. Press Start to train again.")
        finally:
            self._end_actor()

    def _end_actor(self) -> None:
        import ray

        with self._lock:  # said before the actor goes, so that no one sees a running run without its actor
            if self._latest.status in (*ACTIVE, "ready"):
                self._latest = _replace_status(self._latest, "stopped", "Stopped: the page was closed.")
        if ray.is_initialized():  # not after the app's Ray connection has been shut down
            ray.kill(self._actor, no_restart=True)
        self._ended.set()

    # --- the finished model, brought back from the cluster ---
    def zip_bytes(self) -> bytes:
        import ray

        with self._lock:
            if self._zip is not None:
                return self._zip
        data = ray.get(self._actor.zip_bytes.remote(), timeout=300)
        with self._lock:
            self._zip = data
        return data

    def save(self) -> Path:
        """The trained model and tokenizer, unpacked into a folder of this process (for the lessons)."""
        data = self.zip_bytes()
        with self._lock:
            if self._folder is None:
                self._folder = app_lifetime_folder()
                zipfile.ZipFile(io.BytesIO(data)).extractall(self._folder)
            return self._folder


def _replace_status(view: RunView, status: str, message: str) -> RunView:
    return replace(view, status=status, message=message)


def live_actor_names() -> list[str]:
    """The names of this app's run actors alive on the cluster (for the tests' leak count)."""
    import ray

    return sorted(entry["name"] for entry in ray.util.list_named_actors(all_namespaces=True)
                  if entry["namespace"] == NAMESPACE)
