"""Lesson 7's data and presets: the sources a student trains on (stories, the copy task, Tiny
Shakespeare, their own text), the tokenizer trained on them, the presets sized for two cores, and
what a configuration costs (parameters, measured time per step). The run itself is
core.training_run; the copy task core.copy_task; the frozen step core.backprop_step."""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import astuple, dataclass, replace
from functools import lru_cache

import torch

from core.copy_task import copy_task_documents
from core.corpus import generate_stories
from core.tokenization import encode_corpus, train_byte_level_bpe
from core.models import parameter_count
from core.training import Trainer, TrainConfig, new_model

MAX_UPLOAD_BYTES = 3_000_000  # the student's own text: UTF-8, at most this many bytes
BYTE_VOCABULARY = 257  # "characters": the 256 byte symbols and the end-of-text token, no merges
STORY_COUNT, STORY_SEED = 3000, 1  # the bundled story corpus for the lesson (not the course model's seed)

PRESETS = {
    "1-minute": TrainConfig(n_layer=2, n_head=4, n_embd=96, block_size=64, batch_size=32, learning_rate=3e-3,
                            warmup_steps=50, max_steps=600, weight_decay=0.1, grad_clip=1.0, seed=0),
    "5-minute": TrainConfig(n_layer=4, n_head=4, n_embd=128, block_size=128, batch_size=16, learning_rate=2e-3,
                            warmup_steps=100, max_steps=2500, weight_decay=0.1, grad_clip=1.0, seed=0),
    # the classic character-level demo on Tiny Shakespeare, sized for two CPU cores
    "Shakespeare": TrainConfig(n_layer=4, n_head=4, n_embd=128, block_size=128, batch_size=16, learning_rate=2e-3,
                               warmup_steps=100, max_steps=1500, weight_decay=0.1, grad_clip=1.0, seed=0),
}
DEFAULT_SOURCE, DEFAULT_BPE_VOCABULARY = "stories", 512  # what lesson 7 trains on until the student chooses
PRESET_DATA = {"Shakespeare": ("shakespeare", "bytes")}  # preset -> (data source, tokenizer) it trains on


class TextRejected(ValueError):
    """The student's text cannot be used; the message is one sentence for the page."""


def read_text_upload(data: bytes) -> str:
    """The student's text as a string, or `TextRejected` with the reason."""
    if not data or not data.strip():
        raise TextRejected("The text is empty.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise TextRejected(f"The text is {len(data):,} bytes; the lesson takes at most {MAX_UPLOAD_BYTES:,} "
                           f"({MAX_UPLOAD_BYTES / 1e6:.0f} MB).")
    if b"\x00" in data:
        raise TextRejected("This looks like a binary file (it contains zero bytes), not text.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise TextRejected(f"This is not UTF-8 text (byte {error.start} cannot be read).") from error
    return text


def story_documents() -> list[str]:
    return [story.text for story in generate_stories(STORY_COUNT, STORY_SEED)]


def students_text(uploaded: bytes | None, pasted: str) -> tuple[bytes, str | None]:
    """The bytes lesson 7 trains on when the student brings a text: an uploaded file's, else the pasted
    text's; and one sentence when both are there (the pasted text is then not used)."""
    if uploaded is None:
        return pasted.encode("utf-8"), None
    return uploaded, ("Training uses the uploaded file, not the pasted text; remove the file (×) to train on "
                      "the pasted text." if pasted.strip() else None)


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
            f"characters or longer{_OR_CHARACTERS if data.vocab_size > BYTE_VOCABULARY else ''}.")


def vocabulary_note(data: PreparedData, asked: int) -> str | None:
    """One sentence when a BPE stopped short of the vocabulary size asked for, else None: every
    word of the text (as the tokenizer cuts it) is already one token, so no pair is left to merge."""
    if data.vocab_size >= asked:
        return None
    return (f"The BPE stopped at {data.vocab_size:,} tokens, not the {asked:,} asked for: every word of this text "
            f"(as the tokenizer cuts it) is already one token, so no pair is left to merge.")


# the tokenizer that makes the most tokens of any text: its merges are what a BPE takes away
_OR_CHARACTERS = " (or choose the “Characters” tokenizer: one token per byte, the most any text gives)"


def uniform_loss(vocab_size: int) -> float:
    """The loss of a model that gives every token the same probability: ln(vocab)."""
    return math.log(vocab_size)


def estimate_parameters(config: TrainConfig, vocab_size: int) -> int:
    """The parameters a model of this configuration has: counted once per configuration (building
    the model for real at every rerun of lesson 7 cost it ~38 ms)."""
    return _parameters_of(astuple(config), vocab_size)


@lru_cache(maxsize=256)
def _parameters_of(config_fields: tuple, vocab_size: int) -> int:
    with torch.device("meta"):  # shapes only: no memory, no random weights (23 ms, not 38)
        return parameter_count(new_model(TrainConfig(*config_fields), vocab_size, eos_token_id=0))


def step_timing_config(config: TrainConfig) -> TrainConfig:
    """The config as far as a step's time depends on it: the seed, the learning rate and its
    schedule, the number of steps and the weight decay set to their defaults, so that changing one
    of them reuses the measurement (each new one cost the page seconds, and its estimate moved with
    the noise of the timing, not with the setting)."""
    default = TrainConfig()
    return replace(config, seed=default.seed, learning_rate=default.learning_rate, min_lr_ratio=default.min_lr_ratio,
                   warmup_steps=default.warmup_steps, max_steps=default.max_steps, schedule=default.schedule,
                   weight_decay=default.weight_decay)


def measure_step_seconds(config: TrainConfig, vocab_size: int, steps: int = 5, quick: float = 1.0) -> float:
    """Seconds per training step of this configuration on this machine, now: one micro-batch's
    step, the median of `steps` steps on random tokens after two warm-up steps, times the
    gradient accumulation. A first step slower than `quick` seconds is the measurement: the page
    waits for it, and the largest settings take 13 s a step on two cores (7 steps, with 16
    micro-batches each, kept a page busy for 25 minutes)."""
    ids = torch.randint(0, vocab_size, (config.block_size * 4 + 2,), generator=torch.Generator().manual_seed(0))
    micro = replace(config, max_steps=steps + 2, accumulation_steps=1)
    trainer = Trainer(micro, ids, ids, vocab_size, eos_token_id=0)
    began = time.perf_counter()
    trainer.step(measure_layers=True)  # warm-up: the first steps allocate
    first = time.perf_counter() - began
    if first >= quick:
        return first * config.accumulation_steps
    trainer.step()
    timings = []
    for _ in range(steps):
        began = time.perf_counter()
        trainer.step(measure_layers=True)
        timings.append(time.perf_counter() - began)
    return statistics.median(timings) * config.accumulation_steps
