"""Lesson 7: Training. Layout and widgets; the run is core.training_run.TrainingRun (one per
session, in its own thread, found again after a reload) or, with a Ray address set,
core.ray_runs.RayTrainingRun (the same run in a Ray actor); what the page shows of a run, and the
frozen step, is training_views; the figures are in core.figures."""
from dataclasses import asdict

import streamlit as st

import course_ui
import training_views
from core import figures, live_training
from core.cached import cached_step_seconds, cached_training_data
from core.copy_task import copy_line, copy_test_lines
from core.live_training import PRESETS, TextRejected
from core.tokenization import tokens_text
from core.training_run import RUNS, TrainingRun, new_run
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

lesson, loaded = course_ui.lesson_page(7)
course_ui.keep_values("t_source", "t_text", "t_tokenizer", "t_vocab", "t_preset",
                      *(f"t_{knob}" for knob in asdict(TrainConfig())))
state = st.session_state
state.setdefault("t_source", live_training.DEFAULT_SOURCE)
state.setdefault("t_tokenizer", "bpe")
state.setdefault("t_vocab", live_training.DEFAULT_BPE_VOCABULARY)
state.setdefault("t_preset", "1-minute")
for knob, value in asdict(PRESETS["1-minute"]).items():
    state.setdefault(f"t_{knob}", value)
run: TrainingRun | None = course_ui.find_training_run()
training_now = run is not None and run.is_active  # a run trains: what it trains on is locked (its figures describe it)
_this_run: dict = {}  # what this run of the page has worked out already (the data and its problem)


def apply_preset() -> None:
    if state.t_preset in PRESETS:
        for knob, value in asdict(PRESETS[state.t_preset]).items():
            state[f"t_{knob}"] = value
    if state.t_preset in live_training.PRESET_DATA:
        state.t_source, state.t_tokenizer = live_training.PRESET_DATA[state.t_preset]


def chosen_config() -> TrainConfig:
    return TrainConfig(**{knob: type(default)(state[f"t_{knob}"])
                          for knob, default in asdict(TrainConfig()).items()})


def chosen_data():
    """The prepared data for the chosen source and tokenizer (None if the text cannot be read), and
    the one sentence that says why no run can start on it (None if one can). Worked out once per
    page run, so that the sentence is shown once."""
    if "data" not in _this_run:
        _this_run["data"], _this_run["problem"] = _prepare_data()
    return _this_run["data"], _this_run["problem"]


def _prepare_data():
    vocab = live_training.BYTE_VOCABULARY if state.t_tokenizer == "bytes" else int(state.t_vocab)
    text = ""
    if state.t_source == "text":
        upload = state.get("t_upload")
        raw, _this_run["which text"] = live_training.students_text(upload.getvalue() if upload is not None else None,
                                                                   state.get("t_text", ""))
        try:
            text = live_training.read_text_upload(raw)
        except TextRejected as error:
            return None, str(error)
    data = cached_training_data(state.t_source, text, vocab)
    return data, live_training.too_short(data, chosen_config())


def data_choice() -> None:
    st.radio("Train on", list(SOURCES), key="t_source", format_func=SOURCES.get, horizontal=True, disabled=training_now)
    if state.t_source == "text":
        need = live_training.tokens_needed(chosen_config())
        st.file_uploader("A UTF-8 text file (up to 3 MB)", type=["txt", "md"], key="t_upload", disabled=training_now)
        st.text_area(f"…or paste text here (long enough for {need:,} training and {need:,} validation tokens "
                     "at this context length)", key="t_text", height=120, disabled=training_now)
    problem = chosen_data()[1]
    if _this_run.get("which text"):
        st.caption(_this_run["which text"])
    if problem:
        st.warning(problem)


def tokenizer_choice() -> None:
    left, right = st.columns(2)
    left.radio("Tokenizer", ["bytes", "bpe"], key="t_tokenizer", horizontal=True, disabled=training_now,
               format_func={"bytes": "Characters (one per byte)", "bpe": "Byte-level BPE"}.get)
    right.slider("BPE vocabulary size", 260, 2048, step=4, key="t_vocab", disabled=training_now or state.t_tokenizer == "bytes")
    data = chosen_data()[0]
    if data is not None:
        columns = st.columns(4)
        columns[0].metric("Vocabulary", f"{data.vocab_size:,}")
        columns[1].metric("Training tokens", f"{len(data.train_ids):,}")
        columns[2].metric("Validation tokens", f"{len(data.val_ids):,}")
        columns[3].metric("Tokens per character", f"{data.tokens_per_character:.3f}")
        if state.t_tokenizer == "bpe" and (stopped := live_training.vocabulary_note(data, int(state.t_vocab))):
            st.caption(stopped)


def settings() -> None:
    # while a run trains, its settings are locked like its data: the schedule, parameter count and step
    # time below describe the run in progress (and timing a step then would race the run for the cores)
    locked = training_now
    st.selectbox("Preset", [*PRESETS, "custom"], key="t_preset", on_change=apply_preset, disabled=locked,
                 help="The presets are sized for two CPU cores. While a run trains, its settings are locked.")
    with st.expander("All settings", expanded=state.t_preset == "custom"):
        columns = st.columns(4)
        for index, (knob, (label, low, high, step)) in enumerate(KNOBS.items()):
            columns[index % 4].number_input(label, low, high, step=step, key=f"t_{knob}", disabled=locked,
                                            format="%.5f" if knob == "learning_rate" else None)
        left, right = st.columns(2)
        left.selectbox("Design", list(DESIGNS), key="t_architecture", format_func=DESIGNS.get, disabled=locked)
        right.number_input("Key/value heads (Llama design; 0 = one per head)", 0, 8, step=1, key="t_n_kv_head",
                           disabled=locked or state.t_architecture != "llama")
        left, middle, right = st.columns(3)
        left.number_input("Gradient accumulation (micro-batches per step)", 1, 16, step=1, key="t_accumulation_steps",
                          disabled=locked)
        middle.selectbox("Learning-rate schedule after warm-up", list(SCHEDULES), key="t_schedule", disabled=locked)
        right.radio("Precision", ["float32", "bfloat16"], key="t_precision", horizontal=True, disabled=locked)
        left, right = st.columns(2)
        # an experiment of the GPT-2 design; in the Llama design a box can only be ticked again (config_problem asks it)
        for column, label, knob in ((left, "Residual connections", "t_use_residual"), (right, "LayerNorm", "t_use_layernorm")):
            column.checkbox(label, key=knob, disabled=locked or (state.t_architecture != "gpt2" and state[knob]))
    config, (data, problem) = chosen_config(), chosen_data()
    if settings_problem := config_problem(config):
        st.warning(settings_problem)
        return
    steps, rates = schedule_curve(config)
    course_ui.chart("t-schedule", (config.learning_rate, config.warmup_steps, config.max_steps, config.schedule,
                                   config.min_lr_ratio), lambda: figures.lines(
        steps, {"learning rate": rates}, "The learning rate over the whole run, before it starts", "step",
        "learning rate", height=240))
    if long_warmup := warmup_note(config):
        st.info(long_warmup)
    st.caption(f"Each step learns from {config.batch_size * config.accumulation_steps:,} examples "
               f"({config.batch_size} per micro-batch × {config.accumulation_steps}) of {config.block_size} tokens.")
    if data is None or problem:  # no run can start on this data (the page says why once, under the data)
        return
    seconds = cached_step_seconds(config, data.vocab_size)
    columns = st.columns(3)
    columns[0].metric("Parameters", f"{live_training.estimate_parameters(config, data.vocab_size):,}")
    columns[1].metric("Time per step (measured now)", f"{seconds * 1000:.0f} ms",
                      help="One micro-batch's step, timed on this machine now, times the gradient accumulation.")
    columns[2].metric("Estimated training time", f"{seconds * config.max_steps / 60:.1f} min",
                      help="Time per step × steps. Validation, samples and the live charts come on top, and so "
                           "does any wait for the machine (see below).")


def why_no_start() -> str | None:
    """Where the page says why no run can start (for the Start button's help), or None."""
    if chosen_data()[1] is not None:
        return "No run can start on this data: the message under “Train on” says why."
    if config_problem(chosen_config()) is not None:
        return "No model can be built with these settings: the message under them says why."
    return None


def start_run() -> bool:
    """Start a run with the chosen settings; False (with a message on the page) if none can start."""
    if why_no_start() is not None:
        return False  # the page already says why, next to the text or the settings
    config, data = chosen_config(), chosen_data()[0]
    probe, prompt = PROBES.get(state.t_source, (None, None))
    if probe is None:
        val_text = tokens_text(data.tokenizer, data.val_ids[:200].tolist())
        probe, prompt = val_text[:80], val_text[:30]
    try:
        started, state.t_run_note = new_run(config, data, probe_text=probe, sample_prompt=prompt,
                                            copy_test_lines=copy_test_lines() if state.t_source == "copy" else None)
    except ValueError as error:  # e.g. copy lines too short for the context length
        st.warning(f"This run cannot start: {error}.")
        return False
    if run is not None and run.view().steps:
        state.t_previous = run.view()  # kept for comparison in the loss chart
    started.attach(course_ui.session_alive_check())
    started.start()
    state.t_run, state.t_run_token = started, RUNS.add(started)
    return True


def controls() -> None:
    columns = st.columns(5)
    cannot = why_no_start()
    if columns[0].button("Start", type="primary", disabled=training_now or cannot is not None, key="t_start",
                         help=cannot) and start_run():
        st.rerun()  # a run that cannot start leaves its message on the page
    if columns[1].button("Pause", disabled=not (run and run.status == "running"), key="t_pause"):
        run.pause()
        st.rerun()
    if columns[2].button("Resume", disabled=not (run and run.status == "paused"), key="t_resume"):
        run.resume()
        st.rerun()
    if columns[3].button("Stop", disabled=not training_now, key="t_stop"):
        run.stop()
        run.wait(timeout=2)
        st.rerun()
    if columns[4].button("Reset", disabled=run is None, key="t_reset"):
        run.stop()
        state.t_run = state.t_run_token = None
        st.rerun()


@st.fragment(run_every=2.0 if training_now else None)
def live() -> None:
    if run is None:
        st.caption("Start a run to see it learn.")
        return
    run.touch()
    view = run.view()
    if view.status not in ("running", "paused") and state.get("t_drawn_status") in ("running", "paused"):
        state.t_drawn_status = view.status
        st.rerun()  # the run ended: redraw the whole page (controls, the finished run's section)
    state.t_drawn_status = view.status
    training_views.run_view(run, view, previous=state.get("t_previous"), note=state.get("t_run_note"))


def finished() -> None:
    if run is None or not run.view().has_model:
        st.caption("When a run has finished (or been stopped), its model appears here.")
        return
    view = run.view()
    st.success(f"Your model: {view.step:,} steps, validation loss {view.validation[-1][1]:.3f} "
               f"(a uniform guess: {live_training.uniform_loss(run.data.vocab_size):.2f}).")
    if run.config.runs_own_forward:  # it cannot be saved: the run's view above says why (own_forward_note)
        return
    left, right = st.columns(2)
    left.download_button("Download the model (zip, Hugging Face format)", run.zip_bytes(),
                         file_name="glassbox-trained-model.zip", mime="application/zip", key="t_download")
    if right.button("Use it in the other lessons", key="t_use"):
        course_ui.add_trained_model(str(run.save()), f"Your trained model ({view.step:,} steps)")
        st.rerun()


def frozen_step() -> None:
    example = PROBES["stories"][0]
    training_views.frozen_step(loaded, state.get("prompt", "") or example, fallback=example)


course_ui.render_lesson(lesson, {
    "data": data_choice, "tokenizer": tokenizer_choice, "settings": settings, "controls": controls, "live": live,
    "finished": finished, "frozen-step": frozen_step,
}, key=course_ui.lesson_key(7))
course_ui.lesson_navigation(7)
