"""Lesson 7: the data, tokenizers and presets of the Training lesson, a training run that works in
its own thread (one per student, never the shared cached model), and one frozen training step
taken apart.
"""
from __future__ import annotations

import atexit
import itertools
import math
import os
import random
import shutil
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from collections.abc import Callable

import torch

from core.corpus import END_OF_TEXT, generate_stories
from core.architectures import weights_of
from core.glassbox import run_trace
from core.sampling import Strategy, generate
from core.tokenization import encode_corpus, train_byte_level_bpe
from core.training import Trainer, TrainConfig, layer_groups, new_model, parameter_count

MAX_UPLOAD_BYTES = 3_000_000  # the student's own text: UTF-8, at most this many bytes
BYTE_VOCABULARY = 257  # "characters": the 256 byte symbols and the end-of-text token, no merges
ABANDON_AFTER = 20.0  # seconds without the page asking: the tab is gone, the run stops
STORY_COUNT, STORY_SEED = 3000, 1  # the bundled story corpus for the lesson (not the course model's seed)
_SERIALS = itertools.count(1)

PRESETS = {
    "1-minute": TrainConfig(n_layer=2, n_head=4, n_embd=96, block_size=64, batch_size=32, learning_rate=3e-3,
                            warmup_steps=50, max_steps=600, weight_decay=0.1, grad_clip=1.0, seed=0),
    "5-minute": TrainConfig(n_layer=4, n_head=4, n_embd=128, block_size=128, batch_size=16, learning_rate=2e-3,
                            warmup_steps=100, max_steps=2500, weight_decay=0.1, grad_clip=1.0, seed=0),
    # the classic character-level demo on Tiny Shakespeare, sized for two CPU cores
    "Shakespeare": TrainConfig(n_layer=4, n_head=4, n_embd=128, block_size=128, batch_size=16, learning_rate=2e-3,
                               warmup_steps=100, max_steps=1500, weight_decay=0.1, grad_clip=1.0, seed=0),
}
PRESET_DATA = {"Shakespeare": ("shakespeare", "bytes")}  # preset -> (data source, tokenizer) it trains on


class TextRejected(ValueError):
    """The student's text cannot be used; the message is one sentence for the page."""


def read_text_upload(data: bytes) -> str:
    """The student's text as a string, or `TextRejected` with the reason."""
    if not data or not data.strip():
        raise TextRejected("The text is empty.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise TextRejected(f"The text is {len(data) / 1e6:.1f} MB; the lesson takes at most "
                           f"{MAX_UPLOAD_BYTES / 1e6:.0f} MB.")
    if b"\x00" in data:
        raise TextRejected("This looks like a binary file (it contains zero bytes), not text.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise TextRejected(f"This is not UTF-8 text (byte {error.start} cannot be read).") from error
    return text


def story_documents() -> list[str]:
    return [story.text for story in generate_stories(STORY_COUNT, STORY_SEED)]


COPY_WORDS = ("ant ape arm bag bat bed bee box bus cap car cat cow cup dog ear egg elf emu eye fan fig fox gem "
              "hat hen ice ink jam jar jet key kit leg lip log map mat mud net nut oak owl pan pen pig pot "
              "ram rat rug sea sky sun tea toy tub van web wig yak zip").split()
COPY_LINE_WORDS = 6
COPY_SEPARATOR = " |"


def copy_line(words: list[str]) -> str:
    return " ".join(words) + COPY_SEPARATOR + " " + " ".join(words)


def copy_task_documents(count: int = 4000, seed: int = 0) -> list[str]:
    """Lines of six different three-letter words written twice: "cat sun owl map jet fig | cat sun
    owl map jet fig". The second half can only be predicted by copying the first. Every line has
    the same length (in characters, and in tokens for a BPE that holds each word as one token), and
    training examples begin at a line's start, so the earlier copy of the next word is always the
    same number of tokens back: one attention head learns to look exactly there."""
    rng = random.Random(seed)
    return [copy_line(rng.sample(COPY_WORDS, COPY_LINE_WORDS)) for _ in range(count)]


def copy_test_lines(count: int = 20) -> list[str]:
    """New copy-task lines (another seed than the training lines') for scoring a model."""
    return copy_task_documents(count, seed=1)


def copy_distance(ids: list[int]) -> int | None:
    """How many tokens back the earlier copy lies in a copy-task line: the smallest d for which
    every token of the second half but its first equals the token d places before it (the first
    word of each half may tokenize differently: "cat" and " cat"). None if the halves differ."""
    for distance in range(len(ids) // 2, len(ids) - 1):
        if ids[distance + 1:] == ids[1:len(ids) - distance]:
            return distance
    return None


@dataclass
class CopyScore:
    """How well a model does the copy task, on new lines."""
    accuracy: float  # share of second-half tokens (all but the first) predicted top-1
    layer: int  # the head that looks back to the earlier copy the most
    head: int
    attention: float  # that head's mean attention on the earlier copy of the token to predict
    predictions: int  # how many predictions were scored


def copy_task_score(model, tokenizer, lines: list[str]) -> CopyScore | None:
    """Each line on its own (it starts at position 0, as in training): from every second-half
    position whose next token has an earlier copy, is the next token predicted, and how much
    attention does each head put on that earlier copy? None if no line splits into two copies
    under this tokenizer."""
    correct = total = 0
    attention_sum = None  # [layer, head]
    for line in lines:
        ids = tokenizer(line)["input_ids"][: weights_of(model).arch.n_ctx]
        distance = copy_distance(ids)
        if distance is None:
            continue
        trace = run_trace(model, ids)
        queries = torch.arange(distance, len(ids) - 1)  # [n_queries] positions predicting a copied token
        sources = queries + 1 - distance  # [n_queries] where that token stood in the first half
        targets = torch.tensor(ids)[queries + 1]  # [n_queries]
        correct += int((trace["logits"][queries].argmax(-1) == targets).sum())
        total += len(queries)
        patterns = torch.stack([trace[f"blocks.{layer}.attn.pattern"] for layer in range(trace.n_layer)])  # [layer, head, query, key]
        on_copy = patterns[:, :, queries, sources].sum(-1)  # [layer, head]
        attention_sum = on_copy if attention_sum is None else attention_sum + on_copy
    if not total:
        return None
    mean_attention = attention_sum / total  # [layer, head]
    layer, head = divmod(int(mean_attention.argmax()), mean_attention.shape[1])
    return CopyScore(correct / total, layer, head, float(mean_attention[layer, head]), total)


def text_documents(text: str) -> list[str]:
    """The student's text as documents: its paragraphs (blank-line separated), or the whole."""
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    return paragraphs if len(paragraphs) >= 10 else [text]


@dataclass
class PreparedData:
    tokenizer: object
    train_ids: torch.Tensor  # [n_train_tokens]
    val_ids: torch.Tensor  # [n_val_tokens]
    characters: int
    start_at_documents: bool = False  # training examples begin at a document's start (the copy task)

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    @property
    def tokens_per_character(self) -> float:
        return (len(self.train_ids) + len(self.val_ids)) / max(1, self.characters)


def prepare_data(documents: list[str], vocab_size: int, start_at_documents: bool = False) -> PreparedData:
    """Train a byte-level BPE of `vocab_size` on the training documents (257 = bytes only, no
    merges: one token per character of plain English) and encode train and validation.
    The last tenth of the documents (or of the text, for one document) is the validation set."""
    if len(documents) >= 10:
        cut = len(documents) - max(1, len(documents) // 10)
        train_docs, val_docs = documents[:cut], documents[cut:]
    else:
        text = "\n\n".join(documents)
        cut = int(len(text) * 0.9)
        train_docs, val_docs = [text[:cut]], [text[cut:]]
    tokenizer = train_byte_level_bpe(train_docs, vocab_size)
    return PreparedData(tokenizer, encode_corpus(tokenizer, train_docs), encode_corpus(tokenizer, val_docs),
                        sum(len(d) for d in documents), start_at_documents)


def training_data(source: str, text: str, vocab_size: int) -> PreparedData:
    """The lesson's data sources: "stories", "copy", "shakespeare" (Tiny Shakespeare, its speeches
    as documents), or "text" (the student's own `text`)."""
    if source == "stories":
        return prepare_data(story_documents(), vocab_size)
    if source == "shakespeare":
        from core.corpus import shakespeare_text

        return prepare_data(text_documents(shakespeare_text()), vocab_size)
    if source == "copy":
        return prepare_data(copy_task_documents(), vocab_size, start_at_documents=True)
    return replace(prepare_data(text_documents(text), vocab_size), characters=len(text))  # as the student counts


def tokens_needed(config: TrainConfig) -> int:
    """Tokens that the training part and the validation part of the data each need for a run of
    `config`: a context window of `block_size` tokens, the token it predicts last, and one more
    place to start from (the condition `Trainer` applies)."""
    return config.block_size + 2


def too_short(data: PreparedData, config: TrainConfig) -> str | None:
    """None if a run of `config` can train and validate on `data`; else one sentence for the page:
    how long the text is, how long it must be, and why."""
    need = tokens_needed(config)
    have = min(len(data.train_ids), len(data.val_ids))
    if have >= need:
        return None
    # tokens grow with the text: scale the characters to the part that falls shortest
    about = -(-data.characters * need // max(1, have))
    about = -(-about // 100) * 100
    return (f"Your text has {data.characters:,} characters, which this tokenizer makes into "
            f"{len(data.train_ids):,} training and {len(data.val_ids):,} validation tokens (the last tenth is kept "
            f"for validation), but a context length of {config.block_size} needs at least {need:,} of each, a full "
            f"window of text to train on and another to validate on, so the text must be about {about:,} "
            f"characters or longer.")


def uniform_loss(vocab_size: int) -> float:
    """The loss of a model that gives every token the same probability: ln(vocab)."""
    return math.log(vocab_size)


def estimate_parameters(config: TrainConfig, vocab_size: int) -> int:
    return parameter_count(new_model(config, vocab_size, eos_token_id=0))


def measure_step_seconds(config: TrainConfig, vocab_size: int, steps: int = 5) -> float:
    """Seconds per training step of this configuration on this machine, now: the median of
    `steps` steps on random tokens, after two warm-up steps."""
    ids = torch.randint(0, vocab_size, (config.block_size * 4 + 2,), generator=torch.Generator().manual_seed(0))
    trainer = Trainer(replace(config, max_steps=steps + 2), ids, ids, vocab_size, eos_token_id=0)
    trainer.step()  # warm-up: the first steps allocate
    trainer.step()
    timings = []
    for _ in range(steps):
        began = time.perf_counter()
        trainer.step(measure_layers=True)
        timings.append(time.perf_counter() - began)
    return statistics.median(timings)


# --- one training run, in its own thread ---------------------------------------------------------
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


@dataclass
class TrainingRun:
    """One student's training run. The page calls start / pause / resume / stop and reads
    `view()`. The run ends by itself when the student's page is gone: `is_page_open()` turns False
    (the browser tab was closed), or, without that check, `touch()` has not been called for
    ABANDON_AFTER seconds."""
    config: TrainConfig
    data: PreparedData
    probe_text: str  # the fixed sentence whose attention patterns are recorded during training
    sample_prompt: str
    eval_every: int = 50
    sample_every: int = 100
    snapshot_every: int = 100
    is_page_open: Callable[[], bool] | None = None  # the app's own check; without it, `touch()` heartbeats
    copy_test_lines: list[str] | None = None  # copy-task lines never trained on, scored at each evaluation
    slots: TrainingSlots = TRAINING_SLOTS  # shared by every run of this process
    status: str = "ready"  # ready, running, paused, stopped, finished, diverged
    message: str = ""
    _history: list = field(default_factory=list)
    _validation: list = field(default_factory=list)
    _samples: list = field(default_factory=list)
    _snapshots: list = field(default_factory=list)
    _copy_scores: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.trainer = Trainer(self.config, self.data.train_ids, self.data.val_ids, self.data.vocab_size,
                               self.data.tokenizer.convert_tokens_to_ids(END_OF_TEXT), self.data.start_at_documents)
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_seen = time.monotonic()
        self._began = 0.0
        self._busy_seconds = 0.0
        self.probe_ids = self.data.tokenizer(self.probe_text)["input_ids"][: self.config.block_size]
        self.folder: Path | None = None
        self.serial = next(_SERIALS)  # tells this run's figures from another's

    # --- control (called from the page) ---
    def start(self) -> None:
        if self._thread is None:
            self.status = "running"
            self.slots.join_queue(self.serial)
            self._running.set()
            self._thread = threading.Thread(target=self._work, name="glassbox-training", daemon=True)
            self._thread.start()

    def pause(self) -> None:
        if self.status == "running":
            self._running.clear()
            self.status = "paused"

    def resume(self) -> None:
        if self.status == "paused":
            self.status = "running"
            self.slots.join_queue(self.serial)
            self._running.set()

    def stop(self, message: str = "Stopped.") -> None:
        if self.status in ("running", "paused", "ready"):
            self.message = message
            self._stopping.set()
            self._running.set()  # wake a paused worker so it can end

    def touch(self) -> None:
        self._last_seen = time.monotonic()

    def wait(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def is_active(self) -> bool:
        return self.status in ("running", "paused")

    def _page_is_open(self) -> bool:
        if self.is_page_open is not None:
            return self.is_page_open()
        return time.monotonic() - self._last_seen <= ABANDON_AFTER

    # --- the worker ---
    def _work(self) -> None:
        torch.manual_seed(self.config.seed)
        try:
            self._train()
        finally:
            self.slots.release(self.serial)

    def _train(self) -> None:
        started = False
        while self.trainer.step_count < self.config.max_steps:
            if not self._page_is_open():
                self._stopping.set()
                self.message = "Stopped: the page was closed."
            if self._stopping.is_set():
                self.status = "stopped"
                return
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
            self._busy_seconds += time.perf_counter() - began
            if result.diverged:
                self.status = "diverged"
                self.message = (f"The loss became {result.loss} at step {result.step}: the updates grew so large "
                                "that the numbers overflowed. This happens when the learning rate is too high; "
                                "lower it (or keep gradient clipping on) and start again.")
                return
            with self._lock:
                self._history.append(result)
            self._record(result.step)
        self.status = "finished"
        self.message = f"Finished {self.config.max_steps} steps."

    def _record(self, step: int) -> None:
        last = step == self.config.max_steps
        if step % self.eval_every == 0 or last:
            loss = self.trainer.validation_loss()
            score = (copy_task_score(self.trainer.model, self.data.tokenizer, self.copy_test_lines)
                     if self.copy_test_lines else None)
            with self._lock:
                self._validation.append((step, loss))
                if score is not None:
                    self._copy_scores.append((step, score))
        if step % self.sample_every == 0 or last:
            text = self.sample()
            with self._lock:
                self._samples.append((step, text))
        if step % self.snapshot_every == 0 or last:
            patterns = self.attention_patterns()
            with self._lock:
                self._snapshots.append((step, patterns))

    def sample(self, seed: int = 0) -> str:
        """A continuation of the sample prompt by the model as it is now (T = 0.8, top-k 40)."""
        model = self.trainer.model
        prompt_ids = self.data.tokenizer(self.sample_prompt)["input_ids"][: self.config.block_size // 2] or [0]
        n_tokens = min(60, self.config.block_size - len(prompt_ids))
        was_training = model.training
        model.eval()
        result = generate(model, prompt_ids, n_tokens, Strategy(0.8, 40, 1.0), seed)
        model.train(was_training)
        return self.data.tokenizer.decode(result.prompt_ids + result.new_ids)

    def attention_patterns(self) -> torch.Tensor:
        """Every head's attention pattern on the probe sentence: [layer, head, pos, pos]."""
        trace = run_trace(self.trainer.model, self.probe_ids)
        return torch.stack([trace[f"blocks.{l}.attn.pattern"] for l in range(trace.n_layer)])

    def view(self) -> RunView:
        with self._lock:
            history = list(self._history)
            validation, samples, snapshots = list(self._validation), list(self._samples), list(self._snapshots)
            copy_scores = list(self._copy_scores)
        step = history[-1].step if history else 0
        recent = history[-20:]
        seconds = sum(r.seconds for r in recent)
        tokens_per_second = sum(r.tokens for r in recent) / seconds if seconds else 0.0
        per_step = self._busy_seconds / step if step else 0.0
        groups = list(layer_groups(self.trainer.model))
        return RunView(
            status=self.status, message=self.message, step=step, max_steps=self.config.max_steps,
            steps=[r.step for r in history], train_loss=[r.loss for r in history],
            learning_rates=[r.learning_rate for r in history], tokens_per_second=tokens_per_second,
            seconds_left=per_step * (self.config.max_steps - step), validation=validation, samples=samples,
            snapshots=snapshots, copy_scores=copy_scores, waiting=self.slots.runs_ahead(self.serial),
            slots=self.slots.count,
            layer_grad_norms={g: [r.layer_grad_norms[g] for r in history] for g in groups},
            update_ratios={g: [r.update_ratios[g] for r in history] for g in groups})

    def save(self) -> Path:
        """The trained model and its tokenizer in Hugging Face format, in a folder of its own."""
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="glassbox-trained-"))
            atexit.register(shutil.rmtree, self.folder, ignore_errors=True)  # lives as long as the app
            model = self.trainer.model
            model.eval()
            model.save_pretrained(self.folder)
            self.data.tokenizer.save_pretrained(self.folder)
        return self.folder

    def zip_bytes(self) -> bytes:
        if getattr(self, "_zip", None) is None:
            folder = self.save()
            archive = Path(shutil.make_archive(str(folder) + "-zip", "zip", root_dir=folder))
            self._zip = archive.read_bytes()
            archive.unlink()
        return self._zip


# --- backpropagation, one frozen step -------------------------------------------------------------
