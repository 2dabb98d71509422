"""Figures that draw a model's design from its `Architecture`: how a block is wired, which query
heads share a key/value head, and how rotary position embedding turns a real query.

Each is drawn from the loaded model's own switches and numbers, never from a hand-made
picture, so a post-LN model, a parallel block and grouped-query attention look different
because they are.
"""
from __future__ import annotations

import math

import plotly.graph_objects as go

from core.plot_style import figure, titled

from core.architectures import Architecture

INK, MUTED, ACCENT, STREAM = "#111827", "#9ca3af", "#dc2626", "#2563eb"

# A block's three wirings, as (label, steps) with each step (box text, x offset of the box).
# Read bottom to top, as in the circuits diagrams: the stream rises on the left.
BLOCK_WIRINGS = {
    "pre-LN": ("Pre-LN (GPT-2, GPT-Neo, Llama)", [("norm 1", 1), ("attention", 1), ("+", 0), ("norm 2", 1), ("MLP", 1),
                                                  ("+", 0)]),
    "post-LN": ("Post-LN: Add & Norm (GPT, 2018)", [("attention", 1), ("+", 0), ("norm 1", 0), ("MLP", 1), ("+", 0),
                                                     ("norm 2", 0)]),
    "parallel": ("Parallel (GPT-J, GPT-NeoX)", [("norm(s)", 1), ("attention  |  MLP", 1), ("+ both", 0)]),
}


def wiring_of(arch: Architecture) -> str:
    return "post-LN" if arch.post_norm else "parallel" if arch.parallel else "pre-LN"


def block_wirings_figure(arch: Architecture, model_name: str) -> go.Figure:
    """The three ways a block can be wired, side by side, the loaded model's in colour: the
    residual stream is the vertical line; a box off the line reads the stream and adds back."""
    shapes, notes = [], []
    mine = wiring_of(arch)
    for column, (key, (title, steps)) in enumerate(BLOCK_WIRINGS.items()):
        colour = ACCENT if key == mine else MUTED
        x0 = column * 3.2
        height = len(steps) + 1
        shapes.append(dict(type="line", x0=x0, x1=x0, y0=0, y1=height,
                           line=dict(color=STREAM if key == mine else MUTED, width=4)))
        notes.append(dict(x=x0 + 0.9, y=height + 0.55, text=f"<b>{title}</b>" if key == mine else title,
                          showarrow=False, font=dict(color=INK if key == mine else MUTED, size=12)))
        for row, (text, offset) in enumerate(steps, start=1):
            x = x0 + 1.2 * offset
            if text.startswith("+"):
                notes.append(dict(x=x0, y=row, text="⊕", showarrow=False, font=dict(size=20, color=colour)))
                if len(text) > 1:
                    notes.append(dict(x=x0 + 0.9, y=row, text="both added", showarrow=False,
                                      font=dict(size=11, color=colour)))
                continue
            shapes.append(dict(type="rect", x0=x - 0.55, x1=x + 0.55 + (0.6 if "|" in text else 0), y0=row - 0.3,
                               y1=row + 0.3, line=dict(color=colour), fillcolor="white"))
            notes.append(dict(x=x + (0.3 if "|" in text else 0), y=row, text=text, showarrow=False,
                              font=dict(size=11, color=colour)))
            if offset:
                shapes.append(dict(type="line", x0=x0, x1=x - 0.55, y0=row - 0.3, y1=row,
                                   line=dict(color=colour, dash="dot")))
    notes.append(dict(x=0, y=-0.5, text="stream in ↑ (bottom), out at the top", showarrow=False, xanchor="left",
                      font=dict(size=11, color=MUTED)))
    return figure([], dict(title=titled(f"How a block is wired: {model_name} is the one in colour"), height=360,
                           plot_bgcolor="white", shapes=shapes, annotations=notes,
                           xaxis=dict(visible=False, range=[-0.8, 9.6]), yaxis=dict(visible=False, range=[-0.9, 8.2])))


def head_groups_figure(arch: Architecture, model_name: str) -> go.Figure:
    """Query heads (top row) joined to the key/value head each reads (bottom row)."""
    top, bottom = 1.0, 0.0

    def spread(count: int, index: int) -> float:
        return (index + 0.5) / count

    traces = [dict(type="scatter", x=[spread(arch.n_head, head), spread(arch.n_kv_head, arch.kv_head_of(head))],
                   y=[top, bottom], mode="lines", line=dict(color=MUTED, width=1.5), hoverinfo="skip", showlegend=False)
              for head in range(arch.n_head)]
    traces.append(dict(
        type="scatter", x=[spread(arch.n_head, h) for h in range(arch.n_head)], y=[top] * arch.n_head, mode="markers+text",
        marker=dict(size=22, color=STREAM), text=[f"q{h}" for h in range(arch.n_head)], textposition="top center",
        name="query heads", hovertemplate="query head %{text}<extra></extra>"))
    traces.append(dict(
        type="scatter", x=[spread(arch.n_kv_head, g) for g in range(arch.n_kv_head)], y=[bottom] * arch.n_kv_head,
        mode="markers+text", marker=dict(size=26, color=ACCENT, symbol="square"),
        text=[f"k,v {g}" for g in range(arch.n_kv_head)], textposition="bottom center", name="key/value heads",
        hovertemplate="key/value head %{text}<extra></extra>"))
    shared = ("every query head has its own keys and values" if arch.group_size == 1
              else f"each key/value head serves {arch.group_size} query heads")
    return figure(traces, dict(
        title=titled(f"{model_name}: {arch.n_head} query heads, {arch.n_kv_head} key/value heads ({shared})"),
        height=260, plot_bgcolor="white", legend=dict(orientation="h", y=-0.05),
        xaxis=dict(visible=False, range=[-0.05, 1.05]), yaxis=dict(visible=False, range=[-0.6, 1.6])))


def rotary_pairs_figure(pairs, model_name: str, token: str) -> go.Figure:
    """Each pair of a real query's dims as an arrow from the origin, at each position it is put
    at: the arrow keeps its length and only turns, faster for the first pairs."""
    from core.figures import subplot_grid

    cells, subtitles = subplot_grid(len(pairs), len(pairs), [
        f"pair {p.pair} (dims {p.dims[0]}, {p.dims[1]})<br>{p.angle_per_position:.3g} rad per position" for p in pairs],
        title_size=13)
    colours = ["#6b7280", STREAM, ACCENT, "#16a34a", "#9333ea"]
    traces, layout = [], {}
    for cell, pair in zip(cells, pairs):
        reach = max(math.hypot(*pair.before), 1e-6) * 1.15
        for index, (place, (a, b)) in enumerate(pair.turned.items()):
            traces.append(dict(type="scatter", x=[0, a], y=[0, b], xaxis=cell.x, yaxis=cell.y, mode="lines+markers",
                               marker=dict(size=[0, 9]), line=dict(color=colours[index % len(colours)], width=3),
                               name=f"at position {place}", legendgroup=str(place), showlegend=cell.index == 0,
                               hovertemplate=f"position {place}<br>(%{{x:.3f}}, %{{y:.3f}})<extra></extra>"))
        layout.update(cell.axes(dict(range=[-reach, reach], zeroline=True, title=titled("first dim")),
                                dict(range=[-reach, reach], zeroline=True, scaleanchor=cell.x,
                                     title=titled("second dim" if cell.index == 0 else None))))
    layout.update(title=titled(f"{model_name}: the query at {token}, one pair of dims at a time, turned by its position"),
                  height=380, margin=dict(l=10, r=10, t=100, b=10), annotations=subtitles)
    return figure(traces, layout)


# --- the map of the model --------------------------------------------------------------------------
KIND_COLOURS = {"tokens": "#e5e7eb", "embed": "#dbeafe", "position": "#e0e7ff", "norm": "#fef3c7",
                "attention": "#fee2e2", "head": "#fecaca", "mlp": "#dcfce7", "add": "#ffffff", "unembed": "#ede9fe",
                "block": "#f3f4f6"}


def _part_height(kind: str) -> float:
    return {"head": 0.22, "add": 0.3}.get(kind, 0.5)


def model_map_figure(model_map, title: str, highlight: set[str] = frozenset(), numbers: dict[str, str] | None = None,
                     ablated: set[str] = frozenset(), height: int | None = None, show_labels: bool = True):
    """The map drawn: boxes for parts, the residual stream as the blue line, ⊕ where a part adds
    to it. `highlight`: part keys or kinds drawn in red (the lesson's part, the figure's part);
    `ablated`: part keys switched off (a red ✕); `numbers`: a real number per part key, shown
    beside it. Every part is a clickable point whose customdata is [key, lesson]."""
    import html as html_module

    numbers = numbers or {}
    notes = []
    shapes = [dict(type="line", x0=0, x1=0, y0=0.3, y1=model_map.stream_top, line=dict(color=STREAM, width=5),
                   layer="below")]
    xs, ys, texts, custom, hovers, colours = [], [], [], [], [], []
    for part in model_map.parts:
        lit = part.key in highlight or part.kind in highlight
        half_w, half_h = part.width / 2, _part_height(part.kind) / 2
        if part.kind != "add":
            shapes.append(dict(type="rect", x0=part.x - half_w, x1=part.x + half_w, y0=part.y - half_h,
                               y1=part.y + half_h, line=dict(color=ACCENT if lit else "#6b7280", width=3 if lit else 1),
                               fillcolor="#fca5a5" if lit and part.kind == "head" else KIND_COLOURS[part.kind],
                               layer="below"))
        if part.x != 0 and part.kind not in ("head", "add") and not (part.kind == "embed" and part.x < 0):
            reads_at = part.y - half_h if part.kind != "norm" else part.y
            shapes.append(dict(type="line", x0=0, x1=part.x - half_w, y0=reads_at, y1=part.y, layer="below",
                               line=dict(color="#9ca3af", width=1, dash="dot")))
        number = numbers.get(part.key, "")
        if part.kind == "head" and part.head is not None and model_map.group_size > 1:
            shapes.append(dict(type="rect", x0=part.x - half_w, x1=part.x + half_w, y0=part.y - half_h,
                               y1=part.y + half_h, line=dict(width=0), layer="below",
                               fillcolor=("#fca5a5" if (part.head // model_map.group_size) % 2 else "#fee2e2")))
        if part.kind == "add" and number and show_labels:
            notes.append(dict(x=0.25, y=part.y, text=html_module.escape(number), showarrow=False,
                              xanchor="left", font=dict(size=10, color=MUTED)))
        xs.append(part.x)
        ys.append(part.y)
        texts.append(("⊕" if part.kind == "add" else html_module.escape(part.label))
                     + ("" if part.kind in ("head", "add") or not number or not show_labels
                        else f"  ({html_module.escape(number)})"))
        custom.append([part.key, part.lesson])
        hovers.append(f"<b>{html_module.escape(part.label)}</b> ({html_module.escape(part.key)})<br>"
                      f"{html_module.escape(part.does)}<br>{html_module.escape(part.shape)}<br>"
                      f"parameters: {part.parameters:,}" + (f"<br>on your prompt: {html_module.escape(number)}" if number else "")
                      + f"<br>click: lesson {part.lesson}")
        colours.append(ACCENT if part.key in ablated else (ACCENT if lit else INK))
    traces = [dict(
        type="scatter", x=xs, y=ys, mode="markers+text" if show_labels else "markers", text=texts, customdata=custom,
        textfont=dict(size=10, color=colours), marker=dict(size=14, opacity=0.01, color=INK),
        hovertext=hovers, hovertemplate="%{hovertext}<extra></extra>", showlegend=False)]
    crossed = [part for part in model_map.parts if part.key in ablated]
    if crossed:
        traces.append(dict(type="scatter", x=[p.x for p in crossed], y=[p.y for p in crossed], mode="text",
                           text=["✕"] * len(crossed), textfont=dict(size=16, color=ACCENT), hoverinfo="skip",
                           showlegend=False))
    left = min(p.x - p.width / 2 for p in model_map.parts) - 0.6  # room for a label a little wider than its box
    right = max(p.x + p.width / 2 for p in model_map.parts) + 0.6
    return figure(traces, dict(
        title=titled(title), height=height or int(60 + 46 * (model_map.stream_top + 1)),
        margin=dict(l=5, r=5, t=40 if title else 5, b=5), plot_bgcolor="white", dragmode=False,
        hoverlabel=dict(align="left"), shapes=shapes, annotations=notes,
        xaxis=dict(visible=False, range=[left, right], fixedrange=True),
        yaxis=dict(visible=False, range=[-0.6, model_map.stream_top + 0.6], fixedrange=True)))
