"""The trainer's options a practitioner expects: gradient accumulation, learning-rate schedules
and bfloat16 autocast."""
from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

from core.training import SCHEDULES, Trainer, TrainConfig, learning_rate_at, schedule_curve

BASE = TrainConfig(n_layer=1, n_head=2, n_embd=32, block_size=16, batch_size=4, learning_rate=1e-2, warmup_steps=2,
                   max_steps=20, seed=0)


def data(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 50, (2000,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
def test_one_step_with_accumulation_equals_one_step_on_the_whole_batch(architecture):
    """4 micro-batches of 4 with accumulation move the weights as one batch of 16 (within float
    tolerance): the loss of each micro-batch is divided by 4, so the gradients add up to the mean's."""
    ids = data()
    accumulated = Trainer(replace(BASE, accumulation_steps=4, architecture=architecture), ids, ids, 50, 0)
    whole = Trainer(replace(BASE, batch_size=16, architecture=architecture), ids, ids, 50, 0)
    whole.model.load_state_dict(copy.deepcopy(accumulated.model.state_dict()))
    drawn = [accumulated.batch(ids, torch.Generator().manual_seed(7)) for _ in range(4)]  # 4 × [4, 16]
    queue = list(drawn)
    accumulated.batch = lambda *args: queue.pop(0)
    whole.batch = lambda *args: torch.cat(drawn)  # [16, 16]: the same examples at once
    first, second = accumulated.step(), whole.step()
    assert first.tokens == second.tokens == 16 * 16
    assert first.loss == pytest.approx(second.loss, abs=1e-5)
    assert first.grad_norm == pytest.approx(second.grad_norm, rel=1e-4)
    for (name, a), b in zip(accumulated.model.state_dict().items(), whole.model.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5, msg=name)


def test_schedules_warm_up_then_decay_as_named():
    for schedule in SCHEDULES:
        config = replace(BASE, schedule=schedule, max_steps=100, warmup_steps=10, min_lr_ratio=0.1)
        rates = [learning_rate_at(step, config) for step in range(100)]
        assert rates[:10] == pytest.approx([1e-2 * (s + 1) / 10 for s in range(10)])  # linear warm-up to the peak
        if schedule == "constant":
            assert set(rates[10:]) == {1e-2}
        else:
            assert rates[10] == pytest.approx(1e-2) and all(a >= b for a, b in zip(rates[10:], rates[11:]))
            assert learning_rate_at(100, config) == pytest.approx(1e-3)  # min_lr_ratio of the peak at the end
        middle = learning_rate_at(55, config)
        expected = {"constant": 1e-2, "linear": 1e-2 - 0.9e-2 * 0.5, "cosine": 1e-3 + 0.5 * 0.9e-2}[schedule]
        assert middle == pytest.approx(expected)
    steps, rates = schedule_curve(replace(BASE, max_steps=100), points=11)
    assert steps[0] == 0 and steps[-1] == 99 and rates == [learning_rate_at(s, replace(BASE, max_steps=100)) for s in steps]


def test_bfloat16_autocast_trains_and_keeps_float32_weights():
    ids = torch.arange(2000) % 7  # a pattern a model can learn
    trainer = Trainer(replace(BASE, precision="bfloat16", max_steps=30), ids, ids, 50, 0)
    losses = [trainer.step().loss for _ in range(30)]
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5  # it learns


def test_tiny_shakespeare_ships_with_the_project():
    from core.corpus import shakespeare_text

    text = shakespeare_text()
    assert len(text.encode("utf-8")) == 1_115_394 and text.startswith("First Citizen:")
    assert text.count("\n") == 40_000
