"""The Attention lesson's math against the trace and against hand-made patterns."""
from __future__ import annotations

import json
import math

import pytest
import torch

from core import attention
from core.build_course_model import MODEL_DIR
from core.tokenization import prompt_tokens
from core.glassbox import Interventions, Trace, run_trace
from tests.conftest import random_gpt2, sent_array


@pytest.fixture(scope="module")
def trace():
    model = random_gpt2(n_layer=2, n_head=4, n_embd=64, vocab_size=30)
    return run_trace(model, [3, 7, 3, 9, 7, 3, 1, 2])


def test_worked_query_row_equals_the_trace_pattern(trace):
    for layer, head, query in [(0, 0, 7), (1, 3, 4), (1, 1, 0)]:
        steps = attention.worked_query_row(trace, layer, head, query)
        row = trace[f"blocks.{layer}.attn.pattern"][head, query]
        assert [s.weight for s in steps] == pytest.approx(row.tolist(), abs=1e-6)
        assert all(s.masked == (s.key > query) for s in steps)
        assert sum(s.weight for s in steps) == pytest.approx(1.0)
        scale = math.sqrt(trace[f"blocks.{layer}.attn.q"].shape[-1])
        raw = trace[f"blocks.{layer}.attn.scores"][head, query]
        assert [s.dot for s in steps] == pytest.approx(raw.tolist(), abs=1e-5)
        assert [s.scaled for s in steps] == pytest.approx((raw / scale).tolist(), abs=1e-5)


def test_worked_row_on_the_bundled_model(bundled):
    tokens = prompt_tokens(bundled.tokenizer, "Once upon a time, there was a girl named Mia. Mia had a red ball. One day,")
    trace = run_trace(bundled.model, [t.id for t in tokens], [t.text for t in tokens])
    _, layer, head = json.loads((MODEL_DIR / "evaluation.json").read_text())["name_heads"][0]
    steps = attention.worked_query_row(trace, layer, head, trace.n_tokens - 1)
    assert [s.weight for s in steps] == pytest.approx(trace[f"blocks.{layer}.attn.pattern"][head, -1].tolist(), abs=1e-6)
    # the course model's name head (the model card's best) looks at the name when " Mia" comes next
    weight_on_name = sum(s.weight for s in steps if s.key_token == " Mia")
    assert weight_on_name > 0.5


def hand_made_trace(ids: list[int], patterns: torch.Tensor) -> Trace:
    """A trace holding only attention patterns [layer, head, query, key], made by hand."""
    from dataclasses import replace

    from core.architectures import weights_of

    arch = replace(weights_of(random_gpt2()).arch, n_layer=patterns.shape[0], n_head=patterns.shape[1],
                   n_kv_head=patterns.shape[1])
    return Trace(token_ids=ids, token_strings=[str(i) for i in ids], arch=arch,
                 tensors={f"blocks.{l}.attn.pattern": patterns[l] for l in range(patterns.shape[0])})


def test_head_scores_on_hand_made_patterns():
    n = 4
    previous = torch.zeros(n, n)
    previous[0, 0] = 1
    for q in range(1, n):
        previous[q, q - 1] = 1  # a perfect previous-token head
    first = torch.zeros(n, n)
    first[:, 0] = 1  # a perfect first-token head
    patterns = torch.stack([torch.stack([previous, first])])  # [1 layer, 2 heads, 4, 4]
    scores = attention.head_scores(hand_made_trace([5, 6, 5, 7], patterns))
    # the first-token head also looks at the previous token from query 1: 1/3 of the queries
    assert scores["previous-token"][0].tolist() == pytest.approx([1.0, 1 / 3])
    assert scores["first-token"][0].tolist() == pytest.approx([1 / 3, 1.0])  # query 1: previous = first
    # token 5 repeats at position 2; its earlier copy is position 0, which only the first-token head looks at
    assert scores["same-token"][0].tolist() == [0.0, 1.0]
    # the token after that copy is position 1, just before query 2: the previous-token head looks there
    assert scores["induction"][0].tolist() == [1.0, 0.0]
    assert attention.strongest_head(scores["previous-token"]) == (0, 0, 1.0)


def test_attention_links_keep_weights_above_the_threshold(trace):
    links = attention.attention_links(trace, 1, 2, min_weight=0.1)
    pattern = trace["blocks.1.attn.pattern"][2]
    assert links and all(w >= 0.1 for _, _, w in links)
    assert all(key <= query for key, query, _ in links)
    assert len(links) == int((pattern >= 0.1).sum())
    for key, query, weight in links:
        assert weight == pytest.approx(float(pattern[query, key]))


def test_prediction_change(trace):
    model = random_gpt2(n_layer=2, n_head=4, n_embd=64, vocab_size=30)
    ids = trace.token_ids
    same = attention.prediction_change(trace, run_trace(model, ids))
    assert same.before == pytest.approx(same.after) and same.logprob_before == pytest.approx(same.logprob_after)
    ablated = run_trace(model, ids, interventions=Interventions(ablated_heads=frozenset({(0, 0), (1, 1)})))
    change = attention.prediction_change(trace, ablated)
    assert change.token_ids[0] == int(trace.next_token_probs().argmax())
    assert change.after[0] == pytest.approx(float(ablated.next_token_probs()[change.token_ids[0]]))
    assert change.logprob_after == pytest.approx(math.log(change.after[0]), abs=1e-5)


def test_share_of_attention_heatmaps_use_a_fixed_zero_to_one_scale():
    """A head that spreads its attention must not look as dark as one that puts 1.0 on a token."""
    from core import figures

    spread = torch.full((3, 3), 0.3)
    fixed = figures.heatmap(spread, ["a", "b", "c"], ["a", "b", "c"], "t", diverging=False, value_range=(0, 1))
    assert (fixed.data[0].zmin, fixed.data[0].zmax) == (0, 1)
    free = figures.heatmap(spread, ["a", "b", "c"], ["a", "b", "c"], "t", diverging=False)
    assert free.data[0].zmin is None and free.data[0].zmax is None  # Plotly fits the data
    signed = figures.heatmap(spread - 0.5, ["a", "b", "c"], ["a", "b", "c"], "t")
    assert signed.data[0].zmin == -signed.data[0].zmax == pytest.approx(-0.2)


def test_one_outlier_does_not_wash_out_a_panel_whose_scale_says_where_it_stops():
    """Lesson 5's neuron panels (the Llama model's "what the neurons pass on" was white but for one
    cell at 20): the colours stop where 98% of the cells are, only the exceeded end of the colour
    bar says "≥", the panel's subtitle says how far the cells go, and the cells keep their real
    values; a panel with no outlier keeps its full ±max."""
    from core import figures

    values = torch.linspace(-1.0, 1.0, 60).reshape(6, 10)  # [rows, cols]
    with_outlier = values.clone()
    with_outlier[2, 3] = 406.0
    labels_x, labels_y = [str(i) for i in range(10)], [str(i) for i in range(6)]
    figure = figures.heatmap_panels([(values, "plain"), (with_outlier, "outlier")], labels_x, labels_y, "t",
                                    clip_outliers=True)
    plain, clipped = figure.data
    assert plain.zmax == pytest.approx(1.0) and plain.colorbar.ticktext is None
    assert clipped.zmax == pytest.approx(float(torch.quantile(with_outlier.abs().flatten(), 0.98)))
    assert clipped.zmax < 3 and clipped.colorbar.ticktext[-1].startswith("≥ ")
    assert not clipped.colorbar.ticktext[0].startswith("≤") and clipped.colorbar.ticktext[0].startswith("−")
    assert float(sent_array(clipped.z)[2][3]) == 406.0  # the cell's own value is what it shows on hover
    subtitles = [a.text for a in figure.layout.annotations]
    assert subtitles[0] == "plain" and subtitles[1].startswith("outlier") and "up to 406" in subtitles[1]
    assert "down to" not in subtitles[1]
    unclipped = figures.heatmap_panels([(with_outlier, "outlier")], labels_x, labels_y, "t")
    assert unclipped.data[0].zmax == pytest.approx(406.0)  # only where a page asks for it


def test_a_role_that_cannot_show_on_a_prompt_says_why_its_map_is_blank():
    """A prompt that repeats no token has no query for the same-token and induction roles: their
    maps are left blank (not 0.00 in every cell), and lesson 4 says why instead of naming a
    'highest' head at 0.00."""
    from core.models import load_model
    from tests.test_app import run_page

    loaded = load_model("glassbox-stories")
    ids = loaded.tokenizer("The cat sat on the mat")["input_ids"]
    trace = run_trace(loaded.model, ids)
    counts = attention.role_queries(trace)
    assert counts == {"previous-token": len(ids) - 1, "first-token": len(ids) - 1, "same-token": 0, "induction": 0}
    assert float(attention.head_scores(trace)["induction"].abs().max()) == 0.0
    repeated = run_trace(loaded.model, ids + ids)
    assert attention.role_queries(repeated)["induction"] == len(ids)  # every token of the second copy

    app = run_page("lesson_pages/4_Attention.py", "The cat sat on the mat")
    captions = [c.value for c in app.caption]
    assert any(c.startswith("Induction score: not measured on your prompt, because no token in it comes twice")
               for c in captions)
    assert not any(c.startswith("Induction score, highest") for c in captions)
    assert any(c.startswith("Previous-token score, highest on your prompt") and "over 5 positions" in c for c in captions)
    import numpy as np

    roles = next(json.loads(c.proto.spec) for c in app.get("plotly_chart") if "each role" in c.proto.spec)
    drawn = {trace["xaxis"]: sent_array(trace["z"]) for trace in roles["data"]}  # each panel's cells as sent
    assert [bool(np.isnan(cells).all()) for cells in drawn.values()] == [False, False, True, True]
