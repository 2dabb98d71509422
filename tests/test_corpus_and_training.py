"""The story generator and the trainer."""
from __future__ import annotations

import math

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
