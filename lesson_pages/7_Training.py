"""Lesson 7: Training. Layout and widgets; the run is core.training_run.TrainingRun (one per
session, in its own thread, found again after a reload) or, with a Ray address set,
core.ray_runs.RayTrainingRun (the same run in a Ray actor); what to train on and the settings are
training_choices; what the page shows of a run, and the frozen step, is training_views; the
figures are in core.figures."""
import streamlit as st

import course_ui
import training_choices
import training_views
from core import figures, live_training
from core.copy_task import copy_test_lines
from core.training_run import RUNS, TrainingRun, new_run

lesson, loaded = course_ui.lesson_page(7)
training_choices.keep_choices()
state = st.session_state
run: TrainingRun | None = course_ui.find_training_run()
training_now = run is not None and run.is_active  # a run trains: what it trains on, and how, is locked
in_control = run is None or course_ui.may_control(run)  # a classmate who opened this run's address only watches
choices = training_choices.TrainingChoices(run if training_now else None)


def start_run() -> bool:
    """Start a run with the chosen settings; False (with a message on the page) if none can start."""
    if choices.why_no_start() is not None:
        return False  # the page already says why, next to the text or the settings
    config, data = choices.config(), choices.data()[0]
    probe, prompt = choices.probe(data)
    try:
        started, state.t_run_note = new_run(config, data, probe_text=probe, sample_prompt=prompt,
                                            copy_test_lines=copy_test_lines() if state.t_source == "copy" else None)
    except ValueError as error:  # e.g. copy lines too short for the context length
        st.warning(f"This run cannot start: {error}.")
        return False
    chosen = training_choices.choices_now()
    previous = run.view() if run is not None else None  # drawn dashed beside the new run...
    previous = previous if previous is not None and previous.steps else None
    comparable = previous is not None and training_choices.same_tokens(run.started_with, chosen)
    state.t_previous = previous if comparable else None  # ...when their losses compare
    state.t_previous_left_out = previous is not None and not comparable
    started.started_with = chosen  # what a page reloaded mid-run shows (TrainingChoices)
    started.attach(course_ui.session_alive_check())
    course_ui.may_control(started)  # the page that starts a run controls it
    started.start()
    state.t_run, state.t_run_token = started, RUNS.add(started)
    return True


def controls() -> None:
    columns = st.columns(5)
    cannot = choices.why_no_start()
    if columns[0].button("Start", type="primary", disabled=training_now or cannot is not None, key="t_start",
                         help=cannot) and start_run():
        st.rerun()  # a run that cannot start leaves its message on the page
    if columns[1].button("Pause", disabled=not (in_control and run and run.status == "running"), key="t_pause"):
        run.pause()
        st.rerun()
    if columns[2].button("Resume", disabled=not (in_control and run and run.status == "paused"), key="t_resume"):
        run.resume()
        st.rerun()
    if columns[3].button("Stop", disabled=not (in_control and training_now), key="t_stop"):
        run.stop()
        run.wait(timeout=2)
        st.rerun()
    if not in_control:
        st.caption("This run belongs to another open page (its address was shared): you can watch it here, "
                   "but only that page can pause, stop or reset it.")
    if columns[4].button("Reset", disabled=not (in_control and run is not None), key="t_reset"):
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
    if state.get("t_previous_left_out") and view.steps:
        st.caption("Your previous run is not drawn beside this one: it learned other tokens (another source, "
                   "tokenizer or vocabulary), and losses over different tokens do not compare.")


def finished() -> None:
    if run is None or not run.view().has_model:
        st.caption("When a run has finished (or been stopped), its model appears here.")
        return
    view = run.view()
    st.success(f"Your model: {figures.counted(view.step, 'step')}, validation loss {view.validation[-1][1]:.3f} "
               f"(a uniform guess: {live_training.uniform_loss(run.data.vocab_size):.2f}).")
    if run.config.runs_own_forward:  # it cannot be saved: the run's view above says why (own_forward_note)
        return
    left, right = st.columns(2)
    left.download_button("Download the model (zip, Hugging Face format)", run.zip_bytes(),
                         file_name="glassbox-trained-model.zip", mime="application/zip", key="t_download")
    if right.button("Use it in the other lessons", key="t_use"):
        course_ui.add_trained_model(str(run.save()), f"Your trained model ({figures.counted(view.step, 'step')})")
        st.rerun()


def frozen_step() -> None:
    example = training_choices.PROBES["stories"][0]
    training_views.frozen_step(loaded, state.get("prompt", "") or example, fallback=example)


course_ui.render_lesson(lesson, {
    "data": choices.source_widgets, "tokenizer": choices.tokenizer_widgets, "settings": choices.settings_widgets,
    "controls": controls, "live": live,
    "finished": finished, "frozen-step": frozen_step,
}, key=course_ui.lesson_key(7))
course_ui.lesson_navigation(7)
