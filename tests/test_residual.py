"""The residual-stream lesson's math."""
from __future__ import annotations

import pytest
import torch

import json

from core import residual
from core.glassbox import Interventions, run_trace
from core.models import BUNDLED_MODEL_DIR
from tests.conftest import lesson_text, quoted, random_gpt2
from tests.tiny_models import VARIANTS, tiny_model


@pytest.fixture(scope="module")
def model_and_trace():
    model = random_gpt2(n_layer=3, n_head=2, n_embd=32, vocab_size=40)
    return model, run_trace(model, [1, 5, 9, 2, 7])


def test_components_sum_to_the_final_residual(model_and_trace):
    model, trace = model_and_trace
    total = sum(component for _, component in residual.residual_components(trace, model))
    torch.testing.assert_close(total, trace["blocks.2.resid_post"], atol=1e-5, rtol=0)


def test_direct_contributions_sum_to_the_real_logit(model_and_trace):
    model, trace = model_and_trace
    for token_id in (0, 17, 39):
        parts = residual.direct_logit_contributions(trace, model, token_id)
        assert len(parts) == 1 + 2 * trace.n_layer + 1
        assert sum(value for _, value in parts) == pytest.approx(float(trace["logits"][-1, token_id]), abs=1e-4)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_waterfall_and_journey_sum_to_the_real_logit_on_every_family(variant):
    """Pre-LN, post-LN (norms held inside the stream), parallel, RMSNorm, untied with a bias: the
    parts of the stream sum to the stream, and the direct contributions and the journey's flows
    each sum to the real logit."""
    from core.sampling import journey_flows

    model = tiny_model(variant)
    trace = run_trace(model, [4, 8, 15, 16, 23, 42, 7])
    total = sum(component for _, component in residual.residual_components(trace, model))
    torch.testing.assert_close(total, trace["resid_post", trace.n_layer - 1], atol=1e-4, rtol=0)
    for token_id in (0, 30, 60):
        logit = float(trace["logits"][-1, token_id])
        parts = residual.direct_logit_contributions(trace, model, token_id)
        assert sum(value for _, value in parts) == pytest.approx(logit, abs=1e-4)
        flows = journey_flows(trace, model, token_id, [str(i) for i in range(trace.n_tokens)])
        assert sum(flow.value for flow in flows) == pytest.approx(logit, abs=1e-4)


def test_direct_contributions_on_the_bundled_model(bundled):
    ids = bundled.tokenizer("The cat sat on the")["input_ids"]
    trace = run_trace(bundled.model, ids)
    mat = bundled.tokenizer(" mat")["input_ids"][0]
    parts = residual.direct_logit_contributions(trace, bundled.model, mat)
    assert sum(v for _, v in parts) == pytest.approx(float(trace["logits"][-1, mat]), abs=1e-3)


def test_residual_norms_and_active_neurons(model_and_trace):
    _, trace = model_and_trace
    norms = residual.residual_norms(trace)
    assert norms[-1][1] == pytest.approx(float(trace["blocks.2.resid_post"][-1].norm()))
    active = residual.most_active_neurons(trace, 1, count=5)
    post = trace["blocks.1.mlp.post"]
    assert active[0] == int(post.max(dim=0).values.argmax())


def test_neuron_output_effects_against_direct_product(model_and_trace):
    model, _ = model_and_trace
    up, down = residual.neuron_output_effects(model, 1, 3, count=3)
    write = model.transformer.h[1].mlp.c_proj.weight[3]  # [d_model] (Conv1D: [in, out])
    through_norm = (write - write.mean()) * model.transformer.ln_f.weight  # the final LayerNorm's linear part, σ aside
    effect = (model.lm_head.weight @ through_norm).detach()
    assert [i for i, _ in up] == effect.topk(3).indices.tolist()
    assert [i for i, _ in down] == (-effect).topk(3).indices.tolist()
    assert up[0][1] == pytest.approx(float(effect.max())) and down[0][1] == pytest.approx(float(effect.min()))


def test_layer_norm_step_recomputed_by_hand(model_and_trace):
    model, trace = model_and_trace
    step = residual.norm_step(trace, model, layer=1, position=2, which="ln2")
    x = trace["blocks.1.resid_mid"][2]
    assert step.mean == pytest.approx(float(x.mean()), abs=1e-6)
    assert step.var == pytest.approx(float(((x - x.mean()) ** 2).mean()), abs=1e-6)
    by_hand = (x - step.mean) / (step.var + step.eps) ** 0.5 * step.gamma + step.beta
    torch.testing.assert_close(by_hand, step.after, atol=1e-5, rtol=0)
    assert float(step.normalized.mean()) == pytest.approx(0.0, abs=1e-5)
    # the LayerNorm's output is exactly what the MLP reads
    torch.testing.assert_close(step.after @ model.transformer.h[1].mlp.c_fc.weight + model.transformer.h[1].mlp.c_fc.bias,
                               trace["blocks.1.mlp.pre"][2], atol=1e-5, rtol=0)
    first = residual.norm_step(trace, model, layer=0, position=0, which="ln1")
    torch.testing.assert_close(first.before, trace["blocks.0.resid_pre"][0])


def test_activation_curve_passes_through_the_real_points(model_and_trace):
    model, trace = model_and_trace
    pre, post = trace["blocks.0.mlp.pre"].flatten(), trace["blocks.0.mlp.post"].flatten()
    _, on_curve = residual.activation_curve(model.config.activation_function, 0, 1, points=2)
    assert float(on_curve[0]) == pytest.approx(0.0) and float(on_curve[1]) == pytest.approx(0.8412, abs=1e-3)
    for value, expected in zip(pre[:10], post[:10]):
        _, y = residual.activation_curve(model.config.activation_function, float(value), float(value), points=1)
        assert float(y[0]) == pytest.approx(float(expected), abs=1e-6)


def test_neuron_ablation_silences_the_neuron_and_changes_the_logits(model_and_trace):
    model, trace = model_and_trace
    neuron = residual.most_active_neurons(trace, 0, count=1)[0]
    after = run_trace(model, trace.token_ids, interventions=Interventions(ablated_neurons=frozenset({(0, neuron)})))
    assert float(after["blocks.0.mlp.post"][:, neuron].abs().max()) == 0.0
    assert not torch.allclose(after["logits"], trace["logits"])
    torch.testing.assert_close(after["blocks.0.resid_mid"], trace["blocks.0.resid_mid"])


def test_neuron_contributions_add_up_to_the_mlp_bar(model_and_trace):
    model, trace = model_and_trace
    token_id = 11
    bars = dict(residual.direct_logit_contributions(trace, model, token_id))
    sigma = torch.sqrt(trace["ln_final.var"][-1] + model.config.layer_norm_epsilon)
    assert float(trace["ln_final.scale"][-1]) == pytest.approx(float(sigma))
    for layer in range(trace.n_layer):
        per_neuron = residual.neuron_logit_contributions(trace, model, layer, token_id)
        bias = model.transformer.h[layer].mlp.c_proj.bias.detach()
        bias_share = float((model.transformer.ln_f.weight.detach() * (bias - bias.mean()) / sigma)
                           @ model.lm_head.weight.detach()[token_id])
        assert float(per_neuron.sum()) + bias_share == pytest.approx(bars[f"MLP {layer}"], abs=1e-4)
    pairs = residual.neurons_pushing_token(trace, model, token_id, per_layer=2)
    assert len(pairs) == 2 * trace.n_layer
    first_layer = residual.neuron_logit_contributions(trace, model, 0, token_id)
    assert pairs[0] == (0, int(first_layer.argmax()))


def rounded_like(value: float, written: str) -> str:
    decimals = len(written.split(".")[1]) if "." in written else 0
    return f"{value:.{decimals}f}"


def test_the_lessons_numbers_about_heads_and_neurons_are_the_course_models(bundled):
    """Lesson 5 quotes these numbers of the bundled model; they are read from the lesson and re-measured."""
    from core.lessons import load_lesson

    text = lesson_text("05_feed_forward.md")
    model, tokenizer = bundled.model, bundled.tokenizer

    def probability(ids: list[int], token_id: int, interventions: Interventions = Interventions()) -> float:
        return float(run_trace(model, ids, interventions=interventions).next_token_probs()[token_id])

    # the default prompt: the name head's direct share is small, its effect large
    ids = tokenizer(load_lesson("home.md").meta["default_prompt"])["input_ids"]
    mia = tokenizer(" Mia")["input_ids"][0]
    layer, attention, attention_layer, mlp_layer = quoted(
        r"attention in layer (\d) adds about (−?[\d.]+) to that logit directly, next to nothing, while attention in "
        r"layer (\d) \(where the name heads of lesson 4 sit\) and the MLP of layer (\d) add most of it", text)
    bars = dict(residual.direct_logit_contributions(run_trace(model, ids), model, mia))
    assert rounded_like(bars[f"attention {layer}"], attention).replace("-", "−") == attention
    assert abs(bars[f"attention {layer}"]) < 0.5  # "next to nothing"
    assert set(sorted(bars, key=bars.get)[-2:]) == {f"attention {attention_layer}", f"MLP {mlp_layer}"}
    assert sum(sorted(bars.values())[-2:]) > 0.5 * sum(bars.values())  # "most of it"
    card = json.loads((BUNDLED_MODEL_DIR / "evaluation.json").read_text())
    assert {layer for _, layer, _ in card["name_heads"][:2]} == {int(attention_layer)}
    off_layer, before, after = quoted(r"switching off all four heads of layer (\d) drops the probability of \" Mia\" "
                                      r"from ([\d.]+) to ([\d.]+)", text)
    assert off_layer == layer and bundled.arch.n_head == 4
    assert rounded_like(probability(ids, mia), before) == before
    ablated = Interventions(ablated_heads=frozenset((int(layer), head) for head in range(bundled.arch.n_head)))
    assert rounded_like(probability(ids, mia, ablated), after) == after

    # "The cat sat on the": switching off the neurons that push " mat" hardest hardly moves it
    ids = tokenizer("The cat sat on the")["input_ids"]
    mat = tokenizer(" mat")["input_ids"][0]
    trace = run_trace(model, ids)
    pairs = residual.neurons_pushing_token(trace, model, mat, per_layer=8)

    def top_eight(layer: int) -> tuple[float, Interventions]:
        chosen = [(l, n) for l, n in pairs if l == layer]
        pushed = residual.neuron_logit_contributions(trace, model, layer, mat)[[n for _, n in chosen]].sum()
        return float(pushed), Interventions(ablated_neurons=frozenset(chosen))

    (p_mat,) = quoted(r"the course model gives \" mat\" a probability of ([\d.]+)\.", text)
    assert rounded_like(probability(ids, mat), p_mat) == p_mat
    late, push, after, fall, sigma_before, sigma_after = quoted(
        r"The top 8 neurons of layer (\d) push the logit of \" mat\" up by about ([\d.]+) directly\. Switch them off "
        r"and \" mat\" falls to ([\d.]+), yet its logit falls by only ([\d.]+), less than their push,.*?"
        r"\(([\d.]+) before, ([\d.]+) after\)", text)
    pushed, ablated = top_eight(int(late))
    after_trace = run_trace(model, ids, interventions=ablated)
    assert rounded_like(pushed, push) == push
    assert rounded_like(float(after_trace.next_token_probs()[mat]), after) == after
    assert rounded_like(float(trace["logits"][-1, mat] - after_trace["logits"][-1, mat]), fall) == fall
    assert float(fall) < float(push)
    assert rounded_like(float(trace["ln_final.var"][-1].sqrt()), sigma_before) == sigma_before
    assert rounded_like(float(after_trace["ln_final.var"][-1].sqrt()), sigma_after) == sigma_after
    early, push, after, early_fall = quoted(r"The top 8 of layer (\d) push it up by only about ([\d.]+) directly, yet "
                                            r"switched off they leave \" mat\" at ([\d.]+): its logit falls by ([\d.]+), "
                                            r"far more than their direct push", text)
    pushed, ablated = top_eight(int(early))
    after_trace = run_trace(model, ids, interventions=ablated)
    assert rounded_like(pushed, push) == push
    assert rounded_like(float(after_trace.next_token_probs()[mat]), after) == after
    assert rounded_like(float(trace["logits"][-1, mat] - after_trace["logits"][-1, mat]), early_fall) == early_fall
    assert float(early_fall) > float(push)
