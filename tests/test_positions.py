"""The Positional-encoding lesson's math, and the claim its experiment makes."""
from __future__ import annotations

import math


from core import positions
from tests.conftest import random_gpt2


def test_sinusoidal_encoding_matches_the_formula():
    encoding = positions.sinusoidal_encoding(50, 16)
    assert encoding.shape == (50, 16)
    for p, i in [(0, 0), (7, 3), (49, 7)]:
        angle = p / 10000 ** (2 * i / 16)
        assert math.isclose(float(encoding[p, 2 * i]), math.sin(angle), abs_tol=1e-5)
        assert math.isclose(float(encoding[p, 2 * i + 1]), math.cos(angle), abs_tol=1e-5)


def test_reorder_keeps_the_last_token_last():
    assert positions.reordered([5, 6, 7, 8], "reverse") == [2, 1, 0, 3]
    shuffled = positions.reordered(list(range(10)), "shuffle", seed=3)
    assert sorted(shuffled) == list(range(10)) and shuffled[-1] == 9


def test_without_positions_block0_is_order_blind_at_the_last_position_but_the_model_is_not():
    model = random_gpt2(n_layer=3, n_head=4, n_embd=64, vocab_size=50)
    ids = [4, 17, 9, 33, 2, 41, 8]
    result = positions.reorder_experiment(model, ids, positions.reordered(ids, "reverse"))
    assert result.block0_change[False] < 1e-5  # attention in block 0 treats earlier tokens as a set
    assert result.block0_change[True] > 1e-4  # with positions the order shows from block 0 on
    assert result.final_change[False] > 1e-4  # later blocks see order through the causal mask


def test_the_experiment_holds_on_the_bundled_model(bundled):
    ids = bundled.tokenizer("Tom had a red ball and a blue kite. He")["input_ids"]
    result = positions.reorder_experiment(bundled.model, ids, positions.reordered(ids, "shuffle", seed=1))
    assert result.block0_change[False] < 1e-5 < result.block0_change[True]
    assert result.final_change[False] > 1e-4
