"""Lesson 7's views of a training run as it goes (progress, loss, learning rate, the copy test,
samples, attention taking shape, gradients) and of one frozen step of backpropagation. Layout and
widgets only: the run is core.training_run.TrainingRun (or core.ray_runs.RayTrainingRun), the
figures core.figures, the step core.backprop_step."""

import pandas as pd
import streamlit as st

import course_ui
from core import figures, live_training
from core.backprop_step import frozen_step_example, model_for_frozen_step
from core.cached import cached_frozen_step, cached_model
from core.models import DEFAULT_MODEL
from core.tokenization import tokens_text
from core.training import learning_rate_at, own_forward_note, schedule_name

SNAPSHOTS_SHOWN = 6  # attention snapshots drawn side by side, the latest always among them


def run_view(run, view, previous=None, note: str | None = None) -> None:
    """Everything the page shows of a run, from its latest view: `previous`, the view of the run
    before it (its loss is drawn dashed for comparison); `note`, why the run trains where it does."""
    st.progress(view.step / view.max_steps,
                text=f"{view.status}: step {view.step:,} of {view.max_steps:,}"
                     + (f", about {view.seconds_left:.0f} s left" if view.status == "running" and view.step else ""))
    if view.waiting and view.status == "running":
        st.info(f"Waiting for the machine: it trains {view.slots} run(s) at a time, so that each finishes quickly. "
                f"Yours is number {view.waiting} in the queue and starts by itself.")
    if note:
        st.info(note)  # a configured cluster could not take the run: it trains here
    if own_forward := own_forward_note(run.config):
        st.info(own_forward)  # what of a run with a switch off is real, and what it cannot have
    if view.message:
        (st.error if view.status in ("diverged", "failed") else st.info)(view.message)
    vocab = run.data.vocab_size
    columns = st.columns(3)
    columns[0].metric("Training loss (last step)", f"{view.train_loss[-1]:.3f}" if view.train_loss else "–")
    columns[1].metric("Validation loss", f"{view.validation[-1][1]:.3f}" if view.validation else "–")
    columns[2].metric("Tokens per second", f"{view.tokens_per_second:,.0f}")
    series = {"training loss": view.train_loss,
              "validation loss": ([s for s, _ in view.validation], [v for _, v in view.validation])}
    if previous is not None:
        series["previous run (training)"] = (previous.steps, previous.train_loss)
    course_ui.show_figure(figures.lines(view.steps, series, "Loss while training", "step", "loss (cross-entropy, nats)",
                                        reference=(f"uniform guess: ln {vocab} = {live_training.uniform_loss(vocab):.2f}",
                                                   live_training.uniform_loss(vocab)),
                                        dashed=("previous run (training)",)), "t_loss")
    now = max(1, view.step - view.step % max(1, run.config.max_steps // 100))  # the marker moves in 1% steps
    course_ui.chart("t_lr", (run.serial, now), lambda: figures.lines(
        list(range(1, run.config.max_steps + 1)), {"learning rate": [learning_rate_at(s, run.config)
                                                                     for s in range(run.config.max_steps)]},
        f"Learning-rate schedule: {schedule_name(run.config)}", "step", "learning rate", marker=("now", now),
        height=260))
    copy_test(run, view)
    with st.container(border=True):
        st.markdown("**What the model writes** (temperature 0.8, top-k 40)")
        for step, text in view.samples[-4:][::-1]:
            st.caption(f"step {step}")
            st.code(text, language=None, wrap_lines=True)
    attention_over_training(run, view)
    gradients(view)


def copy_test(run, view) -> None:
    if not view.copy_scores:
        return
    steps = [step for step, _ in view.copy_scores]
    course_ui.show_figure(figures.lines(steps, {
        "second-half tokens predicted right": [score.accuracy for _, score in view.copy_scores],
        "the best copy head's attention on the earlier copy": [score.attention for _, score in view.copy_scores]},
        f"Copy test on {len(run.copy_test_lines)} new lines", "step", "share (0 to 1)", height=300), "t_copy")
    latest = view.copy_scores[-1][1]
    st.caption(f"At step {view.copy_scores[-1][0]:,}: {latest.accuracy:.0%} of {latest.predictions:,} copied tokens "
               f"predicted right; layer {latest.layer}, head {latest.head} puts {latest.attention:.2f} of its "
               "attention on the earlier copy of the token to predict. Pick it below to watch it form.")


def attention_over_training(run, view) -> None:
    if not view.snapshots:
        return
    st.markdown("**Attention on a fixed sentence, as training goes on**")
    left, right = st.columns(2)
    layer = course_ui.index_picker("Layer", run.config.n_layer, "t_layer", left)
    head = course_ui.index_picker("Head", run.config.n_head, "t_head", right)
    every = max(1, -(-len(view.snapshots) // SNAPSHOTS_SHOWN))
    chosen = view.snapshots[::every][: SNAPSHOTS_SHOWN - 1] + [view.snapshots[-1]]
    chosen = list({step: (step, p) for step, p in chosen}.values())
    labels = figures.token_labels([tokens_text(run.data.tokenizer, [i]) for i in run.probe_ids])
    course_ui.chart("t_snapshots", (run.serial, len(view.snapshots), layer, head), lambda: figures.small_multiples(
        [p[layer, head] for _, p in chosen], [f"step {s}" for s, _ in chosen], labels, columns=min(3, len(chosen)),
        title=f"Layer {layer}, head {head} (rows: query, columns: key)"))


def gradients(view) -> None:
    if not view.steps:
        return
    left, right = st.columns(2)
    course_ui.show_figure(figures.lines(view.steps, {figures.plotly_text(g): v for g, v in view.layer_grad_norms.items()},
                                        "Gradient norm per layer (before clipping)", "step", "‖gradient‖", log_y=True,
                                        height=320), "t_grad_norms", left)
    course_ui.show_figure(figures.lines(view.steps, {figures.plotly_text(g): v for g, v in view.update_ratios.items()},
                                        "Update size ÷ weight size per layer", "step", "‖Δw‖ / ‖w‖", log_y=True,
                                        height=320), "t_update_ratios", right)


def frozen_step(loaded, prompt: str, fallback: str) -> None:
    """One step of backpropagation on the first tokens of the student's prompt (`fallback` when it
    has too few), laid open: the loss, the gradient at the logits, each weight matrix's gradient
    norm, and a few weights before and after the update."""
    picked = model_for_frozen_step(loaded, lambda: cached_model(DEFAULT_MODEL.key))
    ids = frozen_step_example(picked.tokenizer, prompt, fallback=fallback, context_length=picked.context_length)
    rate = st.select_slider("Learning rate for this step", [0.001, 0.01, 0.1, 0.5, 1.0], value=0.1, key="t_frozen_lr")
    step = cached_frozen_step(picked.name, tuple(ids), rate)
    name = lambda i: figures.token_name(picked.tokenizer, i)  # noqa: E731
    context = figures.md_escape(" ".join(tokens_text(picked.tokenizer, ids[max(0, step.position - 5):step.position + 1]).split()))
    st.caption(f"Model: {figures.md_escape(picked.name)}. Example: the first {len(ids)} tokens of your prompt; every "
               f"token predicts the next. The table shows the prediction the model found hardest: after "
               f"“…{context}” the real next token is {figures.md_escape(name(step.target))}. The loss averages "
               f"{len(ids) - 1} predictions, so here ∂loss/∂logit = (softmax p − one-hot) ÷ {len(ids) - 1}.")
    st.metric("Loss (mean cross-entropy over the example)", f"{step.loss:.4f}")
    top = step.logit_probs.topk(8).indices.tolist()
    if step.target not in top:
        top.append(step.target)
    st.dataframe(pd.DataFrame([{"token": name(i), "softmax p": round(float(step.logit_probs[i]), 5),
                                "one-hot (is it the next token?)": int(i == step.target),
                                "∂loss/∂logit": round(float(step.logit_grad[i]), 6)} for i in top]),
                 hide_index=True)
    blocks = [f"block {b}" for b in range(step.module_grad_norms.shape[0])]
    course_ui.chart("t-frozen-norms", (picked.name, tuple(ids), rate), lambda: figures.heatmap(
        step.module_grad_norms, step.module_names, blocks, "Gradient norm of each weight matrix",
        "module", "layer", diverging=False, value_format=".3g"))
    columns = st.columns(len(step.other_grad_norms))
    for column, (label, value) in zip(columns, step.other_grad_norms.items()):
        column.metric(f"‖gradient‖, {label}", f"{value:.4g}")
    st.dataframe(pd.DataFrame([{"weight": u.name, "before": u.before, "gradient": u.gradient,
                                "learning rate": u.learning_rate, "after = before − rate × gradient": u.after}
                               for u in step.updates]), hide_index=True)
