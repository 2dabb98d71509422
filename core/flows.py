"""Flow diagrams (Sankey diagrams) drawn as plain Plotly shapes, in a layout fixed by the data.

Plotly's own Sankey trace animates every draw for half a second (a constant in plotly.js), so a
lesson with one is not drawn until the animation ends, and the student's control waits for it.
Here each node is a rectangle, each link a band between two curves, and the figure is drawn at
once: nodes stand in columns, stacked from the top in the order given, each as tall as the flow
through it; a node's bands leave and arrive in the order of the nodes they come from or go to, so
they cross as little as they can. Hovering a band or a node says what it is. Labels stand beside
the first and last columns and above the nodes of the columns between, never over a band.
"""
from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable
from dataclasses import dataclass

import plotly.graph_objects as go

from core.plot_style import figure, titled


@dataclass(frozen=True)
class FlowNode:
    key: Hashable
    column: int
    label: str  # escaped already (figures.plotly_text); "" for none
    colour: str
    hover: str


@dataclass(frozen=True)
class FlowLink:
    source: Hashable
    target: Hashable
    value: float  # > 0: the band's width
    colour: str
    hover: str


NODE_WIDTH = 0.012  # of the plot's width
HOVER_POINTS = (0.1, 0.25, 0.4, 0.5, 0.6, 0.75, 0.9)  # where along a band (0: its source, 1: its target) hovering answers
HOVER_REACH = 29  # pixels from a hover point that still answer (Plotly's 20, and the 9 of the 18-pixel markers they were)
LABEL_PX = 18  # room above a node of a middle column for its label


def flow_through(links: list[FlowLink]) -> dict[Hashable, float]:
    """How much flows through each node: the larger of what comes in and what goes out (a node of
    the first column only sends, one of the last only receives)."""
    flow_in, flow_out = defaultdict(float), defaultdict(float)
    for link in links:
        flow_out[link.source] += link.value
        flow_in[link.target] += link.value
    return {key: max(flow_in[key], flow_out[key]) for key in flow_in.keys() | flow_out.keys()}


def flow_figure(nodes: list[FlowNode], links: list[FlowLink], title: str, column_titles: list[str] = (),
                band_px: int = 300, pad: int = 14, side_margin: float = 0.16, top: int = 80) -> go.Figure:
    """Nodes in columns, links as bands from left to right; `band_px` pixels for the largest
    column's flow, `pad` pixels between nodes, `side_margin` of the width on each side for labels."""
    if not nodes:  # nothing flows (e.g. no band reaches the figure's threshold): the title alone says what this is
        return figure([], dict(title=titled(title), height=top + 60, xaxis=dict(visible=False), yaxis=dict(visible=False),
                               annotations=[dict(text="(nothing to draw)", x=0.5, y=0.5, xref="paper", yref="paper",
                                                 showarrow=False)]))
    columns = max(node.column for node in nodes) + 1
    column_x = [side_margin + (1 - 2 * side_margin) * c / max(1, columns - 1) for c in range(columns)]
    through = flow_through(links)
    size = {node.key: through.get(node.key, 0.0) for node in nodes}
    biggest = max(sum(size[n.key] for n in nodes if n.column == c) for c in range(columns))
    scale = band_px / max(biggest, 1e-9)  # px per unit of flow

    top_of, lowest = {}, 0.0
    for c in range(columns):  # stack each column from the top
        y = 0.0
        for node in (n for n in nodes if n.column == c):
            y += LABEL_PX if 0 < c < columns - 1 else 0
            top_of[node.key] = y
            y += size[node.key] * scale + pad
        lowest = max(lowest, y - pad)
    centre = {key: top_of[key] + size[key] * scale / 2 for key in top_of}
    column_of = {node.key: node.column for node in nodes}

    def slots(end: str, other: str) -> dict[int, float]:
        """Where each link meets its node at this end (`end`: "source" or "target"): the node's
        links in the order of the nodes at their other end, stacked from the node's top."""
        placed, filled = {}, dict(top_of)
        for index in sorted(range(len(links)), key=lambda i: centre[getattr(links[i], other)]):
            key = getattr(links[index], end)
            placed[index] = filled[key]
            filled[key] += links[index].value * scale
        return placed

    leaves, arrives = slots("source", "target"), slots("target", "source")
    shapes, link_x, link_y, link_hover = [], [], [], []
    for index, link in enumerate(links):
        x0 = column_x[column_of[link.source]] + NODE_WIDTH / 2
        x1 = column_x[column_of[link.target]] - NODE_WIDTH / 2
        width = link.value * scale
        y0, y1, middle = leaves[index], arrives[index], (x0 + x1) / 2
        shapes.append(dict(type="path", xref="x", yref="y", layer="below", line=dict(width=0), fillcolor=link.colour,
                           path=f"M {x0},{y0} C {middle},{y0} {middle},{y1} {x1},{y1} L {x1},{y1 + width} "
                                f"C {middle},{y1 + width} {middle},{y0 + width} {x0},{y0 + width} Z"))
        for t in HOVER_POINTS:  # along the band's centre line, so that hovering anywhere on it answers
            link_x.append((1 - t) ** 3 * x0 + 3 * (1 - t) * t * middle + t ** 3 * x1)
            link_y.append((1 - t) ** 3 * y0 + 3 * (1 - t) ** 2 * t * y0 + 3 * (1 - t) * t ** 2 * y1 + t ** 3 * y1 + width / 2)
            link_hover.append(link.hover)
    annotations = []
    for node in nodes:
        x, y, height = column_x[node.column], top_of[node.key], size[node.key] * scale
        shapes.append(dict(type="rect", xref="x", yref="y", line=dict(width=0), fillcolor=node.colour,
                           x0=x - NODE_WIDTH / 2, x1=x + NODE_WIDTH / 2, y0=y, y1=y + max(height, 1.0)))
        if not node.label:
            continue
        if node.column == 0 or node.column == columns - 1:  # beside the outer columns
            first = node.column == 0
            annotations.append(dict(text=node.label, x=x + (-1 if first else 1) * NODE_WIDTH, y=centre[node.key],
                                    xanchor="right" if first else "left", yanchor="middle", showarrow=False,
                                    font=dict(size=11, color=node.colour)))
        else:  # above the nodes between
            annotations.append(dict(text=node.label, x=x, y=y, xanchor="center", yanchor="bottom", showarrow=False,
                                    font=dict(size=11, color="#111827")))
    for c, text in enumerate(column_titles):
        annotations.append(dict(text=f"<b>{text}</b>", x=column_x[c], y=1.0, xref="x", yref="paper", yanchor="bottom",
                                xanchor="right" if c == 0 else "left" if c == columns - 1 else "center",
                                showarrow=False, yshift=6, font=dict(size=12)))
    # Points that answer a hover and are not drawn (mode "none"): as invisible markers they were an
    # SVG path each, 7 a band, and drawing them was half of the logit journey's drawing in Chromium
    # (163 -> 80 ms; the attention flow 127 -> 96). HOVER_REACH keeps the reach the markers had.
    traces = [dict(type="scatter", x=link_x, y=link_y, mode="none", customdata=link_hover,
                   hovertemplate="%{customdata}<extra></extra>", showlegend=False),
              dict(type="scatter", x=[column_x[n.column] for n in nodes], y=[centre[n.key] for n in nodes],
                   mode="none", customdata=[n.hover for n in nodes],
                   hovertemplate="%{customdata}<extra></extra>", showlegend=False)]
    hidden = dict(visible=False, fixedrange=True)
    layout = dict(title=dict(text=title, y=1, yref="container", yanchor="top", pad=dict(t=12)),
                  height=int(lowest) + top + 24, margin=dict(l=10, r=10, t=top, b=24),
                  shapes=shapes, annotations=annotations, hovermode="closest", hoverdistance=HOVER_REACH,
                  xaxis=dict(range=[0, 1], **hidden), yaxis=dict(range=[lowest, 0], **hidden))
    # Plotly's checking of every shape and label was most of lesson 6's server time for the logit's
    # journey: 80 bands, 25 ms; built unchecked (plot_style.figure), 2 ms
    return figure(traces, layout)
