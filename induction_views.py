"""Lesson 4's induction circuit: the two heads the standard test finds (core.induction), shown on
the student's prompt, and the build's record of the circuit growing. Layout and widgets only."""
import streamlit as st

import course_ui
from core import figures, induction
from core.cached import cached_induction_circuit, cached_model, cached_trace
from core.models import REGISTRY


def circuit_on_prompt(loaded, prompt: str, trace, labels: list[str]) -> None:
    """The standard test's two heads, found in the model in hand, on the student's prompt: their
    patterns, and the loss of every prediction with each of them switched off."""
    st.button("Repeat my prompt", key="attn-repeat", on_click=course_ui.set_prompt, disabled=not prompt.strip(),
              args=(induction.repeated_prompt(prompt),),
              help="Your prompt, then your prompt again, as the new prompt" if prompt.strip() else
                   "Your prompt has no words to repeat: type one first")
    circuit = cached_induction_circuit(loaded.name)
    if circuit is None:
        st.info("This model has one layer: an induction circuit needs two heads in two layers.")
        return
    (layer_i, head_i), (layer_p, head_p) = circuit.induction_head, circuit.previous_token_head
    measured = (f"on the repeated runs the loss goes from {circuit.test.first_half_loss:.2f} to "
                f"{circuit.test.repeat_loss:.2f} nats per token")
    if circuit.found:
        st.caption(f"The standard test on {figures.md_escape(loaded.name)}: layer {layer_p}, head {head_p} is its previous-token head "
                   f"({circuit.previous_token_score:.2f}), layer {layer_i}, head {head_i} its induction head "
                   f"({circuit.induction_score:.2f}); {measured}.")
    else:
        st.info(f"The standard test finds no induction circuit in {figures.md_escape(loaded.name)}: its best candidate, layer "
                   f"{layer_i}, head {head_i}, puts only {circuit.induction_score:.2f} of its attention on the token "
                   f"after the earlier copy, and {measured}. The figures below show its best candidates all the same.")
        with_circuit = next((choice for choice in REGISTRY if not choice.from_hub and choice.key != loaded.name
                             and getattr(cached_induction_circuit(choice.key), "found", False)), None)
        if with_circuit is not None:  # a bundled model that has one: one click away
            st.button(f"Switch to a model that has one: {with_circuit.label.split(' (')[0]}", key="attn-circuit-model",
                      on_click=course_ui.use_model, args=(with_circuit.key,))
    best = "" if circuit.found else "best candidate for "  # no head is called what the test did not find
    course_ui.chart("induction-patterns", (circuit.induction_head,), lambda: figures.small_multiples(
        [trace["pattern", layer_p][head_p], trace["pattern", layer_i][head_i]],
        [f"{best}previous-token head {layer_p}.{head_p}", f"{best}induction head {layer_i}.{head_i}"], labels,
        columns=2, title="The two heads on your prompt"))
    runs = {"as trained": trace}
    for name, pair in ((f"{best}induction head off", (layer_i, head_i)),
                       (f"{best}previous-token head off", (layer_p, head_p))):
        runs[f"{name} ({pair[0]}.{pair[1]})"] = cached_trace(loaded.name, prompt, ablated_heads=frozenset({pair}))
    losses = {name: induction.token_losses(run["logits"], run.token_ids).tolist() for name, run in runs.items()}
    copyable = induction.copyable_positions(trace.token_ids)
    course_ui.chart("induction-loss", (circuit.induction_head,), lambda: figures.per_token_loss(
        labels, losses, copyable,  # the series' names are the page's own words
        "Loss of each next-token prediction (shaded: the next token could be copied from an earlier repeat)"))
    if copyable:
        means = ", ".join(f"{sum(values[q] for q in copyable) / len(copyable):.2f} {name}" for name, values in losses.items())
        st.caption(f"Mean loss over the {len(copyable)} shaded predictions: {means}.")
    else:
        st.caption("Nothing in your prompt repeats yet, so nothing can be copied: press “Repeat my prompt”.")


def growth(loaded) -> None:
    """The build's own record of the circuit growing: the model in hand's, else a bundled model's."""
    others = (cached_model(choice.key) for choice in REGISTRY if not choice.from_hub and choice.key != loaded.name)
    shown = loaded if loaded.induction_history else next((model for model in others if model.induction_history), None)
    if shown is None:
        st.info("No model at hand recorded the induction test while it trained.")
        return
    phases = induction.warmup_phases(shown.training_record["corpus"], shown.arch.n_ctx)
    title = (f"How the circuit of {figures.plotly_text(shown.name)} grew: the standard test every "
             f"{shown.induction_history[0]['step']} steps of its build")
    course_ui.chart("induction-growth", (shown.name,), lambda: figures.induction_growth(
        shown.induction_history, phases, induction.FOUND_SCORE, title))
