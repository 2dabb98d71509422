"""Lesson 7's frozen step: one backpropagation step taken apart, on every family."""
from __future__ import annotations

import pytest
import torch

from core.backprop_step import block_module_names, blocks_of, frozen_step
from tests.tiny_models import VARIANTS, tiny_model


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_frozen_step_gradient_at_the_logits_is_softmax_minus_one_hot(variant):
    model = tiny_model(variant)
    before = [p.clone() for p in model.parameters()]
    ids = [3, 7, 1, 9, 4]
    step = frozen_step(model, ids, learning_rate=0.5)
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0]
    losses = torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(ids[1:]), reduction="none")
    assert step.loss == pytest.approx(float(losses.mean()), abs=1e-5)
    assert step.position == int(losses.argmax()) and step.target == ids[step.position + 1]
    one_hot = torch.zeros(model.config.vocab_size)
    one_hot[step.target] = 1
    torch.testing.assert_close(step.logit_grad, (step.logit_probs - one_hot) / (len(ids) - 1))
    n_layer = len(blocks_of(model))
    assert step.module_grad_norms.shape == (n_layer, len(step.module_names)) and (step.module_grad_norms > 0).all()
    assert step.module_names == block_module_names(blocks_of(model)[0])
    assert "token embeddings" in step.other_grad_norms and all(v > 0 for v in step.other_grad_norms.values())
    for update in step.updates:
        assert update.after == pytest.approx(update.before - 0.5 * update.gradient, abs=1e-6)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # the shared model is untouched


def test_module_names_are_the_blocks_weights():
    assert block_module_names(blocks_of(tiny_model("gpt2"))[0]) == ["ln_1", "attn.c_attn", "attn.c_proj", "ln_2",
                                                                    "mlp.c_fc", "mlp.c_proj"]
    names = block_module_names(blocks_of(tiny_model("llama-gqa2"))[0])
    assert {"self_attn.q_proj", "self_attn.k_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj",
            "input_layernorm", "post_attention_layernorm"} == set(names) - {"self_attn.v_proj", "self_attn.o_proj"}
