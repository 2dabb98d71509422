"""The map of the model: drawn from any family's weights, its parameter counts equal the model's,
its costs follow from the sizes, and every lesson shows it with the student's changes."""
from __future__ import annotations

import json

import pytest
import torch
from streamlit.testing.v1 import AppTest

from core import diagrams, model_map
from core.architectures import weights_of
from core.course import APP_DIR, LESSONS, MAP
from core.glassbox import run_trace
from core.models import parameter_count
from tests.conftest import random_gpt2
from tests.test_app import HOSTILE_PROMPTS, assert_healthy
from tests.tiny_models import VARIANTS, tiny_model


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_parts_add_up_to_the_real_parameter_count(variant):
    model = tiny_model(variant)
    drawn = model_map.build_map(model)
    assert drawn.total_parameters == parameter_count(model)
    arch = weights_of(model).arch
    heads = [p for p in drawn.parts if p.kind == "head"]
    assert len(heads) == arch.n_layer * arch.n_head  # every head drawn, one by one
    weights = weights_of(model)
    for layer in range(arch.n_layer):  # the heads share out their attention's weights (b_O belongs to none)
        in_heads = sum(p.parameters for p in heads if p.layer == layer)
        b_o = weights.blocks[layer].b_O
        counted_b_o = b_o.numel() if b_o.untyped_storage().data_ptr() in weights.parameter_storages else 0
        assert in_heads + counted_b_o == model_map.attention_parameters(weights, layer)
    kinds = {p.kind for p in drawn.parts}
    assert ("position" in kinds) == arch.learned_positions
    assert any(p.label.startswith("gated MLP") for p in drawn.parts) == arch.gated
    norms_on_stream = [p for p in drawn.parts if p.kind == "norm" and p.x == 0]
    assert bool(norms_on_stream) == arch.post_norm  # a post-LN norm sits on the stream itself
    figure = diagrams.model_map_figure(drawn, variant, highlight={"attention"})
    assert len(figure.data[0].x) == len(drawn.parts)  # one clickable point per part
    assert {tuple(c) for c in figure.data[0].customdata} == {(p.key, p.lesson) for p in drawn.parts}


def test_a_24_layer_model_collapses_and_still_counts_everything():
    model = random_gpt2(n_layer=24, n_head=16, n_embd=64, n_positions=64, vocab_size=100)
    drawn = model_map.build_map(model)
    assert drawn.collapsed == (2, 21) and drawn.shown_layers == [0, 1, 22, 23]
    assert drawn.total_parameters == parameter_count(model)
    assert sum(1 for p in drawn.parts if p.kind == "head") == 4 * 16


def test_costs_follow_from_the_sizes():
    model = tiny_model("llama-gqa2")
    arch = weights_of(model).arch
    cost = model_map.model_costs(model, context=10)
    assert cost.parameters == parameter_count(model) and cost.flops_rule == 2 * cost.parameters
    assert cost.flops_attention == 4 * arch.n_layer * 10 * arch.n_head * arch.d_head
    assert cost.kv_cache_bytes_per_token == 2 * arch.n_layer * arch.n_kv_head * arch.d_head * 2
    assert cost.weights_bytes_float32 == 2 * cost.weights_bytes_bfloat16 == 4 * cost.parameters
    # the matrices a token meets are all parameters but the embedding look-up (tied W_U is W_E, met once)
    assert cost.matrix_parameters < cost.parameters


def test_prompt_numbers_are_the_traces():
    model = tiny_model("gpt2")
    trace = run_trace(model, [1, 2, 3, 4, 5, 6])
    numbers = model_map.prompt_numbers(trace)
    assert numbers["blocks.1.add_mlp"] == f"‖x‖ {float(trace['resid_post', 1][-1].norm()):.1f}"
    entropy = model_map.head_entropies(trace, 0)
    pattern = trace["pattern", 0][2]
    by_hand = float(torch.stack([-(row[row > 0] * row[row > 0].log()).sum() for row in pattern]).mean())
    assert float(entropy[2]) == pytest.approx(by_hand, abs=1e-5)
    assert 0 <= float(entropy.min()) and float(entropy.max()) <= model_map.uniform_entropy(6)


def test_design_differences_in_words():
    differences = model_map.design_differences(weights_of(tiny_model("gpt2")).arch, weights_of(tiny_model("llama-gqa2")).arch)
    assert differences[0] == "norm: LayerNorm vs RMSNorm"
    assert any(d.startswith("positions: learned, added vs rotary") for d in differences)
    assert "heads: 4 query / 4 key-value vs 4 query / 2 key-value" in differences
    assert model_map.design_differences(weights_of(tiny_model("gpt2")).arch, weights_of(tiny_model("gpt2")).arch) == []


def run_page(page: str, **state) -> AppTest:
    app = AppTest.from_file(str(APP_DIR / "Home.py"), default_timeout=90)
    for key, value in state.items():
        app.session_state[key] = value
    app.run()
    app.switch_page(page).run()
    return app


def sidebar_map(app: AppTest) -> dict:
    charts = [c for c in app.sidebar.get("plotly_chart")]
    assert len(charts) == 1, "every lesson shows the small map in its sidebar"
    return json.loads(charts[0].proto.spec)


@pytest.mark.parametrize("entry", LESSONS, ids=lambda e: e.page)
def test_every_lesson_shows_where_it_is_on_the_map(entry):
    spec = sidebar_map(run_page(entry.page))
    shapes = spec["layout"]["shapes"]
    lit = [s for s in shapes if s.get("line", {}).get("color") == diagrams.ACCENT]
    assert lit, f"lesson {entry.number} highlights its part"


def test_heads_switched_off_in_lesson_4_are_crossed_out_on_the_map():
    app = run_page(LESSONS[3].page, attn_ablate=[(0, 2)])
    assert not app.exception
    crosses = [t for t in sidebar_map(app)["data"] if t.get("text") == ["✕"]]
    assert len(crosses) == 1  # head 2 crossed out on the one block that stands for all
    from core.models import load_model

    small = model_map.build_map(load_model("glassbox-stories").model, small=True)
    head_2 = next(p for p in small.parts if p.key == "blocks.0.attn.head.2")
    assert (crosses[0]["x"], crosses[0]["y"]) == ([head_2.x], [head_2.y])


@pytest.mark.parametrize("prompt", ["default", "empty", "script", "5000-characters"])
def test_the_map_page_renders(prompt):
    state = {} if prompt == "default" else {"prompt": HOSTILE_PROMPTS[prompt]}
    app = run_page(MAP.page, **state)
    assert not app.error, [e.value for e in app.error]
    assert_healthy(app)
    numbers = [m for m in app.metric if m.label == "parameters (total)"]
    from core.models import load_model

    assert numbers[0].value == f"{parameter_count(load_model('glassbox-stories').model):,}"


def test_the_comparison_shows_both_course_models():
    from core.models import MODERN_MODEL_DIR

    if not (MODERN_MODEL_DIR / "config.json").is_file():
        pytest.fail("the Llama-design course model is missing: run `python -m core.build_course_model --architecture llama`")
    app = run_page(MAP.page, map_first="glassbox-stories", map_second="glassbox-stories-llama")
    assert not app.exception
    said = " ".join(m.value for m in app.markdown if m.value.startswith("**What differs:**")).replace("\\", "")
    assert "norm: LayerNorm vs RMSNorm" in said and "positions: learned, added vs rotary" in said
    assert sum(1 for d in app.dataframe if list(d.value.columns) == ["next token", "probability"]) == 2


def test_the_exported_map_is_a_standalone_page():
    figure = diagrams.model_map_figure(model_map.build_map(tiny_model("llama-gqa2")), "map")
    page = figure.to_html(include_plotlyjs=True, full_html=True)
    import re

    assert re.findall(r"<script[^>]*\bsrc=", page) == []  # plotly.js is inside the page: nothing to fetch
    assert "plotly-graph-div" in page and len(page) > 1_000_000


@pytest.mark.parametrize("variant", ["gpt2", "llama-gqa2", "gptj-rotary-quarter"])
def test_a_head_and_an_mlp_open_up_into_their_weights(variant):
    model = tiny_model(variant)
    weights = weights_of(model)
    drawn = model_map.build_map(model)
    for part in drawn.parts:
        if part.kind == "head" and part.layer == 1:
            pieces = model_map.inside_of(model, part.key)
            assert [p[0][:3] for p in pieces if p[2]][:3] == ["W_Q", "W_K", "W_V"]
            own = sum(p[2] for p in pieces if p[0].startswith(("W_Q", "W_O")))
            assert own == 2 * weights.arch.d_model * weights.arch.d_head
        if part.kind == "mlp" and part.layer == 0:
            pieces = model_map.inside_of(model, part.key)
            weights_only = sum(p[2] for p in pieces)
            biases = sum(t.numel() for t in (weights.blocks[0].b_in, weights.blocks[0].b_out, weights.blocks[0].b_gate)
                         if t is not None and t.untyped_storage().data_ptr() in weights.parameter_storages)
            assert weights_only + biases == part.parameters  # the matrices and the biases are the whole MLP
            assert any(p[0] == "W_gate" for p in pieces) == weights.arch.gated


def test_the_sidebar_map_lights_attention_in_lesson_4_whichever_head_is_picked():
    """The head picker reruns only its stretch of the lesson (issue 19), so the sidebar map, outside
    it, lights every head of the attention step: it can never show a head the page no longer shows."""
    app = run_page(LESSONS[3].page)
    small = model_map.build_map(tiny_model("gpt2"), small=True)  # same layout as the course model's: 4 heads
    attention = [p for p in small.parts if p.key.startswith("blocks.0.attn.head.")]  # all 4 heads
    lit = [s for s in sidebar_map(app)["layout"]["shapes"] if s.get("fillcolor") == "#fca5a5"]
    assert sorted(s["x0"] for s in lit) == pytest.approx(sorted(p.x - p.width / 2 for p in attention))
    app.segmented_control(key="attn_head").set_value(1).run()
    assert [s for s in sidebar_map(app)["layout"]["shapes"] if s.get("fillcolor") == "#fca5a5"] == lit


def test_every_part_of_the_map_picks_itself_in_the_lesson_it_opens():
    """A click on the map opens a part's lesson on that part: a head its layer and head, the
    attention box its layer (lesson 4), an MLP, a norm or an addition its layer (lesson 5)."""
    from course_ui import choices_for_part
    from core.model_map import build_map
    from core.models import load_model

    for part in build_map(load_model("glassbox-stories").model).parts:
        chosen = choices_for_part(part.key, part.lesson)
        if part.kind == "head":
            assert chosen == {"attn_layer": part.layer, "attn_head": part.head}, part.key
        elif part.lesson == 4 and part.key.startswith("blocks."):
            assert chosen == {"attn_layer": part.layer}, part.key
        elif part.lesson == 5 and part.key.startswith("blocks."):
            assert chosen == {"ff_layer": part.layer}, part.key
        else:
            assert chosen == {}, part.key
