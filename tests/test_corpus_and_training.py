"""The story generator and the trainer."""
from __future__ import annotations

import math

import pytest

import torch

from core.corpus import END_OF_TEXT, generate_stories, join_stories
from core.training import Trainer, TrainConfig, learning_rate_at


def test_stories_are_deterministic_and_differ_by_seed():
    assert [s.text for s in generate_stories(20, 1)] == [s.text for s in generate_stories(20, 1)]
    assert [s.text for s in generate_stories(20, 1)] != [s.text for s in generate_stories(20, 2)]


def test_probes_point_at_their_answers():
    kinds = set()
    for story in generate_stories(300, 7):
        for probe in story.probes:
            kinds.add(probe.kind)
            assert story.text[probe.start:probe.start + len(probe.answer)] == probe.answer
            if probe.kind == "name":  # the name was introduced earlier in the story
                assert probe.answer.strip() in story.text[:probe.start]
            if probe.kind == "pronoun":
                assert probe.wrong and probe.wrong != probe.answer
    assert kinds == {"name", "pronoun", "object", "mat"}


def test_cat_always_sits_on_the_mat():
    text = join_stories(generate_stories(300, 8))
    assert text.count("The cat sat on the") == text.count("The cat sat on the mat") > 0
    assert text.endswith(END_OF_TEXT)


def test_learning_rate_schedule():
    config = TrainConfig(learning_rate=1.0, min_lr_ratio=0.1, warmup_steps=10, max_steps=110)
    assert learning_rate_at(0, config) == 0.1
    assert learning_rate_at(9, config) == 1.0
    assert math.isclose(learning_rate_at(60, config), 0.55)  # half-way down the cosine
    assert math.isclose(learning_rate_at(110, config), 0.1)


def tiny_trainer(seed=0) -> Trainer:
    config = TrainConfig(n_layer=1, n_head=2, n_embd=32, block_size=16, batch_size=8, learning_rate=1e-2,
                         warmup_steps=2, max_steps=40, seed=seed)
    pattern = torch.tensor([1, 2, 3, 4, 5, 6, 7, 8] * 50)  # [400] a sequence a model can learn
    return Trainer(config, pattern, pattern, vocab_size=10, eos_token_id=0)


def test_trainer_lowers_the_loss():
    trainer = tiny_trainer()
    before = trainer.validation_loss()
    for _ in range(40):
        trainer.step()
    assert trainer.validation_loss() < before / 2


def test_trainer_is_deterministic():
    first, second = tiny_trainer(), tiny_trainer()
    losses = [[t.step().loss for _ in range(5)] for t in (first, second)]
    assert losses[0] == losses[1]


def test_training_forward_equals_hugging_face_and_switches_change_it_as_stated():
    import copy

    from core.training import forward_logits
    from tests.conftest import random_gpt2

    model = random_gpt2(n_layer=2, n_head=2, n_embd=16, vocab_size=30)
    ids = torch.tensor([[3, 7, 1, 9, 4, 4, 2], [5, 5, 6, 1, 0, 8, 2]])  # [batch, pos]
    with torch.no_grad():
        torch.testing.assert_close(forward_logits(model, ids), model(ids).logits, atol=1e-5, rtol=0)
        # no LayerNorm: the same as the Hugging Face model with every LayerNorm replaced by the identity
        stripped = copy.deepcopy(model)
        for block in stripped.transformer.h:
            block.ln_1, block.ln_2 = torch.nn.Identity(), torch.nn.Identity()
        stripped.transformer.ln_f = torch.nn.Identity()
        torch.testing.assert_close(forward_logits(model, ids, use_layernorm=False), stripped(ids).logits,
                                   atol=1e-5, rtol=0)
        # no residual: each half's output replaces the stream
        gpt = model.transformer
        x = gpt.wte(ids) + gpt.wpe(torch.arange(ids.shape[1]))
        causal = torch.zeros(1, 1, 7, 7).masked_fill(torch.ones(7, 7, dtype=torch.bool).triu(1), float("-inf"))
        for block in gpt.h:
            x = block.attn(block.ln_1(x), attention_mask=causal)[0]
            x = block.mlp(block.ln_2(x))
        torch.testing.assert_close(forward_logits(model, ids, use_residual=False), model.lm_head(gpt.ln_f(x)),
                                   atol=1e-6, rtol=0)
        assert not torch.allclose(forward_logits(model, ids, use_residual=False), model(ids).logits, atol=1e-3)
        # causal: the first position's logits do not depend on later tokens
        changed = ids.clone()
        changed[:, 3:] = 11
        for switches in ({}, {"use_residual": False}, {"use_layernorm": False}):
            torch.testing.assert_close(forward_logits(model, ids, **switches)[:, :3],
                                       forward_logits(model, changed, **switches)[:, :3])


def test_layer_gradient_norms_and_update_ratios_equal_a_direct_computation():
    trainer = tiny_trainer()
    trainer.step()
    reference = tiny_trainer()
    reference.step()  # the same first step, so both models are equal before the measured step
    result = trainer.step(measure_layers=True)
    model = reference.model
    for group in reference.optimizer.param_groups:
        group["lr"] = result.learning_rate
    inputs = reference.batch(reference.train_ids, reference.sampler)
    loss = model(input_ids=inputs, labels=inputs).loss
    reference.optimizer.zero_grad()
    loss.backward()
    block = list(model.transformer.h[0].parameters())
    expected_grad = float(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in block)))
    assert result.layer_grad_norms["block 0"] == pytest.approx(expected_grad, rel=1e-6)
    before = [p.detach().clone() for p in block]
    torch.nn.utils.clip_grad_norm_(model.parameters(), reference.config.grad_clip)
    reference.optimizer.step()
    change = float(torch.sqrt(sum(((p.detach() - b).double() ** 2).sum() for p, b in zip(block, before))))
    weight = float(torch.sqrt(sum((b.double() ** 2).sum() for b in before)))
    assert result.update_ratios["block 0"] == pytest.approx(change / weight, rel=1e-5)
    assert set(result.layer_grad_norms) == {"embeddings", "block 0", "final LayerNorm"}


def test_a_diverging_run_is_flagged():
    trainer = tiny_trainer()
    with torch.no_grad():
        trainer.model.transformer.wte.weight.fill_(float("nan"))  # this trainer's own model, not a shared one
    assert trainer.step().diverged


def test_the_warmup_window_grows_from_16_tokens_to_the_whole_context_when_asked():
    """`--grow-window FIRST,LAST` (the GPT-2 design's copying grew only at the distances its 16-token
    windows showed it): 16 tokens until FIRST, evenly more up to the context at LAST, then all of it."""
    from core.build_course_model import COPY_WINDOW, warmup_window

    assert COPY_WINDOW == 16
    assert [warmup_window(step, None, 128) for step in (0, 5000, 9000)] == [16, 16, 16]  # no growth asked
    grown = [warmup_window(step, (1500, 6000), 128) for step in (0, 1500, 3750, 6000, 8000)]
    assert grown == [16, 16, 72, 128, 128]
    steps = [warmup_window(step, (1500, 6000), 128) for step in range(8000)]
    assert steps == sorted(steps)  # never shrinks


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
def test_each_shipped_model_was_built_by_its_designs_recipe(architecture):
    """The recipe in code (`RECIPES`) is the one each bundled model's build recorded, so that
    `python -m core.build_course_model [--architecture llama]` rebuilds the model that ships."""
    import json

    from core.build_course_model import MODEL_DIR, MODERN_MODEL_DIR, RECIPES

    recipe = RECIPES[architecture]
    training = json.loads(((MODERN_MODEL_DIR if architecture == "llama" else MODEL_DIR) / "training.json").read_text())
    corpus = training["corpus"]
    assert corpus["copy_warmup_steps"] == recipe.copy_warmup_steps
    assert training["config"]["max_steps"] == recipe.copy_warmup_steps + recipe.main_steps
    assert corpus.get("copy_warmup_window_growth") == (list(recipe.grow_window) if recipe.grow_window else None)
    assert corpus.get("copy_warmup_story_spans", False) == recipe.story_spans
    shared = corpus["repeat_tokens"] / (corpus["repeat_tokens"] + corpus["train_tokens"])
    assert shared == pytest.approx(recipe.repeat_share, abs=0.01)
