"""Lesson 7's training run: one student's run in its own thread (never the shared cached model),
the queue that lets a machine train a few runs at a time, and the registry that keeps a run for
its student across a page reload.

The page reads a run only through `view()`, a consistent copy made under the run's lock; the run's
state (status, message, history) changes only under that lock, from the page's controls and from
the worker thread.
"""
from __future__ import annotations

import atexit
import itertools
import logging
import math
import os
import secrets
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from core.copy_task import CopyScore, copy_task_score
from core.corpus import END_OF_TEXT
from core.glassbox import run_trace
from core.live_training import PreparedData
from core.sampling import Strategy, generate
from core.tokenization import tokens_text
from core.training import Trainer, TrainConfig, layer_groups

ABANDON_AFTER = 20.0  # seconds with no open page (no live session, no touch()): the student is gone, the run stops
ACTIVE = ("running", "paused")  # a run's statuses while it may still train; then stopped, finished, diverged (or failed)
_SERIALS = itertools.count(1)


def probe_token_ids(data: PreparedData, probe_text: str, config: TrainConfig) -> list[int]:
    """The fixed sentence whose attention patterns a run records, as ids, cut to the context."""
    return data.tokenizer(probe_text)["input_ids"][: config.block_size]


def app_lifetime_folder() -> Path:
    """A new folder for a trained model, deleted when the app ends."""
    folder = Path(tempfile.mkdtemp(prefix="glassbox-trained-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


class TrainingSlots:
    """How many runs may train at once in this process; the others wait their turn, first come
    first served. On two cores one run already uses both: two runs at once train no faster in
    total, and forty (a class on one Cloud app) would each crawl. A paused run gives its slot up."""

    def __init__(self, count: int):
        self.count = count
        self._changed = threading.Condition()
        self._holders: set[int] = set()
        self._queue: list[int] = []  # run serials waiting, in order of arrival

    def join_queue(self, serial: int) -> None:
        """Take a place in the queue now (when the student presses Start or Resume), so the order
        is the order of the clicks, not of the worker threads' first steps."""
        with self._changed:
            if serial not in self._holders and serial not in self._queue:
                self._queue.append(serial)

    def acquire(self, serial: int, timeout: float) -> bool:
        """True once `serial` holds a slot; False if it is still waiting after `timeout` seconds."""
        self.join_queue(serial)
        with self._changed:
            if serial in self._holders:
                return True
            if not self._changed.wait_for(lambda: len(self._holders) < self.count and self._queue[0] == serial,
                                          timeout):
                return False
            self._queue.pop(0)
            self._holders.add(serial)
            return True

    def release(self, serial: int) -> None:
        """Give the slot back, or leave the queue."""
        with self._changed:
            self._holders.discard(serial)
            if serial in self._queue:
                self._queue.remove(serial)
            self._changed.notify_all()

    def runs_ahead(self, serial: int) -> int:
        """0 if `serial` trains (or does not wait); else how many runs wait before it, plus one."""
        with self._changed:
            return self._queue.index(serial) + 1 if serial in self._queue else 0


def available_cores(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """The CPU cores this process may use: those it is allowed to run on, capped by a container's
    CPU quota (cgroup v2 `cpu.max` or v1 `cpu.cfs_quota_us`), which is how hosted apps such as
    Community Cloud are limited while `os.cpu_count()` reports the whole host."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        if (cgroup / "cpu.max").is_file():
            quota, period = (cgroup / "cpu.max").read_text().split()[:2]
        else:
            quota = (cgroup / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (cgroup / "cpu" / "cpu.cfs_period_us").read_text().strip()
        if quota not in ("max", "-1"):
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no quota to read: the affinity stands
    return cores


# One run per two cores; settable for another machine: GLASSBOX_TRAINING_SLOTS=4 streamlit run Home.py
TRAINING_SLOTS = TrainingSlots(int(os.environ.get("GLASSBOX_TRAINING_SLOTS", max(1, available_cores() // 2))))


@dataclass
class RunView:
    """A consistent copy of a run's progress, for drawing."""
    status: str
    message: str
    step: int
    max_steps: int
    steps: list[int]
    train_loss: list[float]
    learning_rates: list[float]
    tokens_per_second: float
    seconds_left: float
    validation: list[tuple[int, float]]
    samples: list[tuple[int, str]]
    snapshots: list[tuple[int, torch.Tensor]]  # (step, attention patterns [layer, head, pos, pos])
    copy_scores: list[tuple[int, CopyScore]]  # (step, the copy test), for copy-task runs
    waiting: int  # 0 while training; else the run's place in the queue for a training slot
    slots: int  # how many runs this machine trains at once
    layer_grad_norms: dict[str, list[float]]
    update_ratios: dict[str, list[float]]

    @property
    def has_model(self) -> bool:
        """The run ended by itself or was stopped after some steps: its model is worth keeping."""
        return self.status in ("finished", "stopped") and bool(self.steps)


@dataclass(frozen=True)
class Cadence:
    """How often a run measures itself: validation loss (and the copy test), a sample of text, and
    a snapshot of its attention patterns. About 40 points on the loss chart and 10 samples and
    snapshots, whatever the run's length, so that measuring costs a small share of training."""
    eval_every: int
    sample_every: int
    snapshot_every: int

    @classmethod
    def for_steps(cls, max_steps: int) -> Cadence:
        return cls(eval_every=max(10, max_steps // 40), sample_every=max(20, max_steps // 10),
                   snapshot_every=max(20, max_steps // 10))


class Attended:
    """Something that lives while its student is there: while any session attached to it
    (`attach`) is alive, or `touch()` was called within `abandon_after` seconds. The grace lets a
    reloaded page (a new session) find it again and attach."""

    def __init__(self, abandon_after: float | None = None):
        self.abandon_after = ABANDON_AFTER if abandon_after is None else abandon_after
        self._seen_lock = threading.Lock()
        self._alive_checks: list[Callable[[], bool]] = []
        self._last_seen = time.monotonic()
        self._owner: tuple[str, Callable[[], bool] | None] | None = None  # the page that may control it (may_control)
        self.started_with: dict = {}  # the page's choices it was started with (lesson 7 shows them again after a reload)

    def attach(self, is_alive: Callable[[], bool] | None) -> None:
        """A session that shows this run (a page, or the same page after a reload). `is_alive` is
        callable from any thread."""
        with self._seen_lock:
            self._last_seen = time.monotonic()
            if is_alive is not None and is_alive not in self._alive_checks:
                self._alive_checks.append(is_alive)

    def may_control(self, session: str, is_alive: Callable[[], bool] | None) -> bool:
        """Whether the page of `session` may pause, resume, stop or reset this: the page that started
        it, or, once that page is gone (a reload is a new session), the first page to come back.
        Another page that opens its address while the owner's page is still open (a link copied to
        a classmate) may only watch. Without a session check (AppTest, the benches) an owner counts
        as present."""
        with self._seen_lock:
            owner = self._owner
            if owner is None or owner[0] == session or (owner[1] is not None and not owner[1]()):
                self._owner = (session, is_alive)
                return True
            return False

    def touch(self) -> None:
        """A heartbeat, for pages that have no session check (AppTest, the benches)."""
        with self._seen_lock:
            self._last_seen = time.monotonic()

    def page_is_open(self) -> bool:
        with self._seen_lock:
            checks = list(self._alive_checks)
        if any(is_alive() for is_alive in checks):
            self.touch()
            return True
        with self._seen_lock:
            return time.monotonic() - self._last_seen <= self.abandon_after


class TrainingRun(Attended):
    """One student's training run, in a thread of this process. The page calls start / pause /
    resume / stop and reads `view()`. The run ends by itself when its student is gone (`Attended`)."""

    def __init__(self, config: TrainConfig, data: PreparedData, probe_text: str, sample_prompt: str,
                 cadence: Cadence | None = None, copy_test_lines: list[str] | None = None,
                 slots: TrainingSlots | None = None, abandon_after: float | None = None):
        self.config, self.data = config, data
        self.probe_text = probe_text  # the fixed sentence whose attention patterns are recorded during training
        self.sample_prompt = sample_prompt  # where the samples of text start
        self.cadence = cadence or Cadence.for_steps(config.max_steps)
        self.copy_test_lines = copy_test_lines  # copy-task lines never trained on, scored at each evaluation
        super().__init__(abandon_after)
        self.slots = slots or TRAINING_SLOTS  # shared by every run of this process
        self.trainer = Trainer(config, data.train_ids, data.val_ids, data.vocab_size,
                               data.tokenizer.convert_tokens_to_ids(END_OF_TEXT), data.start_at_documents)
        self.probe_ids = probe_token_ids(data, probe_text, config)
        self.serial = next(_SERIALS)  # tells this run's figures from another's
        self._lock = threading.Lock()  # guards everything below that the page and the worker share
        self._status = "ready"  # ready, running, paused, stopped, finished, diverged
        self._message = ""
        self._history: list = []
        self._validation: list[tuple[int, float]] = []
        self._samples: list[tuple[int, str]] = []
        self._snapshots: list[tuple[int, torch.Tensor]] = []
        self._copy_scores: list[tuple[int, CopyScore]] = []
        self._busy_seconds = 0.0
        self._running = threading.Event()  # set while the worker may train (cleared by pause)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._folder: Path | None = None
        self._zip: bytes | None = None

    # --- what the page reads ---
    @property
    def status(self) -> str:
        with self._lock:
            return self._status

    @property
    def message(self) -> str:
        with self._lock:
            return self._message

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    def view(self) -> RunView:
        with self._lock:
            status, message, busy = self._status, self._message, self._busy_seconds
            history = list(self._history)
            validation, samples, snapshots = list(self._validation), list(self._samples), list(self._snapshots)
            copy_scores = list(self._copy_scores)
        step = history[-1].step if history else 0
        recent = history[-20:]
        seconds = sum(r.seconds for r in recent)
        tokens_per_second = sum(r.tokens for r in recent) / seconds if seconds else 0.0
        per_step = busy / step if step else 0.0
        groups = list(layer_groups(self.trainer.model))
        return RunView(
            status=status, message=message, step=step, max_steps=self.config.max_steps,
            steps=[r.step for r in history], train_loss=[r.loss for r in history],
            learning_rates=[r.learning_rate for r in history], tokens_per_second=tokens_per_second,
            seconds_left=per_step * (self.config.max_steps - step), validation=validation, samples=samples,
            snapshots=snapshots, copy_scores=copy_scores, waiting=self.slots.runs_ahead(self.serial),
            slots=self.slots.count,
            layer_grad_norms={g: [r.layer_grad_norms[g] for r in history] for g in groups},
            update_ratios={g: [r.update_ratios[g] for r in history] for g in groups})

    # --- control (called from the page) ---
    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._status = "running"
            self.slots.join_queue(self.serial)
            self._running.set()
            self._thread = threading.Thread(target=self._work, name="glassbox-training", daemon=True)
            self._thread.start()

    def pause(self) -> None:
        with self._lock:
            if self._status == "running":
                self._running.clear()
                self._status = "paused"

    def resume(self) -> None:
        with self._lock:
            if self._status == "paused":
                self._status = "running"
                self.slots.join_queue(self.serial)
                self._running.set()

    def stop(self, message: str = "Stopped.") -> None:
        with self._lock:
            if self._status in ("running", "paused", "ready"):
                self._message = message
                self._stopping.set()
                self._running.set()  # wake a paused worker so that it can end

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    # --- the worker ---
    def _work(self) -> None:
        torch.manual_seed(self.config.seed)
        try:
            self._train()
        except Exception as error:  # the run ends with one sentence on the page; the traceback goes to the log
            logging.getLogger(__name__).exception("training run %s failed", self.serial)
            self._end("failed", f"This run stopped with an error ({type(error).__name__}); its progress so far is "
                                "shown. Press Start to train again.")
        finally:
            self.slots.release(self.serial)

    def _end(self, status: str, message: str | None = None) -> None:
        with self._lock:
            self._status = status
            if message is not None:
                self._message = message

    def _train(self) -> None:
        started = False
        while self.trainer.step_count < self.config.max_steps:
            if not self.page_is_open():
                self.stop("Stopped: the page was closed.")
            if self._stopping.is_set():
                return self._end("stopped")
            if not self._running.wait(timeout=0.25):
                self.slots.release(self.serial)  # paused: let another run train meanwhile
                continue
            if self._stopping.is_set() or not self.slots.acquire(self.serial, timeout=0.25):
                continue
            if not started:
                self._record(0)
                started = True
            began = time.perf_counter()
            result = self.trainer.step(measure_layers=True)
            if result.diverged:
                return self._end("diverged", f"The loss became {result.loss} at step {result.step}: the updates grew "
                                             "so large that the numbers overflowed. This happens when the learning "
                                             "rate is too high; lower it (or keep gradient clipping on) and start again.")
            with self._lock:
                self._busy_seconds += time.perf_counter() - began
                self._history.append(result)
            self._record(result.step)
        self._end("finished", f"Finished {self.config.max_steps} steps.")

    def _record(self, step: int) -> None:
        last, every = step == self.config.max_steps, self.cadence
        if step % every.eval_every == 0 or last:
            loss = self.trainer.validation_loss()
            score = (copy_task_score(self.trainer.model, self.data.tokenizer, self.copy_test_lines)
                     if self.copy_test_lines and not self.config.runs_own_forward else None)  # (own_forward_note)
            with self._lock:
                self._validation.append((step, loss))
                if score is not None:
                    self._copy_scores.append((step, score))
        if step % every.sample_every == 0 or last:
            text = self.sample()
            with self._lock:
                self._samples.append((step, text))
        if (step % every.snapshot_every == 0 or last) and not self.config.runs_own_forward:  # (see own_forward_note)
            patterns = self.attention_patterns()
            with self._lock:
                self._snapshots.append((step, patterns))

    # --- the model as it is now (the worker's, or a finished run's) ---
    def sample(self, seed: int = 0) -> str:
        """A continuation of the sample prompt by the model as it is now (T = 0.8, top-k 40)."""
        model = self.trainer.model
        prompt_ids = self.data.tokenizer(self.sample_prompt)["input_ids"][: self.config.block_size // 2] or [0]
        n_tokens = min(60, self.config.block_size - len(prompt_ids))
        was_training = model.training
        model.eval()
        forward = self.trainer.own_forward if self.config.runs_own_forward else None  # the forward it trains with
        result = generate(model, prompt_ids, n_tokens, Strategy(0.8, 40, 1.0), seed, forward=forward)
        model.train(was_training)
        return tokens_text(self.data.tokenizer, result.prompt_ids + result.new_ids)

    def attention_patterns(self) -> torch.Tensor:
        """Every head's attention pattern on the probe sentence: [layer, head, pos, pos]."""
        trace = run_trace(self.trainer.model, self.probe_ids)
        return torch.stack([trace["pattern", layer] for layer in range(trace.n_layer)])

    def save(self) -> Path:
        """The trained model and its tokenizer in Hugging Face format, in a folder of its own."""
        with self._lock:
            if self._folder is None:
                self._folder = app_lifetime_folder()
                self.trainer.model.eval()
                self.trainer.model.save_pretrained(self._folder)
                self.data.tokenizer.save_pretrained(self._folder)
            return self._folder

    def zip_bytes(self) -> bytes:
        folder = self.save()
        with self._lock:
            if self._zip is None:
                archive = Path(shutil.make_archive(str(folder) + "-zip", "zip", root_dir=folder))
                self._zip = archive.read_bytes()
                archive.unlink()
            return self._zip


class RunRegistry:
    """Every run of this process by an unguessable token, which the page keeps in its address
    (`?run=…`): a reload, a new session of the same tab, finds its run again by it. A run leaves
    the registry once it has ended and no page has shown it for its grace period."""

    def __init__(self):
        self._lock = threading.Lock()
        self._runs: dict[str, TrainingRun] = {}

    def add(self, run: TrainingRun) -> str:
        token = secrets.token_urlsafe(16)
        with self._lock:
            self._runs[token] = run
        self.forget_abandoned()
        return token

    def find(self, token: str | None) -> TrainingRun | None:
        self.forget_abandoned()
        with self._lock:
            return self._runs.get(token) if token else None

    def forget_abandoned(self) -> None:
        with self._lock:
            runs = list(self._runs.items())
        gone = [token for token, run in runs if not run.is_active and not run.page_is_open()]
        with self._lock:
            for token in gone:
                self._runs.pop(token, None)


RUNS = RunRegistry()  # this process's runs


def new_run(config: TrainConfig, data: PreparedData, probe_text: str, sample_prompt: str,
            copy_test_lines: list[str] | None = None) -> tuple[TrainingRun, str | None]:
    """A run for the page to start: on the Ray cluster when an address is configured
    (core.ray_runs), else in this process. The second value is one sentence for the page when a
    configured cluster cannot take the run and it trains here instead (None otherwise)."""
    from core import ray_runs  # no Ray import unless an address is set

    address, note = ray_runs.ray_address(), None
    if address:
        try:
            ray_runs.connect(address)
            return ray_runs.RayTrainingRun(config, data, probe_text, sample_prompt, copy_test_lines), None
        except ray_runs.ClusterUnavailable as error:
            note = f"{error} Your run trains on this machine instead."
    return TrainingRun(config, data, probe_text, sample_prompt, copy_test_lines=copy_test_lines), note
