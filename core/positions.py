"""The Positional-encoding lesson's math: learned and sinusoidal position encodings, and the
reordering experiment (positions dropped as a call argument of the glass-box forward)."""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

import torch

from core.architectures import weights_of
from core.glassbox import Interventions, rotary_angles, run_trace


def learned_positions(model, count: int) -> torch.Tensor | None:
    """The first `count` rows of the learned position embedding; None for a rotary model."""
    w_pos = weights_of(model).W_pos
    return None if w_pos is None else w_pos[:count]  # [count, d_model]


@torch.no_grad()
def shift_invariance(model, ids: list[int], shift: int) -> float:
    """The largest change of any first-block attention score when the whole prompt is given
    positions shift..shift+n-1 instead of 0..n-1. Rotary positions: the scores see only the
    distance between query and key, so nothing changes (to float precision); learned positions
    are added to the tokens, so the scores change."""
    ids = ids[-max(1, weights_of(model).arch.n_ctx - shift):]  # the moved prompt must fit the context too
    here = run_trace(model, ids, through_block=0)["scores", 0]  # [head, query, key]
    moved = run_trace(model, ids, interventions=Interventions(first_position=shift), through_block=0)["scores", 0]
    return float((here - moved).abs().max())


@dataclass(frozen=True)
class RotaryPair:
    """One pair of a query's rotary dims at two positions: what RoPE does to a real vector."""
    pair: int  # which pair of dims (0: the fastest-turning)
    dims: tuple[int, int]  # the two dims of each head that form this pair
    angle_per_position: float  # radians it turns per position
    before: tuple[float, float]  # the query's two values before the turn (no position in them)
    turned: dict[int, tuple[float, float]]  # position -> the two values after the turn


def rotary_pairs(model, q: torch.Tensor, places: list[int], pairs: list[int]) -> list[RotaryPair]:
    """How rotary position embedding turns `q` ([d_head], one head's query before rotation) if it
    stood at each of `places`, for some of its pairs of dims, by the model's own angles."""
    weights = weights_of(model)
    arch = weights.arch
    half = arch.rotary_dim // 2
    out = []
    for pair in pairs:
        dims = (2 * pair, 2 * pair + 1) if arch.rotary_interleaved else (pair, pair + half)
        a, b = float(q[dims[0]]), float(q[dims[1]])
        turned = {}
        for place in places:
            cos, sin = (float(x[0, pair]) for x in rotary_angles(weights, 1, place))
            turned[place] = (a * cos - b * sin, b * cos + a * sin)
        out.append(RotaryPair(pair, dims, float(weights.rotary_inv_freq[pair]), (a, b), turned))
    return out


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
