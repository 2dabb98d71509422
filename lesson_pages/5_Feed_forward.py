"""Lesson 5: Feed-forward, the residual stream and LayerNorm. Layout and widgets; the math is in
core.residual, the figures in core.figures."""
import pandas as pd
import streamlit as st

import course_ui
from core import diagrams, figures, residual
from core.cached import cached_model, cached_neurons_pushing_token, cached_trace
from core.glassbox import ACTIVATION_NAMES

SHOWN_NEURONS = 20  # the heatmaps show this many of the layer's most active neurons
# The GELU plot draws the prompt's points for this many neurons, at up to this many last positions:
# every point is an element the browser draws (64 neurons made lesson 5's second visit 0.4-0.8 s
# slower than 16, in Chromium, and 1.4-1.8 s on a 128-token prompt)
CURVE_NEURONS = 16
CURVE_POSITIONS = 64
ABLATION_CHOICES = 8  # neurons offered per layer in the ablation experiment

lesson, loaded = course_ui.lesson_page(5)
course_ui.keep_values("ff_layer", "ff_ablate")
prompt = course_ui.prompt_box()
trace = course_ui.lesson_trace(loaded, prompt)
needs_trace = course_ui.needs_trace(trace)
if trace is not None:
    labels = figures.token_labels(trace.token_strings)


def read_layer_choice() -> None:
    """The layer and position as the picker now says (again at each rerun of the picker's stretch)."""
    global layer, d_mlp, active, position, at_position
    if trace is not None:
        layer, _ = course_ui.layer_head_state(trace, "ff")
        d_mlp = trace["mlp_pre", layer].shape[1]
        active = residual.most_active_neurons(trace, layer, SHOWN_NEURONS)
        if not 0 <= st.session_state.get("ff_position", -1) < trace.n_tokens:
            st.session_state.ff_position = trace.n_tokens - 1
        position = st.session_state.ff_position
        at_position = figures.token_at(position, trace.token_strings[position])  # for figure titles


if trace is not None:
    course_ui.start_again_on_a_new_prompt("ff_position", *(f"ff_neuron_{l}" for l in range(trace.n_layer)))
read_layer_choice()


def activation_name() -> str:
    return ACTIVATION_NAMES.get(loaded.arch.activation, loaded.arch.activation)


def token_name(token_id: int) -> str:
    return figures.token_name(loaded.tokenizer, token_id)


@needs_trace
def layer_picker() -> None:
    left, right = st.columns(2)
    course_ui.index_picker("Layer", trace.n_layer, "ff_layer", left)
    right.selectbox("Position", range(trace.n_tokens), key="ff_position",
                    format_func=lambda i: figures.position_name(i, trace.token_strings[i]))
    st.caption(f"Each MLP of {figures.md_escape(loaded.name)} widens the {trace['blocks.0.resid_pre'].shape[1]}-entry vector to "
               f"{d_mlp} neurons and back.")


@needs_trace
def layer_norm() -> None:
    if loaded.arch.post_norm:
        st.info(f"{loaded.name} puts its norms after each addition (post-LN), so no norm stands in front of the MLP; "
                "pick a pre-LN model in the sidebar to see this step.")
        return
    step = residual.norm_step(trace, loaded.model, layer, position, "ln2")
    columns = st.columns(4)
    if step.kind == "layernorm":
        columns[0].metric("mean before", f"{step.mean:.4f}")
        columns[1].metric("variance before", f"{step.var:.4f}")
        columns[2].metric("mean after normalising", f"{float(step.normalized.mean()):z.4f}")  # (z: no "-0.0000")
        columns[3].metric("variance after normalising", f"{float(step.normalized.var(unbiased=False)):.4f}")
        rows = {"x: the residual stream entering the MLP's LayerNorm": step.before,
                "(x − mean) / √(variance + ε)": step.normalized, "γ (learned scale)": step.gamma,
                "β (learned shift)": step.beta, "γ ⊙ normalised + β: what the MLP reads": step.after}
    else:
        columns[0].metric("mean before (not removed)", f"{float(step.before.mean()):.4f}")
        columns[1].metric("root mean square before", f"{step.scale:.4f}")
        columns[2].metric("root mean square after", f"{float(step.normalized.pow(2).mean().sqrt()):.4f}")
        rows = {"x: the residual stream entering the MLP's RMSNorm": step.before,
                "x / √(mean(x²) + ε)": step.normalized, "γ (learned scale)": step.gamma,
                "γ ⊙ normalised: what the MLP reads": step.after}
    name = "LayerNorm" if step.kind == "layernorm" else "RMSNorm"
    course_ui.chart("layer-norm", (layer, position), lambda: figures.vector_rows(
        rows, f"{name} before the MLP of layer {layer}, at {at_position}"))


@needs_trace
def rms_vs_layer_norm() -> None:
    vector = trace[residual.norm_input_name(trace, layer, "ln2")][position]  # [d_model]
    layer_scale, by_layer_norm = residual.layer_norm_of(vector, loaded.arch.eps)
    rms_scale, by_rms_norm = residual.rms_norm_of(vector, loaded.arch.eps)
    columns = st.columns(3)
    columns[0].metric("mean of x", f"{float(vector.mean()):.4f}")
    columns[1].metric("LayerNorm divides by √(var + ε)", f"{layer_scale:.4f}")
    columns[2].metric("RMSNorm divides by √(mean(x²) + ε)", f"{rms_scale:.4f}")
    course_ui.chart("rms-vs-layer-norm", (layer, position), lambda: figures.vector_rows({
        "x (the same vector)": vector, "LayerNorm: (x − mean) / √(var + ε)": by_layer_norm,
        "RMSNorm: x / √(mean(x²) + ε)": by_rms_norm, "difference": by_rms_norm - by_layer_norm,
    }, f"The vector entering layer {layer}'s MLP norm at {at_position}, both ways (before γ)"))


def block_wiring() -> None:
    course_ui.chart("block-wiring", (), lambda: diagrams.block_wirings_figure(loaded.arch, figures.plotly_text(loaded.name)))


@needs_trace
def swiglu() -> None:
    from core.models import ModelLoadError

    model = loaded
    if not loaded.arch.gated:
        try:
            model = cached_model("glassbox-stories-llama")
        except ModelLoadError as error:
            st.warning(str(error))
            return
        st.caption(f"{figures.md_escape(loaded.name)}'s MLP is not gated; this figure uses the Llama-design course model "
                   "on your prompt.")
    gated_trace = trace if model is loaded else cached_trace(model.name, prompt)
    gated_layer = min(layer, gated_trace.n_layer - 1)
    neuron = residual.most_active_neurons(gated_trace, gated_layer, 1)[0]
    parts = residual.gate_parts(gated_trace, gated_layer, neuron, model.arch.activation)
    course_ui.chart("swiglu", (model.name, gated_layer, neuron), lambda: figures.grouped_bars(
        figures.token_labels(gated_trace.token_strings), parts,
        f"{figures.plotly_text(model.name)}, layer {gated_layer}, neuron {neuron}: gate × up at each token", "token",
        y_title="value"))


@needs_trace
def mlp_pre() -> None:
    activation = activation_name()
    pre_title, post_title = ((f"Gate x·W_gate, before {activation}", f"{activation}(gate) × up: the neurons' output")
                             if loaded.arch.gated else (f"Before {activation} (x·W_in + b_in)", f"After {activation}"))
    neuron_labels = [str(n) for n in active]
    course_ui.chart("mlp-pre-post", (layer,), lambda: figures.heatmap_panels(
        [(trace["mlp_pre", layer][:, active], pre_title, "pre-activation"),
         (trace["mlp_post", layer][:, active], post_title, "activation")], neuron_labels, labels,
        f"Layer {layer}'s most active neurons: the gate before {activation}, and what the neurons pass on"
        if loaded.arch.gated else f"Layer {layer}'s most active neurons, before and after {activation}",
        "neuron", "position", show_values=False, clip_outliers=True))
    st.caption(f"The {len(active)} neurons of layer {layer} with the largest activation anywhere in your prompt, "
               f"most active first (out of {d_mlp}).")


@needs_trace
def gelu_curve() -> None:
    def build():
        neurons = residual.most_active_neurons(trace, layer, CURVE_NEURONS)
        first = max(0, trace.n_tokens - CURVE_POSITIONS)
        pre = trace["mlp_pre", layer][first:, neurons]  # [pos, neurons]
        low, high = min(-4.0, float(pre.min())), max(4.0, float(pre.max()))
        curve_x, curve_y = residual.activation_curve(loaded.arch.activation, low, high)
        post = residual.activation_of(pre, loaded.arch.activation)  # [pos, neurons] the activation alone (no up factor)
        point_labels = [f"{labels[p]} · neuron {n}" for p in range(first, trace.n_tokens) for n in neurons]
        positions = f", last {CURVE_POSITIONS} positions" if first else ""
        return figures.activation_curve_figure(curve_x, curve_y, pre.flatten(), post.flatten(), point_labels,
                                               f"{activation_name()} with your prompt's values (layer {layer}, "
                                               f"{len(neurons)} most active neurons{positions})", activation_name(),
                                               "gate x·W_gate" if loaded.arch.gated else "x·W_in + b_in")
    course_ui.chart("gelu", (layer,), build)


@needs_trace
def mlp_out() -> None:
    out = trace["mlp_out", layer]  # [pos, d_model]
    course_ui.chart("mlp-out", (layer,), lambda: figures.heatmap(
        out, list(range(out.shape[1])), labels, "× W_out + b_out: the MLP's output, added to the residual stream",
        "entry", "position", show_values=False, colour_title="entry value"))


@needs_trace
def neuron() -> None:
    chosen = st.selectbox("Neuron", range(d_mlp), index=active[0], key=f"ff_neuron_{layer}",
                          help="Starts at the most active neuron of the layer on your prompt.")
    values = trace["mlp_post", layer][:, chosen].tolist()
    course_ui.chart("neuron-bars", (layer, chosen), lambda: figures.bar(
        labels, values, f"Layer {layer}, neuron {chosen}: activation at each token", "token"))
    promoted, suppressed = residual.neuron_output_effects(loaded.model, layer, chosen)

    def effects(pairs: list[tuple[int, float]]) -> pd.DataFrame:  # the id tells apart tokens that print alike ('�')
        return pd.DataFrame([{"token": token_name(i), "id": i, "effect": round(v, 4)} for i, v in pairs])

    left, right = st.columns(2)
    left.markdown("**Promotes** (write direction · unembedding, largest)")
    left.dataframe(effects(promoted), hide_index=True)
    right.markdown("**Suppresses** (most negative)")
    right.dataframe(effects(suppressed), hide_index=True)


@needs_trace
def residual_norms() -> None:
    norms = residual.residual_norms(trace, position)
    course_ui.chart("residual-norms", (position,), lambda: figures.line(
        [name for name, _ in norms], [value for _, value in norms], f"Length of the residual stream at {at_position}",
        "length (Euclidean norm)"))


@needs_trace
def logit_contributions() -> None:
    candidates = trace.next_token_probs().topk(10).indices.tolist()
    token_id = st.selectbox("Token", candidates, key="ff_logit_token",
                            format_func=lambda i: f"{token_name(i)} (p = {float(trace.next_token_probs()[i]):.3f})")
    parts = residual.direct_logit_contributions(trace, loaded.model, token_id)
    real = float(trace["logits"][-1, token_id])
    course_ui.chart("logit-waterfall", (token_id,), lambda: figures.waterfall(
        [name for name, _ in parts], [value for _, value in parts], "logit",
        f"Direct contributions to the logit of {figures.plotly_text(token_name(token_id))} at the last position"))
    st.caption(f"Sum of the bars: {sum(v for _, v in parts):.4f}. The model's real logit: {real:.4f}.")


@needs_trace
def ablation() -> None:
    predicted = int(trace["logits"][-1].argmax())
    options = cached_neurons_pushing_token(loaded.name, prompt, predicted, ABLATION_CHOICES)
    course_ui.keep_only_offered("ff_ablate", options)
    chosen = st.multiselect("Neurons to switch off (layer.neuron)", options, key="ff_ablate",
                            format_func=lambda pair: f"{pair[0]}.{pair[1]}",
                            help=f"In each layer, the {ABLATION_CHOICES} neurons that push the predicted token "
                                 f"({token_name(predicted)}) up most directly, strongest first.")
    after = cached_trace(loaded.name, prompt, ablated_neurons=frozenset(chosen)) if chosen else trace
    course_ui.prediction_change_view(loaded, trace, after, key="ff-ablation")
    if after is trace:
        return
    columns = st.columns(2)
    logit_before, logit_after = float(trace["logits"][-1, predicted]), float(after["logits"][-1, predicted])
    columns[0].metric(f"logit of {token_name(predicted)}: before → after", f"{logit_before:.2f} → {logit_after:.2f}",
                      delta=f"{logit_after - logit_before:+.2f}")
    if "ln_final.scale" in trace:  # the final norm's divisor: it shrinks when the stream does
        sigma_before, sigma_after = float(trace["ln_final.scale"][-1]), float(after["ln_final.scale"][-1])
        columns[1].metric("σ of the final norm at the last position", f"{sigma_before:.2f} → {sigma_after:.2f}",
                          delta=f"{sigma_after - sigma_before:+.2f}", delta_color="off")


course_ui.render_lesson(lesson, {
    "layer-picker": layer_picker, "layer-norm": layer_norm, "mlp-pre-post": mlp_pre, "gelu": gelu_curve,
    "mlp-out": mlp_out, "neuron": neuron, "residual-norms": residual_norms,
    "logit-contributions": logit_contributions, "ablation": ablation, "rms-vs-layer-norm": rms_vs_layer_norm,
    "block-wiring": block_wiring, "swiglu": swiglu,
}, key=course_ui.lesson_key(5), live=(
    course_ui.LiveStretch("layer-picker", "residual-norms", read_layer_choice),
    course_ui.LiveStretch("logit-contributions")))
course_ui.lesson_navigation(5)
