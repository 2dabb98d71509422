"""The flow diagrams (core.flows): drawn as shapes, each band as wide as its flow, stacked within its
nodes without gaps or overlaps, labels beside or above the nodes and never over a band."""
from __future__ import annotations

import re

import pytest

from core import figures
from core.flows import HOVER_POINTS, NODE_WIDTH, FlowLink, FlowNode, flow_figure

NUMBER = r"-?[\d.]+(?:e-?\d+)?"


def band_ends(path: str) -> tuple[float, float, float, float, float, float]:
    """(x0, y0 top, y0 bottom, x1, y1 top, y1 bottom) of a band's path."""
    values = [float(v) for v in re.findall(NUMBER, path)]
    x0, y0 = values[0], values[1]
    x1, y1, y1_bottom = values[6], values[7], values[9]
    y0_bottom = values[-1]
    return x0, y0, y0_bottom, x1, y1, y1_bottom


def test_bands_are_as_wide_as_their_flow_and_fill_their_nodes():
    nodes = [FlowNode("a", 0, "a", "#2563eb", "a"), FlowNode("b", 0, "b", "#dc2626", "b"),
             FlowNode("x", 1, "x", "#16a34a", "x"), FlowNode("y", 1, "y", "#9333ea", "y")]
    links = [FlowLink("a", "x", 0.5, "red", "a→x"), FlowLink("a", "y", 0.25, "red", "a→y"),
             FlowLink("b", "y", 0.25, "red", "b→y")]
    figure = flow_figure(nodes, links, "test", band_px=200, pad=10)
    shapes = figure.layout.shapes
    bands = [s for s in shapes if s.type == "path"]
    rects = {node.key: s for node, s in zip(nodes, [s for s in shapes if s.type == "rect"])}
    assert len(bands) == len(links) and len(rects) == len(nodes)
    scale = 200 / 1.0  # the biggest column carries 1.0
    for band, link in zip(bands, links):
        x0, y0, y0_bottom, x1, y1, y1_bottom = band_ends(band.path)
        assert y0_bottom - y0 == pytest.approx(link.value * scale) == pytest.approx(y1_bottom - y1)
        source, target = rects[link.source], rects[link.target]
        assert x0 == pytest.approx(source.x1) and x1 == pytest.approx(target.x0)  # from edge to edge
        assert source.y0 - 1e-9 <= y0 and y0_bottom <= source.y1 + 1e-9  # within its nodes
        assert target.y0 - 1e-9 <= y1 and y1_bottom <= target.y1 + 1e-9
    # a node's bands leave one under the other, from its top, filling it: a→x above a→y
    a_x, a_y = band_ends(bands[0].path), band_ends(bands[1].path)
    assert a_x[1] == pytest.approx(rects["a"].y0) and a_y[1] == pytest.approx(a_x[2])
    assert a_y[2] == pytest.approx(rects["a"].y1)
    assert rects["b"].y0 == pytest.approx(rects["a"].y1 + 10)  # pad between nodes
    # the hover says what each band is, all along it
    assert list(figure.data[0].customdata) == [link.hover for link in links for _ in HOVER_POINTS]
    xs = list(figure.data[0].x)[:len(HOVER_POINTS)]  # the first band's hover points, source to target
    assert xs == sorted(xs) and xs[0] < 0.5 < xs[-1]


def test_labels_stand_beside_the_outer_columns_and_above_the_middle_ones_never_over_a_band():
    figure = figures.funnel_sankey([("whole vocabulary", "kept by top-k", 0.9), ("whole vocabulary", "cut by top-k", 0.1),
                                    ("kept by top-k", "kept by top-p", 0.8), ("kept by top-k", "cut by top-p", 0.1),
                                    ("kept by top-p", "sampled: x", 0.3), ("kept by top-p", "kept, not drawn", 0.5)],
                                   "funnel")
    rects = [s for s in figure.layout.shapes if s.type == "rect"]
    columns = sorted({round((r.x0 + r.x1) / 2, 6) for r in rects})
    assert len(columns) == 4  # one column per stage
    labels = {a.text: a for a in figure.layout.annotations}
    assert labels["whole vocabulary"].xanchor == "right" and labels["whole vocabulary"].x < columns[0]
    assert labels["sampled: x"].xanchor == "left" and labels["sampled: x"].x > columns[-1]
    for name in ("kept by top-k", "cut by top-k", "kept by top-p", "cut by top-p"):
        label = labels[name]
        node = next(r for r in rects if abs((r.x0 + r.x1) / 2 - label.x) < 1e-9 and abs(r.y0 - label.y) < 1e-9)
        assert label.yanchor == "bottom" and node.x1 - node.x0 == pytest.approx(NODE_WIDTH)  # above its own node
        # the label's line (18 px above the node) crosses no band at the node's column
        for band in (s for s in figure.layout.shapes if s.type == "path"):
            x0, y0, y0_bottom, x1, y1, y1_bottom = band_ends(band.path)
            for x, top, bottom in ((x0, y0, y0_bottom), (x1, y1, y1_bottom)):
                if abs(x - label.x) <= NODE_WIDTH:
                    assert bottom <= label.y - 18 + 1e-9 or top >= label.y - 1e-9


def test_the_attention_flow_heads_its_columns_and_names_the_positions_with_a_band_on_each_side():
    figure = figures.attention_sankey([(0, 1, 0.6), (1, 1, 0.4), (0, 2, 0.3), (2, 2, 0.7)], ["A", "b", "c"], "flow")
    texts = [a.text for a in figure.layout.annotations]
    assert "<b>key: what is read</b>" in texts and "<b>query: who reads</b>" in texts
    assert sum(text.endswith("A") for text in texts) == 1  # position 0 is read, but reads nothing shown: one side
    assert sum(text.endswith("b") for text in texts) == 2 and sum(text.endswith("c") for text in texts) == 2
    assert figure.layout.height == pytest.approx(300 + 14 * 2 + 80 + 24, abs=1)  # three keys, the tallest column


def test_a_flow_with_nothing_in_it_is_its_title_and_a_note():
    figure = figures.attention_sankey([], ["a", "b"], "Attention flow")  # no band reached the threshold
    assert figure.layout.title.text == "Attention flow" and figure.layout.annotations[0].text == "(nothing to draw)"


def test_a_flow_built_unchecked_holds_only_what_plotly_js_reads():
    """flow_figure skips Plotly's checking of its many shapes (most of lesson 6's server time), so it
    must write plotly.js' own keys: no Python-only "magic underscore" names such as line_width."""
    import plotly.graph_objects as go

    figure = figures.journey_sankey([("a", "MLP 0", 1.0), ("b", "MLP 0", -0.5), ("a", "attention 0", 0.3)],
                                    ("raises", "lowers"), "journey")
    spec = figure.to_plotly_json()
    for item in spec["layout"]["shapes"] + spec["layout"]["annotations"]:
        assert all("_" not in key for key in item), item
    go.Figure(spec)  # and Plotly's own check finds nothing invalid


def test_each_node_says_how_much_flows_through_it():
    """A middle node passes on what it receives: its hover gives that amount once (it gave in + out,
    twice the flow, for the journey's components)."""
    figure = figures.journey_sankey([("a", "MLP 0", 1.0), ("b", "MLP 0", -0.5)], ("raises", "lowers"), "journey")
    hovers = list(figure.data[1].customdata)
    assert "MLP 0: 1.500" in hovers and "a: 1.000" in hovers and "raises: 1.000" in hovers and "lowers: 0.500" in hovers
