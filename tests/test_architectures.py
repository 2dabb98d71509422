"""Every family through one glass box: the trace equals the Hugging Face eager forward (logits,
every residual stream, every attention pattern) on tiny random models whose every weight is
perturbed (a fresh norm's γ is exactly 1 and its β exactly 0, which would hide a mistake), and
head and neuron ablation equal the Hugging Face model with the same change made by a hook."""
from __future__ import annotations

import pytest
import torch

from core.architectures import UnsupportedModel, weights_of
from core.families import FAMILIES
from core.glassbox import Interventions, head_outputs, run_trace
from tests.tiny_models import VARIANTS, tiny_model

TOLERANCE = 1e-4
IDS = [3, 17, 5, 60, 2, 9, 33, 41, 8, 12, 7, 50]  # 12 tokens: longer than every local window below


def hf_forward(model, ids: list[int]):
    return model(torch.tensor([ids]), output_hidden_states=True, output_attentions=True)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_trace_equals_hugging_face(variant):
    model = tiny_model(variant)
    trace = run_trace(model, IDS)
    with torch.no_grad():
        out = hf_forward(model, IDS)
    torch.testing.assert_close(trace["logits"], out.logits[0], atol=TOLERANCE, rtol=0)
    arch = trace.arch
    # hidden_states[L] is the stream entering block L (the last entry is after the final norm)
    for layer in range(arch.n_layer):
        torch.testing.assert_close(trace["resid_pre", layer], out.hidden_states[layer][0], atol=TOLERANCE, rtol=0)
    assert len(out.attentions) == arch.n_layer and out.attentions[0].numel() > 0
    for layer in range(arch.n_layer):
        torch.testing.assert_close(trace["pattern", layer], out.attentions[layer][0], atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_intermediates_add_up(variant):
    """The block's pieces say what they claim: attention output is the heads' shares plus b_O, and
    (where the stream is a plain sum) the stream is the sum of what was added to it."""
    model = tiny_model(variant)
    trace = run_trace(model, IDS)
    weights = weights_of(model)
    for layer in range(trace.n_layer):
        shares = head_outputs(model, trace, layer).sum(0) + weights.blocks[layer].b_O  # [pos, d_model]
        torch.testing.assert_close(shares, trace["attn_out", layer], atol=1e-5, rtol=0)
        torch.testing.assert_close(trace["pattern", layer].sum(-1), torch.ones(trace.n_head, len(IDS)))
    if not trace.arch.post_norm:
        total = trace["blocks.0.resid_pre"] + sum(trace["attn_out", l] + trace["mlp_out", l] for l in range(trace.n_layer))
        torch.testing.assert_close(total, trace[f"blocks.{trace.n_layer - 1}.resid_post"], atol=1e-5, rtol=0)


def test_variants_cover_what_matters():
    """The variants above include every family, grouped-query attention at 1, 2 and all key/value
    heads, rotary on a quarter and on all of each head (both pairings), a local window shorter than
    the prompt, tied and untied unembeddings, and biases on and off."""
    archs = {name: weights_of(tiny_model(name)).arch for name in VARIANTS}
    weights = {name: weights_of(tiny_model(name)) for name in VARIANTS}
    assert {a.family for a in archs.values()} == set(FAMILIES)
    llama_kv = {a.n_kv_head / a.n_head for a in archs.values() if a.family == "llama"}
    assert {0.25, 0.5, 1.0} <= llama_kv
    shares = {(a.rotary_dim / a.d_head, a.rotary_interleaved) for a in archs.values() if a.rotary_dim}
    assert {(0.25, True), (1.0, True), (0.25, False), (1.0, False)} <= shares
    assert any(w is not None and w < len(IDS) for a in archs.values() for w in a.window)
    assert {w.tied for w in weights.values()} == {True, False}
    has_qk_bias = {bool(w.blocks[0].b_Q.abs().sum() > 0) for w in weights.values()}
    assert has_qk_bias == {True, False}
    assert any(a.parallel and a.shared_norm for a in archs.values())
    assert any(a.parallel and not a.shared_norm for a in archs.values())
    assert any(a.post_norm for a in archs.values())


def _hook_ablate_heads(model, heads: dict[int, list[int]]):
    """Hugging Face's model with heads' outputs zeroed by a forward pre-hook on the output
    projection (its input is the heads' outputs side by side). Returns the hook handles."""
    weights = weights_of(model)
    d_head = weights.arch.d_head
    handles = []
    for layer, out_proj in enumerate(_output_projections(model)):
        if layer not in heads:
            continue

        def zero(module, args, chosen=tuple(heads[layer])):
            (x,) = args
            x = x.clone()
            for head in chosen:
                x[..., head * d_head:(head + 1) * d_head] = 0.0
            return (x,)
        handles.append(out_proj.register_forward_pre_hook(zero))
    return handles


def _output_projections(model):
    family = model.config.model_type
    if family in ("gpt2", "openai-gpt"):
        return [b.attn.c_proj for b in model.transformer.h]
    if family == "gpt_neo":
        return [b.attn.attention.out_proj for b in model.transformer.h]
    if family == "gptj":
        return [b.attn.out_proj for b in model.transformer.h]
    if family == "gpt_neox":
        return [b.attention.dense for b in model.gpt_neox.layers]
    return [b.self_attn.o_proj for b in model.model.layers]


def _mlp_down_projections(model):
    family = model.config.model_type
    if family in ("gpt2", "openai-gpt", "gpt_neo"):
        return [b.mlp.c_proj for b in model.transformer.h]
    if family == "gptj":
        return [b.mlp.fc_out for b in model.transformer.h]
    if family == "gpt_neox":
        return [b.mlp.dense_4h_to_h for b in model.gpt_neox.layers]
    return [b.mlp.down_proj for b in model.model.layers]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_ablation_equals_a_hooked_hugging_face_model(variant):
    model = tiny_model(variant)
    heads = {(0, 1), (1, 0), (1, 3)}
    neurons = {(0, 5), (1, 2), (1, 11)}
    trace = run_trace(model, IDS, interventions=Interventions(frozenset(heads), frozenset(neurons)))
    handles = _hook_ablate_heads(model, {0: [1], 1: [0, 3]})
    for layer, down in enumerate(_mlp_down_projections(model)):
        chosen = [n for l, n in neurons if l == layer]

        def zero(module, args, chosen=tuple(chosen)):
            (x,) = args
            x = x.clone()
            x[..., list(chosen)] = 0.0  # the gate × up product (gated) or the activation (plain)
            return (x,)
        handles.append(down.register_forward_pre_hook(zero))
    try:
        with torch.no_grad():
            hooked = model(torch.tensor([IDS])).logits[0]
    finally:
        for handle in handles:
            handle.remove()
    torch.testing.assert_close(trace["logits"], hooked, atol=TOLERANCE, rtol=0)
    assert not torch.allclose(trace["logits"], run_trace(model, IDS)["logits"], atol=1e-3)
    assert (trace["z", 1][3] == 0).all() and (trace["mlp_post", 1][:, 11] == 0).all()


def test_weights_are_views_of_the_model_and_the_model_is_unchanged():
    model = tiny_model("llama-gqa2")
    before = {name: p.clone() for name, p in model.state_dict().items()}
    weights = weights_of(model)
    run_trace(model, IDS, interventions=Interventions(frozenset({(0, 0)}), frozenset({(1, 1)}), use_positions=False))
    assert weights.blocks[0].W_Q.data_ptr() == model.model.layers[0].self_attn.q_proj.weight.data_ptr()
    assert weights_of(model) is weights  # converted once per model
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name


def test_rotary_scores_depend_on_distance_not_place():
    """With rotary positions, shifting the whole prompt changes no score of the first block (it
    sees only distances); with learned positions it does."""
    from core.positions import shift_invariance

    assert shift_invariance(tiny_model("llama-gqa2"), IDS[:6], shift=5) < 1e-4
    assert shift_invariance(tiny_model("gpt2"), IDS[:6], shift=5) > 1e-2


def test_unsupported_family_names_what_is_supported():
    from transformers import BertConfig, BertLMHeadModel

    model = BertLMHeadModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                       intermediate_size=16, vocab_size=30, is_decoder=True))
    with pytest.raises(UnsupportedModel, match="Llama") as error:
        weights_of(model)
    assert "bert" in str(error.value)
