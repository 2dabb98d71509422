"""The glass-box forward equals Hugging Face's, and interventions never touch the shared model."""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from core.glassbox import Interventions, head_outputs, run_trace
from tests.conftest import random_gpt2
from tests.tiny_models import VARIANTS, tiny_model

TOLERANCE = 1e-4
CONFIGS = [
    dict(n_layer=1, n_head=1, n_embd=16),
    dict(n_layer=2, n_head=4, n_embd=64),
    dict(n_layer=3, n_head=6, n_embd=96, n_inner=200),
    dict(n_layer=2, n_head=2, n_embd=32, activation_function="gelu"),
    dict(n_layer=2, n_head=4, n_embd=64, scale_attn_by_inverse_layer_idx=True),
]


def assert_matches_hugging_face(model, ids: list[int]) -> None:
    trace = run_trace(model, ids)
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), output_hidden_states=True, output_attentions=True)
    n_layer = model.config.n_layer
    assert len(out.hidden_states) == n_layer + 1
    for layer in range(n_layer):
        torch.testing.assert_close(trace[f"blocks.{layer}.resid_pre"], out.hidden_states[layer][0],
                                   atol=TOLERANCE, rtol=0)
        torch.testing.assert_close(trace[f"blocks.{layer}.attn.pattern"], out.attentions[layer][0],
                                   atol=TOLERANCE, rtol=0)
    # Hugging Face's last hidden state is after the final LayerNorm
    torch.testing.assert_close(trace["ln_final.out"], out.hidden_states[n_layer][0], atol=TOLERANCE, rtol=0)
    torch.testing.assert_close(trace["logits"], out.logits[0], atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_trace_equals_hugging_face_on_random_models(config):
    model = random_gpt2(**config, seed=len(config))
    ids = torch.randint(0, model.config.vocab_size, (40,), generator=torch.Generator().manual_seed(1)).tolist()
    assert_matches_hugging_face(model, ids)


def test_trace_equals_hugging_face_on_the_bundled_model(bundled):
    ids = bundled.tokenizer("Once upon a time, there was a girl named Mia. Mia had a red ball.")["input_ids"]
    assert_matches_hugging_face(bundled.model, ids)


def test_trace_names_and_shapes():
    model = random_gpt2(n_layer=2, n_head=4, n_embd=32, vocab_size=50)
    trace = run_trace(model, [1, 2, 3, 4, 5])
    assert trace["embed.token"].shape == (5, 32)
    assert trace["blocks.1.attn.q"].shape == (4, 5, 8)
    assert trace["blocks.1.attn.pattern"].shape == (4, 5, 5)
    assert head_outputs(model, trace, 0).shape == (4, 5, 32)
    assert trace["blocks.0.mlp.post"].shape == (5, 128)
    assert trace["logits"].shape == (5, 50)
    torch.testing.assert_close(trace["blocks.0.attn.pattern"].sum(-1), torch.ones(4, 5))
    assert torch.all(trace["blocks.0.attn.pattern"].triu(1) == 0)  # no query looks ahead
    head_sum = head_outputs(model, trace, 1).sum(0) + model.transformer.h[1].attn.c_proj.bias
    torch.testing.assert_close(head_sum, trace["blocks.1.attn.out"])
    scaled = trace["blocks.1.attn.scores"] / math.sqrt(8)  # computed on access, as the forward computed it
    torch.testing.assert_close(trace["blocks.1.attn.scores_scaled"], scaled)
    masked = trace["blocks.1.attn.scores_masked"]
    future = torch.ones(5, 5, dtype=torch.bool).triu(1)  # [query, key]
    assert torch.all(masked[:, future] == float("-inf")) and torch.equal(masked[:, ~future], scaled[:, ~future])
    assert torch.equal(torch.softmax(masked, dim=-1), trace["blocks.1.attn.pattern"])  # bit for bit
    with pytest.raises(KeyError):
        trace["blocks.1.attn.head_out"]
    torch.testing.assert_close(trace["blocks.1.resid_post"],
                               trace["blocks.1.resid_mid"] + trace["blocks.1.mlp.out"])


def test_long_prompts_keep_their_last_tokens_and_say_so():
    model = random_gpt2(n_positions=16)
    ids = list(range(40))
    trace = run_trace(model, ids)
    assert trace.truncated and trace.dropped_tokens == 24
    assert trace.token_ids == ids[-16:]
    assert not run_trace(model, ids[:16]).truncated
    assert run_trace(model, ids, max_tokens=8).token_ids == ids[-8:]


def test_a_trace_through_an_early_block_is_the_full_traces_beginning():
    """run_trace(..., through_block=k): the experiments that read only block 0 (lesson 3's shift
    test) stop there; what they read is what the full forward computes."""
    model = random_gpt2(n_layer=3, n_head=2, n_embd=32)
    ids = [5, 17, 3, 99, 42, 7]
    moved = Interventions(first_position=4)
    full, early = run_trace(model, ids, interventions=moved), run_trace(model, ids, interventions=moved, through_block=0)
    shared = [name for name in full.tensors if name.startswith(("embed.", "blocks.0."))]
    assert shared and set(early.tensors) == set(shared)  # block 0 and before, nothing later, no logits
    for name in shared:
        torch.testing.assert_close(early[name], full[name], atol=0, rtol=0)
    assert "blocks.1.resid_pre" in full and "blocks.1.resid_pre" not in early and "logits" not in early


def test_empty_prompt_is_refused():
    with pytest.raises(ValueError):
        run_trace(random_gpt2(), [])


def test_head_ablation_zeroes_that_head_only():
    model = random_gpt2(n_layer=2, n_head=4, n_embd=32)
    ids = [5, 9, 2, 7, 7, 1]
    plain = run_trace(model, ids)
    ablated = run_trace(model, ids, interventions=Interventions(ablated_heads=frozenset({(1, 2)})))
    assert torch.all(head_outputs(model, ablated, 1)[2] == 0)
    torch.testing.assert_close(head_outputs(model, ablated, 1)[[0, 1, 3]], head_outputs(model, plain, 1)[[0, 1, 3]])
    torch.testing.assert_close(ablated["blocks.1.resid_pre"], plain["blocks.1.resid_pre"])  # earlier layers untouched
    assert not torch.allclose(ablated["logits"], plain["logits"])


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_an_ablated_run_resumed_from_the_clean_trace_is_the_whole_ablated_run(variant):
    """cached_trace starts an ablated run at its first ablated block, from the clean trace: every
    value must be the one the whole ablated run computes, on every family (pre-LN, post-LN, parallel)."""
    model = tiny_model(variant)  # two blocks: the second ablated, the first taken from the clean run
    ids = [5, 9, 2, 7, 7, 1, 9, 2]
    clean = run_trace(model, ids)
    for ablation in (Interventions(ablated_heads=frozenset({(1, 0), (1, 2)})), Interventions(ablated_neurons=frozenset({(1, 3)}))):
        whole = run_trace(model, ids, interventions=ablation)
        resumed = run_trace(model, ids, interventions=ablation, resume_from=clean)
        assert resumed.tensors.keys() == whole.tensors.keys()
        for name, tensor in whole.tensors.items():
            assert torch.equal(resumed[name], tensor), name
        first = min(layer for layer, _ in ablation.ablated_heads | ablation.ablated_neurons)
        assert resumed["blocks.0.attn.pattern"] is clean["blocks.0.attn.pattern"]  # taken, not computed again
        assert not torch.equal(resumed[f"blocks.{first}.resid_post"], clean[f"blocks.{first}.resid_post"])
    with pytest.raises(ValueError, match="resumes only"):
        run_trace(model, ids[:-1], interventions=ablation, resume_from=clean)  # other tokens
    with pytest.raises(ValueError, match="resumes only"):
        run_trace(model, ids, interventions=ablation, resume_from=whole)  # a trace with an ablation of its own
    with pytest.raises(ValueError, match="resumes only"):
        run_trace(model, ids, interventions=Interventions(frozenset({(1, 0)}), use_positions=False), resume_from=clean)


def test_neuron_ablation_matches_a_zeroed_weight_copy():
    """Ablating neuron n equals deleting its output row from c_proj in a private copy of the model."""
    import copy
    model = random_gpt2(n_layer=2, n_head=2, n_embd=32)
    ids = [3, 1, 4, 1, 5, 9]
    ablated = run_trace(model, ids, interventions=Interventions(ablated_neurons=frozenset({(0, 7), (1, 3)})))
    edited = copy.deepcopy(model)
    with torch.no_grad():
        edited.transformer.h[0].mlp.c_proj.weight[7] = 0
        edited.transformer.h[1].mlp.c_proj.weight[3] = 0
        expected = edited(input_ids=torch.tensor([ids])).logits[0]
    torch.testing.assert_close(ablated["logits"], expected, atol=TOLERANCE, rtol=0)
    assert torch.all(ablated["blocks.0.mlp.post"][:, 7] == 0)


def test_dropping_positions_removes_position_embeddings():
    model = random_gpt2()
    trace = run_trace(model, [1, 2, 3], interventions=Interventions(use_positions=False))
    assert torch.all(trace["embed.position"] == 0)
    torch.testing.assert_close(trace["blocks.0.resid_pre"], trace["embed.token"])


def test_threads_share_one_model_without_interfering():
    model = random_gpt2(n_layer=3, n_head=4, n_embd=64, n_positions=128, vocab_size=300)
    weights_before = {name: p.clone() for name, p in model.state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    prompts = [torch.randint(0, 300, (length,), generator=generator).tolist() for length in (10, 50, 90, 120)]
    settings = [Interventions(),
                Interventions(ablated_heads=frozenset({(0, 1), (2, 3)})),
                Interventions(ablated_neurons=frozenset({(1, n) for n in range(0, 256, 3)})),
                Interventions(ablated_heads=frozenset({(1, 0)}), use_positions=False)]
    jobs = [(p, s) for p in prompts for s in settings] * 3
    expected = {(tuple(p), s): run_trace(model, p, interventions=s)["logits"] for p, s in jobs}
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda job: run_trace(model, job[0], interventions=job[1])["logits"], jobs))
    for (p, s), logits in zip(jobs, results):
        assert torch.equal(logits, expected[(tuple(p), s)])
    for name, p in model.state_dict().items():
        assert torch.equal(p, weights_before[name]), name
    assert len({tuple(r[-1, :5].tolist()) for r in results}) > 4  # the settings really differ


def test_every_activation_the_glass_box_computes_has_the_name_lesson_5_gives_it():
    from core.glassbox import ACTIVATION_NAMES, ACTIVATIONS, activate

    assert set(ACTIVATION_NAMES) == set(ACTIVATIONS)
    x = torch.linspace(-3, 3, 13)
    for activation, name in ACTIVATION_NAMES.items():  # the name is what the function computes
        expected = {"GELU": torch.nn.functional.gelu(x), "ReLU": torch.relu(x), "SiLU": x * torch.sigmoid(x)}[name]
        assert torch.allclose(activate(x, activation), expected, atol=1e-3), activation
