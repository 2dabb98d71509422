"""The Positional-encoding lesson's math: learned and sinusoidal position encodings, and the
reordering experiment (positions dropped as a call argument of the glass-box forward)."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch

from core.glassbox import Interventions, run_trace


def learned_positions(model, count: int) -> torch.Tensor:
    return model.transformer.wpe.weight.detach()[:count]  # [count, d_model]


def sinusoidal_encoding(count: int, width: int) -> torch.Tensor:
    """The fixed encoding of "Attention Is All You Need" (Vaswani et al., 2017):
    PE[p, 2i] = sin(p / 10000^(2i/width)), PE[p, 2i+1] = cos(p / 10000^(2i/width))."""
    positions = torch.arange(count, dtype=torch.float32).unsqueeze(1)  # [count, 1]
    rates = torch.exp(-math.log(10000.0) * torch.arange(0, width, 2, dtype=torch.float32) / width)  # [width/2]
    encoding = torch.zeros(count, width)  # [count, width]
    encoding[:, 0::2] = torch.sin(positions * rates)
    encoding[:, 1::2] = torch.cos(positions * rates)[:, : width // 2]
    return encoding


def reordered(ids: list[int], how: str, seed: int = 0) -> list[int]:
    """A new order of every token but the last (which stays last, so the prediction is for the
    same token): 'reverse' or 'shuffle' (seeded)."""
    earlier = list(range(len(ids) - 1))
    if how == "reverse":
        earlier.reverse()
    else:
        random.Random(seed).shuffle(earlier)
    return earlier + [len(ids) - 1]


@dataclass(frozen=True)
class ReorderResult:
    order: list[int]  # new position -> old position
    block0_change: dict[bool, float]  # use_positions -> max |Δ| of blocks.0.attn.out at the last position
    final_change: dict[bool, float]  # use_positions -> max |Δ| of the next-token probabilities
    top_token: dict[tuple[bool, bool], int]  # (use_positions, reordered) -> predicted next token id


def reorder_experiment(model, ids: list[int], order: list[int]) -> ReorderResult:
    shuffled_ids = [ids[i] for i in order]
    block0, final, top = {}, {}, {}
    for use_positions in (True, False):
        setting = Interventions(use_positions=use_positions)
        original = run_trace(model, ids, interventions=setting)
        moved = run_trace(model, shuffled_ids, interventions=setting)
        block0[use_positions] = float((original["blocks.0.attn.out"][-1] - moved["blocks.0.attn.out"][-1]).abs().max())
        final[use_positions] = float((original.next_token_probs() - moved.next_token_probs()).abs().max())
        top[(use_positions, False)] = int(original.next_token_probs().argmax())
        top[(use_positions, True)] = int(moved.next_token_probs().argmax())
    return ReorderResult(order, block0, final, top)
