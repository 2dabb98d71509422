"""Lesson 7's choices before a run: what to train on (the source, the student's text, the
tokenizer) and the run's settings, as widgets bound to the session, and what they add up to:
the TrainConfig and the prepared data a run would train on. Layout and widgets only: the data
is core.live_training, the model and its schedule core.training. While a run trains, every
choice is locked: the figures under them describe the run in progress."""
from dataclasses import asdict

import streamlit as st

import course_ui
from core import figures, live_training
from core.cached import cached_step_seconds, cached_training_data
from core.copy_task import copy_line
from core.live_training import PRESETS, PreparedData, TextRejected
from core.tokenization import tokens_text
from core.training import SCHEDULES, TrainConfig, config_problem, schedule_curve, warmup_note

SOURCES = {"stories": "Short stories (the course corpus)", "copy": "A copy task (each line written twice)",
           "shakespeare": "Tiny Shakespeare", "text": "Your own text"}
DESIGNS = {"gpt2": "GPT-2 (2019): LayerNorm, learned positions, GELU",
           "llama": "Llama (today): RMSNorm, rotary positions, SwiGLU, shared key/value heads"}
PROBES = {"stories": ("Once upon a time, there was a girl named Mia. Mia had a red ball.", "Once upon a time,"),
          "copy": (copy_line("cat sun owl map jet fig".split()), "fox jam ink sea sky mud | fox"),
          "shakespeare": ("First Citizen:\nBefore we proceed any further, hear me speak.", "ROMEO:\n")}
KNOBS = {  # TrainConfig field: (label, min, max, step)
    "n_layer": ("Layers", 1, 8, 1), "n_head": ("Heads", 1, 8, 1), "n_embd": ("Width (d_model)", 16, 256, 16),
    "block_size": ("Context length", 16, 256, 16), "batch_size": ("Batch size", 1, 64, 1),
    "learning_rate": ("Learning rate", 1e-5, 1.0, 1e-4), "warmup_steps": ("Warm-up steps", 0, 2000, 10),
    "max_steps": ("Steps", 10, 20000, 10), "dropout": ("Dropout", 0.0, 0.5, 0.05),
    "weight_decay": ("Weight decay", 0.0, 1.0, 0.01), "grad_clip": ("Gradient clipping (max norm; 0 = off)", 0.0, 100.0, 0.5),
    "seed": ("Seed", 0, 2**31 - 1, 1),
}


CHOICES = ("t_source", "t_tokenizer", "t_vocab", "t_preset", *(f"t_{knob}" for knob in asdict(TrainConfig())))


def keep_choices() -> None:
    """Every choice kept across lessons, each given its default once per session (the 1-minute
    preset on the stories, with the BPE the server's warm-up prepares)."""
    course_ui.keep_values("t_text", *CHOICES)
    state = st.session_state
    state.setdefault("t_source", live_training.DEFAULT_SOURCE)
    state.setdefault("t_tokenizer", "bpe")
    state.setdefault("t_vocab", live_training.DEFAULT_BPE_VOCABULARY)
    state.setdefault("t_preset", "1-minute")
    for knob, value in asdict(PRESETS["1-minute"]).items():
        state.setdefault(f"t_{knob}", value)


def choices_now() -> dict:
    """The choices a run is started with, kept with it (TrainingChoices shows them while it trains)."""
    return {key: st.session_state[key] for key in CHOICES if key in st.session_state}


def same_tokens(started_with: dict, chosen: dict) -> bool:
    """Whether two runs' losses compare: the same source, tokenizer and vocabulary size (a loss is
    the surprise per token, so over other tokens it measures something else)."""
    keys = ("t_source", "t_tokenizer") + (("t_vocab",) if chosen.get("t_tokenizer") == "bpe" else ())
    return all(started_with.get(key) == chosen.get(key) for key in keys)


def mark_custom() -> None:
    """A setting changed by hand: the settings are no longer the preset's, and the picker says so."""
    st.session_state.t_preset = "custom"


def apply_preset() -> None:
    state = st.session_state
    if state.t_preset in PRESETS:
        for knob, value in asdict(PRESETS[state.t_preset]).items():
            state[f"t_{knob}"] = value
    if state.t_preset in live_training.PRESET_DATA:
        state.t_source, state.t_tokenizer = live_training.PRESET_DATA[state.t_preset]


class TrainingChoices:
    """The choices as one run of the page reads them. The data is prepared once per page run, so
    that the one sentence saying why no run can start on it is shown once."""

    def __init__(self, training=None):
        self.training = training  # the run that trains now, if any: what it trains on, and how, is locked
        self.locked = training is not None
        if training is not None:  # its locked widgets show what it was started with: a page reloaded
            st.session_state.update(training.started_with)  # mid-run would otherwise show its own choices
        self._data: tuple[PreparedData | None, str | None] | None = None
        self._which_text = ""  # which of the student's texts is used, when both an upload and pasted text are there

    def config(self) -> TrainConfig:
        if self.training is not None:
            return self.training.config  # the numbers under the settings describe the run in progress
        state = st.session_state
        return TrainConfig(**{knob: type(default)(state[f"t_{knob}"]) for knob, default in asdict(TrainConfig()).items()})

    def data(self) -> tuple[PreparedData | None, str | None]:
        """The prepared data for the chosen source and tokenizer (None if the text cannot be read),
        and the one sentence that says why no run can start on it (None if one can)."""
        if self._data is None:
            self._data = (self.training.data, None) if self.training is not None else self._prepare_data()
        return self._data

    def _prepare_data(self) -> tuple[PreparedData | None, str | None]:
        state = st.session_state
        vocab = live_training.BYTE_VOCABULARY if state.t_tokenizer == "bytes" else int(state.t_vocab)
        text = ""
        if state.t_source == "text":
            upload = state.get("t_upload")
            raw, self._which_text = live_training.students_text(upload.getvalue() if upload is not None else None,
                                                                state.get("t_text", ""))
            try:
                text = live_training.read_text_upload(raw)
            except TextRejected as error:
                return None, str(error)
        data = cached_training_data(state.t_source, text, vocab)
        return data, live_training.too_short(data, self.config())

    def why_no_start(self) -> str | None:
        """Where the page says why no run can start (for the Start button's help), or None."""
        if self.data()[1] is not None:
            return "No run can start on this data: the message under “Train on” says why."
        if config_problem(self.config()) is not None:
            return "No model can be built with these settings: the message under them says why."
        return None

    def probe(self, data: PreparedData) -> tuple[str, str]:
        """The fixed sentence whose attention the run records, and the prompt of its samples: the
        source's own, or for a student's text the start of its validation part."""
        if st.session_state.t_source in PROBES:
            return PROBES[st.session_state.t_source]
        val_text = tokens_text(data.tokenizer, data.val_ids[:200].tolist())
        return val_text[:80], val_text[:30]

    def source_widgets(self) -> None:
        state = st.session_state
        st.radio("Train on", list(SOURCES), key="t_source", format_func=SOURCES.get, horizontal=True, disabled=self.locked)
        if state.t_source == "text":
            need = live_training.tokens_needed(self.config())
            st.file_uploader("A UTF-8 text file (up to 3 MB)", type=["txt", "md"], key="t_upload", disabled=self.locked)
            st.text_area(f"…or paste text here (long enough for {need:,} training and {need:,} validation tokens "
                         "at this context length)", key="t_text", height=120, disabled=self.locked)
        problem = self.data()[1]
        if self._which_text:
            st.caption(self._which_text)
        if problem:
            st.warning(problem)

    def tokenizer_widgets(self) -> None:
        state = st.session_state
        left, right = st.columns(2)
        left.radio("Tokenizer", ["bytes", "bpe"], key="t_tokenizer", horizontal=True, disabled=self.locked,
                   format_func={"bytes": "Characters (one per byte)", "bpe": "Byte-level BPE"}.get)
        right.slider("BPE vocabulary size", 260, 2048, step=4, key="t_vocab",
                     disabled=self.locked or state.t_tokenizer == "bytes")
        data = self.data()[0]
        if data is not None:
            columns = st.columns(4)
            columns[0].metric("Vocabulary", f"{data.vocab_size:,}")
            columns[1].metric("Training tokens", f"{len(data.train_ids):,}")
            columns[2].metric("Validation tokens", f"{len(data.val_ids):,}")
            columns[3].metric("Tokens per character", f"{data.tokens_per_character:.3f}")
            if state.t_tokenizer == "bpe" and (stopped := live_training.vocabulary_note(data, int(state.t_vocab))):
                st.caption(stopped)

    def settings_widgets(self) -> None:
        """The preset, every setting, and what they add up to: the schedule, the step's measured
        time and the run's size (timing a step while a run trains would race it: locked then)."""
        state, locked = st.session_state, self.locked
        st.selectbox("Preset", [*PRESETS, "custom"], key="t_preset", on_change=apply_preset, disabled=locked,
                     help="The presets are sized for two CPU cores. While a run trains, its settings are locked.")
        with st.expander("All settings", expanded=state.t_preset == "custom"):
            columns = st.columns(4)
            for index, (knob, (label, low, high, step)) in enumerate(KNOBS.items()):
                columns[index % 4].number_input(label, low, high, step=step, key=f"t_{knob}", disabled=locked,
                                                on_change=mark_custom, format="%.5f" if knob == "learning_rate" else None)
            left, right = st.columns(2)
            left.selectbox("Design", list(DESIGNS), key="t_architecture", format_func=DESIGNS.get, disabled=locked,
                           on_change=mark_custom)
            right.number_input("Key/value heads (Llama design; 0 = one per head)", 0, 8, step=1, key="t_n_kv_head",
                               disabled=locked or state.t_architecture != "llama", on_change=mark_custom)
            left, middle, right = st.columns(3)
            left.number_input("Gradient accumulation (micro-batches per step)", 1, 16, step=1,
                              key="t_accumulation_steps", disabled=locked, on_change=mark_custom)
            middle.selectbox("Learning-rate schedule after warm-up", list(SCHEDULES), key="t_schedule", disabled=locked,
                             on_change=mark_custom)
            right.radio("Precision", ["float32", "bfloat16"], key="t_precision", horizontal=True, disabled=locked,
                        on_change=mark_custom)
            left, right = st.columns(2)
            # an experiment of the GPT-2 design; in the Llama design a box can only be ticked again (config_problem asks it)
            for column, label, knob in ((left, "Residual connections", "t_use_residual"),
                                        (right, "LayerNorm", "t_use_layernorm")):
                column.checkbox(label, key=knob, disabled=locked or (state.t_architecture != "gpt2" and state[knob]),
                                on_change=mark_custom)
        config, (data, problem) = self.config(), self.data()
        if settings_problem := config_problem(config):
            st.warning(settings_problem)
            return
        self._schedule(config)
        if data is None or problem:  # no run can start on this data (the page says why once, under the data)
            return
        seconds = cached_step_seconds(live_training.step_timing_config(config), data.vocab_size)
        columns = st.columns(3)
        columns[0].metric("Parameters", f"{live_training.estimate_parameters(config, data.vocab_size):,}")
        columns[1].metric("Time per step (measured now)", f"{seconds * 1000:.0f} ms",
                          help="One micro-batch's step, timed on this machine now, times the gradient accumulation.")
        columns[2].metric("Estimated training time", f"{seconds * config.max_steps / 60:.1f} min",
                          help="Time per step × steps. Validation, samples and the live charts come on top, and so "
                               "does any wait for the machine (see below).")

    @staticmethod
    def _schedule(config: TrainConfig) -> None:
        steps, rates = schedule_curve(config)
        course_ui.chart("t-schedule", (config.learning_rate, config.warmup_steps, config.max_steps, config.schedule,
                                       config.min_lr_ratio), lambda: figures.lines(
            steps, {"learning rate": rates}, "The learning rate over the whole run, before it starts", "step",
            "learning rate", height=240))
        if long_warmup := warmup_note(config):
            st.info(long_warmup)
        st.caption(f"Each step learns from {figures.counted(config.batch_size * config.accumulation_steps, 'example')} "
                   f"({config.batch_size} per micro-batch × {config.accumulation_steps}) of {config.block_size} tokens.")
