"""The lessons' new maths for today's designs: rotary pairs, grouped-query attention and the
key/value cache, RMSNorm beside LayerNorm, the SwiGLU gate, and the block diagrams, each held
to the glass-box forward on every family; and the numbers lessons 3-5 quote about them."""
from __future__ import annotations

import math

import pytest
import torch

from core import attention, diagrams, positions, residual
from core.architectures import weights_of
from core.glassbox import rotary_angles, rotate, run_trace
from core.models import reference_configs, reference_models
from tests.conftest import lesson_text, quoted
from tests.tiny_models import VARIANTS, tiny_model

IDS = [4, 8, 15, 16, 23, 42, 7, 9]
ROTARY = [name for name in sorted(VARIANTS) if weights_of(tiny_model(name)).arch.rotary_dim]


@pytest.mark.parametrize("variant", ROTARY)
def test_rotary_pairs_are_the_forwards_own_turn(variant):
    """The lesson's arrows are the query the forward turns: at the token's real position they
    equal the trace's q_rot; at any position the turn keeps each pair's length."""
    model = tiny_model(variant)
    weights = weights_of(model)
    trace = run_trace(model, IDS)
    token = len(IDS) - 1
    q = trace["q", 0][0, token]  # [d_head]
    half = weights.arch.rotary_dim // 2
    pairs = positions.rotary_pairs(model, q, [0, token, token + 8], [0, half - 1])
    for pair in pairs:
        a, b = trace["q_rot", 0][0, token, list(pair.dims)].tolist()
        assert pair.turned[token] == pytest.approx((a, b), abs=1e-5)
        assert pair.turned[0] == pytest.approx(pair.before, abs=1e-6)  # position 0 is not turned
        for turned in pair.turned.values():
            assert math.hypot(*turned) == pytest.approx(math.hypot(*pair.before), rel=1e-5)
    assert pairs[0].angle_per_position == pytest.approx(1.0)  # pair 0 turns one radian per position
    # and rotate() at a shifted start equals rotating at the later positions
    cos, sin = rotary_angles(weights, 3, first=5)
    cos_all, sin_all = rotary_angles(weights, 8)
    x = torch.randn(2, 3, weights.arch.d_head)
    torch.testing.assert_close(rotate(x, cos, sin, weights.arch), rotate(x, cos_all[5:], sin_all[5:], weights.arch))


def test_kv_cache_per_token_and_the_lessons_question():
    rows = {row.model: row for row in attention.kv_cache_rows(reference_models())}
    llama = rows["Llama 3.1 8B"]
    assert llama.bytes_per_token == 2 * 32 * 8 * 128 * 2 == 128 * 1024
    text = lesson_text("04_attention.md")
    layers, kv, d_head, numbers = quoted(r"2 × (\d+) × (\d+) × (\d+) = ([\d,]+)\s+-", text.split("- [x]")[1][:60] + " -")
    assert int(numbers.replace(",", "")) == 2 * int(layers) * int(kv) * int(d_head) == llama.bytes_per_token // 2
    # every reference row's numbers come from its own sizes
    for row in rows.values():
        assert row.bytes_per_token == 2 * row.layers * row.kv_heads * row.d_head * 2
        assert row.heads % row.kv_heads == 0


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_head_groups_and_block_wiring_are_drawn_from_the_model(variant):
    arch = weights_of(tiny_model(variant)).arch
    groups = diagrams.head_groups_figure(arch, variant)
    query_heads, kv_heads = groups.data[-2], groups.data[-1]
    assert len(query_heads.x) == arch.n_head and len(kv_heads.x) == arch.n_kv_head
    assert len(groups.data) - 2 == arch.n_head  # one line per query head, to its key/value head
    wiring = diagrams.block_wirings_figure(arch, variant)
    bold = [a.text for a in wiring.layout.annotations if a.text.startswith("<b>")]
    assert len(bold) == 1 and diagrams.BLOCK_WIRINGS[diagrams.wiring_of(arch)][0] in bold[0]


@pytest.mark.parametrize("variant", ["llama-gqa2", "gpt2", "neox-parallel-quarter", "gptj-rotary-all"])
def test_norm_step_and_both_norms_by_hand(variant):
    model = tiny_model(variant)
    trace = run_trace(model, IDS)
    step = residual.norm_step(trace, model, layer=1, position=3, which="ln2")
    x = step.before
    if step.kind == "rmsnorm":
        by_hand = x / torch.sqrt(x.pow(2).mean() + step.eps) * step.gamma
        assert step.mean is None and step.beta is None
    else:
        by_hand = (x - x.mean()) / torch.sqrt(x.var(unbiased=False) + step.eps) * step.gamma + step.beta
    torch.testing.assert_close(by_hand, step.after, atol=1e-5, rtol=0)
    layer_scale, by_layer_norm = residual.layer_norm_of(x, 1e-5)
    rms_scale, by_rms_norm = residual.rms_norm_of(x, 1e-5)
    assert float(by_layer_norm.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(by_rms_norm.pow(2).mean()) == pytest.approx(1.0, abs=1e-3)
    assert rms_scale ** 2 == pytest.approx(layer_scale ** 2 + float(x.mean()) ** 2, rel=1e-4)  # E[x²] = var + mean²


def test_gate_parts_multiply_to_the_neurons_output():
    model = tiny_model("llama-gqa2")
    trace = run_trace(model, IDS)
    parts = residual.gate_parts(trace, 1, 7, weights_of(model).arch.activation)
    gate, activated, up, product = (torch.tensor(v) for v in parts.values())
    torch.testing.assert_close(activated, torch.nn.functional.silu(gate))
    torch.testing.assert_close(activated * up, product, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(product, trace["mlp_post", 1][:, 7])


def test_the_numbers_lessons_3_and_5_quote_about_designs():
    from core.training import gated_mlp_width

    (width,) = quoted(r"instead of 4 times it \((\d+) for the course model's width of 128\)", lesson_text("05_feed_forward.md"))
    assert int(width) == gated_mlp_width(128)
    ratio, hidden, stream = quoted(r"Llama 3.1 8B to ([\d.]+) times its stream \(([\d,]+) for a width of ([\d,]+)\)",
                                   lesson_text("05_feed_forward.md"))
    llama = next(m["config"] for m in reference_configs() if m["name"] == "Llama 3.1 8B")
    assert (int(hidden.replace(",", "")), int(stream.replace(",", ""))) == (llama["intermediate_size"], llama["hidden_size"])
    assert float(ratio) == llama["intermediate_size"] / llama["hidden_size"]
    text = lesson_text("03_positional_encoding.md")
    assert "Pair 0 turns by one radian per position" in text
    pythia, gptj_rot, gptj_head = quoted(r"a (quarter) for Pythia, (\d+) of (\d+) for GPT-J", text)
    gptj = next(m for m in reference_models() if m["name"] == "GPT-J 6B")
    assert int(gptj_head) == gptj["d_head"] and int(gptj_rot) == 64


def test_a_shift_beyond_the_context_keeps_the_prompts_that_fit():
    """A 48-token context and a long prompt moved by 40: both traces hold the same last 8 tokens
    (lesson 3 crashed here on a 5,000-character prompt)."""
    model = tiny_model("gpt2")  # context 32
    assert positions.shift_invariance(model, list(range(1, 60)), shift=20) > 0
    assert positions.shift_invariance(tiny_model("llama-gqa2"), list(range(1, 60)), shift=20) < 1e-4


def test_shift_changes_learned_scores_and_not_rotary_ones_on_the_course_models(bundled):
    from core.models import MODERN_MODEL_DIR, load_model

    if not (MODERN_MODEL_DIR / "config.json").is_file():
        pytest.fail(f"the Llama-design course model is missing: run `python -m core.build_course_model "
                    f"--architecture llama` ({MODERN_MODEL_DIR})")
    modern = load_model("glassbox-stories-llama")
    ids = bundled.tokenizer("Once upon a time, there was a girl named Mia. Mia had a red ball.")["input_ids"]
    assert modern.tokenizer(bundled.tokenizer.decode(ids))["input_ids"] == ids  # the same tokens
    assert positions.shift_invariance(modern.model, ids, 10) < 1e-4
    assert positions.shift_invariance(bundled.model, ids, 10) > 0.1


def test_the_silu_dip_the_lesson_quotes():
    from tests.conftest import lesson_text, quoted

    (lowest,) = quoted(r"SiLU dips a\s+little below zero, to about −([\d.]+)", lesson_text("05_feed_forward.md"))
    x = torch.linspace(-6, 0, 600_001)
    assert f"{float(-(x * torch.sigmoid(x)).min()):.2f}" == lowest
