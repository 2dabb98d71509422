"""Figures for the lessons, built from real tokenizer and trace output.

Plotly figures, pandas tables and small HTML fragments. Every piece of user text that ends
up in HTML goes through `html.escape` here, so pages can render these fragments as they are.
"""
from __future__ import annotations

from collections import defaultdict
import html
import re
import math
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from core.flows import FlowLink, FlowNode, flow_figure, flow_through
from core.plot_style import DIVERGING_SCALE, SEQUENTIAL_SCALE, figure, finished, guide_line, titled
from core.tokenization import MergeStep, Token, decode_piece

if TYPE_CHECKING:
    import pandas as pd  # tables are built with pandas, imported when one is (it is slow to import)

CHIP_COLOURS = ("#dbeafe", "#fde68a", "#bbf7d0", "#fbcfe8", "#ddd6fe", "#fed7aa")
VISIBLE_WHITESPACE = {" ": "␣", "\n": "↵", "\t": "⇥", "\r": "␍"}


MARKDOWN_SPECIALS = set("\\`*_{}[]()#+-.!|<>~$:")


def numbers(values) -> np.ndarray:
    """Numbers for a trace as one array (a list, a tensor or an array in): Plotly checks an array at
    once, where it walks a list value by value, and sends it to the browser as one binary block."""
    return np.asarray([float(v) for v in values] if isinstance(values, (list, tuple)) else values, dtype=np.float64)


def md_escape(text: str) -> str:
    """User text made safe to put inside markdown: HTML-escaped, markdown syntax backslash-escaped.
    Quotes stay as they are (outside an attribute they are plain text): escaped, `'` became `&#x27;`,
    whose `#` the backslash then kept from being read as an entity, and "don't" showed as "don&#x27;t"."""
    escaped = html.escape(text, quote=False)  # only &, <, > become entities: &amp; &lt; &gt;
    return "".join("\\" + ch if ch in MARKDOWN_SPECIALS and ch not in "&;" else ch for ch in escaped)


def counted(number: int, thing: str) -> str:
    """'1 step', '600 steps': a count with its noun, singular for one."""
    return f"{number:,} {thing}{'' if number == 1 else 's'}"


def visible(text: str) -> str:
    """Text with whitespace, control and invisible format characters made visible: a space shows
    as '␣'; a zero-width joiner (between the emoji of a family) or a right-to-left mark as
    '⟨U+200D⟩', '⟨U+200F⟩' (unseen, they would also let a prompt reorder the labels around them)."""
    out = []
    for ch in text:
        if ch in VISIBLE_WHITESPACE:
            out.append(VISIBLE_WHITESPACE[ch])
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\x{ord(ch):02x}")
        elif unicodedata.category(ch) == "Cf":
            out.append(f"⟨U+{ord(ch):04X}⟩")
        else:
            out.append(ch)
    return "".join(out)


def token_name(tokenizer, token_id: int) -> str:
    """One token's text as a tokenizer decodes it, whitespace made visible (for tables, widgets
    and, through `md_escape` or `plotly_text`, markdown and figures)."""
    from core.tokenization import tokens_text

    return visible(tokens_text(tokenizer, [token_id]))


def token_chips_html(tokens: list[Token], limit: int = 300, show: str = "symbols") -> str:
    """Tokens as coloured chips: the token (its vocabulary spelling or its text) over its id.

    show: "symbols" for the byte-level spelling ('Ġcat'), "text" for the text (' cat' as '␣cat').
    """
    chips = []
    for index, token in enumerate(tokens[:limit]):
        label = token.symbols if show == "symbols" else visible(token.text)
        tooltip = f"text: {visible(token.text)!s}" + (f" · id {token.id}" if token.id is not None else "")
        id_line = f'<span class="gb-id">{token.id}</span>' if token.id is not None else ""
        chips.append(
            f'<span class="gb-chip" style="background:{CHIP_COLOURS[index % len(CHIP_COLOURS)]}" '
            f'title="{html.escape(tooltip, quote=True)}">'
            f'<span class="gb-tok">{html.escape(label)}</span>{id_line}</span>')
    more = len(tokens) - limit
    if more > 0:
        chips.append(f'<span class="gb-more">… and {more:,} more</span>')
    style = ("<style>.gb-chips{line-height:2.6;font-family:ui-monospace,monospace}"
             ".gb-chip{display:inline-flex;flex-direction:column;align-items:center;padding:1px 5px;"
             "margin:2px;border-radius:5px;border:1px solid #9ca3af;color:#111827}"
             ".gb-tok{white-space:pre;font-size:0.95em;line-height:1.3}"
             ".gb-id{font-size:0.7em;color:#4b5563;line-height:1.1}.gb-more{color:#6b7280}</style>")
    return style + '<div class="gb-chips">' + "".join(chips) + "</div>"


def tokenizer_comparison_figure(counts: dict[str, int], n_characters: int) -> go.Figure:
    """Bar chart: how many tokens each tokenizer makes of the prompt."""
    names = list(counts)
    values = [counts[name] for name in names]
    per_token = [n_characters / v if v else 0 for v in values]
    # finished here: drawn fresh at each run, not through course_ui.chart, which finishes the others
    return finished(figure([dict(
        type="bar", x=values, y=names, orientation="h", marker=dict(color="#2563eb"),
        text=[f"{v:,} tokens · {c:.2f} characters per token" for v, c in zip(values, per_token)],
        textposition="auto", hovertemplate="%{y}: %{x} tokens<extra></extra>")],
        dict(height=80 + 45 * len(names), margin=dict(l=10, r=10, t=30, b=30),
             title=titled(f"Tokens for the same {n_characters:,} characters"),
             xaxis=dict(title=titled("number of tokens")), yaxis=dict(autorange="reversed"))))


def merge_steps_table(steps: list[MergeStep]) -> pd.DataFrame:
    """One row per BPE step: the pair merged, its rank in the merge list, the pieces after it."""
    import pandas as pd

    rows = []
    for number, step in enumerate(steps):
        rows.append({
            "step": number,
            "merged pair": "(start: one symbol per byte)" if step.merged is None else " + ".join(step.merged),
            "merge rank": "–" if step.rank is None else f"{step.rank:,}",  # the start row merged nothing
            "pieces": " | ".join(step.pieces),
            "how many": len(step.pieces),
        })
    return pd.DataFrame(rows)


def byte_fallback_table(text: str, tokenizers: dict[str, object], max_characters: int = 40) -> pd.DataFrame:
    """For each distinct non-ASCII character of `text`: its UTF-8 bytes, their byte symbols, and
    how each tokenizer splits that character alone (whole, or into byte pieces)."""
    import pandas as pd

    from core.tokenization import prompt_tokens, to_byte_symbols

    seen, rows = set(), []
    for ch in text:
        if ord(ch) < 128 or ch in seen:
            continue
        seen.add(ch)
        row = {"character": ch, "code point": f"U+{ord(ch):04X}",
               "UTF-8 bytes": " ".join(f"{b:02X}" for b in ch.encode("utf-8")),
               "byte symbols": to_byte_symbols(ch)}
        for name, tokenizer in tokenizers.items():
            pieces = prompt_tokens(tokenizer, ch)
            row[name] = " | ".join(f"{p.symbols} ({p.id})" for p in pieces)
        rows.append(row)
        if len(rows) >= max_characters:
            break
    return pd.DataFrame(rows)


def token_table(tokens: list[Token], limit: int = 500) -> pd.DataFrame:
    """Tokens as a table: position, id, vocabulary spelling, the text it stands for, its bytes."""
    import pandas as pd

    from core.tokenization import symbols_to_bytes

    return pd.DataFrame([{
        "position": i, "id": t.id, "vocabulary entry": t.symbols, "text": visible(decode_piece(t.symbols)),
        "bytes": len(symbols_to_bytes(t.symbols)),
    } for i, t in enumerate(tokens[:limit])])


def word_splits_table(words: list[str], tokenizers: dict[str, object]) -> pd.DataFrame:
    """Each word under each tokenizer: its pieces and how many; the most fragmented first."""
    import pandas as pd

    from core.tokenization import prompt_tokens

    rows = []
    for word in words:
        row = {"word": visible(word)}
        most = 0
        for name, tokenizer in tokenizers.items():
            pieces = prompt_tokens(tokenizer, word)
            row[f"{name}: pieces"] = " | ".join(p.symbols for p in pieces)
            row[f"{name}: tokens"] = len(pieces)
            most = max(most, len(pieces))
        rows.append((most, row))
    rows.sort(key=lambda pair: -pair[0])
    return pd.DataFrame([row for _, row in rows])


# --- heatmaps and flows over the trace ----------------------------------------------------------
def plotly_text(text: str) -> str:
    """Text for Plotly labels: whitespace made visible and HTML-escaped (Plotly reads some tags)."""
    return html.escape(visible(text), quote=False)


def plain_text(plotly_label: str | None) -> str | None:
    """A Plotly label (a figure's title) as plain text, Plotly's tags dropped and its escapes undone:
    what a screen reader says for the chart. None for no text."""
    plain = " ".join(html.unescape(re.sub(r"<[^>]*>", " ", plotly_label or "")).split())
    return plain or None


def position_name(position: int, token_string: str) -> str:
    """A position as plain text names it, in a picker or a table: '3 ␣Mia'."""
    return f"{position} {visible(token_string)}"


def token_labels(token_strings: list[str]) -> list[str]:
    """Axis labels that stay distinct when a token repeats: each position's name, escaped for Plotly."""
    return [html.escape(position_name(i, s), quote=False) for i, s in enumerate(token_strings)]


def token_at(position: int, token_string: str) -> str:
    """A token named inside a figure's title: 'position 20 (“,”)', not '20 ,' run into the sentence."""
    return f"position {position} (“{plotly_text(token_string)}”)"


def _tick_number(value: float) -> str:
    """A colour-bar label: two significant digits, whole numbers from 100 on, a true minus sign."""
    return (f"{value:.2g}" if abs(value) < 100 else f"{value:,.0f}").replace("-", "−")


@dataclass(frozen=True)
class ColourRange:
    """A diverging heatmap's colours span ±limit; lowest and highest are its real extremes."""
    limit: float
    lowest: float
    highest: float

    @property
    def clipped(self) -> bool:
        return self.lowest < -self.limit or self.highest > self.limit

    def note(self) -> str:
        """What a clipped scale leaves out, for the figure's own words ('' when nothing)."""
        beyond = [f"down to {_tick_number(self.lowest)}" if self.lowest < -self.limit else "",
                  f"up to {_tick_number(self.highest)}" if self.highest > self.limit else ""]
        return (f"colours stop at ±{_tick_number(self.limit)}; a few cells go " + " and ".join(b for b in beyond if b)
                if self.clipped else "")


def colour_range(z, clip_outliers: bool = False) -> ColourRange:
    """±max of a [rows, cols] tensor (NaN cells left out); with `clip_outliers`, when the largest
    magnitude is over twice the one 98% of the cells stay within, ±that instead, so that a few cells
    do not wash the others out (they are drawn in the end colours and keep their values)."""
    import torch

    values = z[torch.isfinite(z)]  # [finite cells]
    if values.numel() == 0:
        return ColourRange(1.0, 0.0, 0.0)
    largest = float(values.abs().max())
    typical = float(torch.quantile(values.abs(), 0.98)) if clip_outliers and values.numel() >= 20 else 0.0
    limit = typical if typical > 0 and largest > 2 * typical else largest
    return ColourRange(limit or 1.0, float(values.min()), float(values.max()))


INDEX_TICKS_FROM = 25  # a heatmap axis of this many numbered rows or columns, or more, gets a few round ticks


def axis_type(labels: list) -> str:
    """A heatmap axis's type: "linear" for the numbered entries of a long vector (labels 0, 1, 2, …
    as ints), ticked at a few round numbers; else "category", one tick per label that fits. A
    category axis of 128 numbers tripled the browser's time to draw a heatmap (it measures every
    label to choose which to show); a short one shows every index."""
    numbered = len(labels) >= INDEX_TICKS_FROM and all(type(label) is int for label in labels)
    return "linear" if numbered else "category"


def _heatmap_trace(values, x_labels: list[str], y_labels: list[str], x_title: str, y_title: str, diverging: bool,
                   show_values: bool | None, value_format: str, value_range: tuple[float, float] | None,
                   colour_title: str, clip_outliers: bool = False, scale: ColourRange | None = None,
                   **placement) -> dict:
    """One heatmap of real values: NaN and -inf cells (masked scores) blank; diverging around 0 with
    its own ±max (`colour_range`: with `clip_outliers`, a few far larger cells do not set it, and the
    colour bar's exceeded end says "≥"), or sequential (fixed to `value_range` if given); the values
    written in the cells when there are at most 400 of them (unless `show_values` says otherwise).
    `scale`: the colour range when the caller has worked it out already."""
    import torch

    z = values.detach().float() if isinstance(values, torch.Tensor) else torch.tensor(values, dtype=torch.float32)
    z = torch.where(torch.isfinite(z), z, torch.full_like(z, float("nan")))  # [rows, cols]
    rows, cols = z.shape
    if show_values is None:
        show_values = rows * cols <= 400
    scale = scale or colour_range(z, clip_outliers and diverging)
    limit = scale.limit
    bar = dict(placement.pop("colorbar", {}))
    side = placement.pop("colour_title_side", "right")
    colour_bar = dict(title=dict(text=colour_title, side=side) | (dict(font=dict(size=11)) if side == "top" else {}), **bar)
    if scale.clipped:  # an end of the scale that values go beyond says so
        colour_bar.update(tickvals=[-limit, -limit / 2, 0, limit / 2, limit], ticktext=[
            ("≤ " if scale.lowest < -limit else "") + _tick_number(-limit), _tick_number(-limit / 2), "0",
            _tick_number(limit / 2), ("≥ " if scale.highest > limit else "") + _tick_number(limit)])
    trace = dict(
        type="heatmap", z=z.numpy(), x=x_labels, y=y_labels,  # an array goes to the browser as one binary block
        colorscale=DIVERGING_SCALE if diverging else SEQUENTIAL_SCALE, textfont={"size": 10},
        hovertemplate=f"{y_title or 'row'} %{{y}}<br>{x_title or 'column'} %{{x}}<br>{colour_title} %{{z:.4f}}<extra></extra>",
        hoverongaps=False, colorbar=colour_bar, **placement)
    if diverging:
        trace.update(zmid=0, zmin=-limit, zmax=limit)
    elif value_range:
        trace.update(zmin=value_range[0], zmax=value_range[1])
    if show_values:
        trace.update(texttemplate=f"%{{z:{value_format}}}")
    return trace


def heatmap(values, x_labels: list[str], y_labels: list[str], title: str, x_title: str = "", y_title: str = "",
            diverging: bool = True, show_values: bool | None = None, height: int | None = None,
            value_format: str = ".2f", value_range: tuple[float, float] | None = None,
            colour_title: str = "value") -> go.Figure:
    """A labelled heatmap of real values. Diverging (blue-white-red around 0) or sequential.
    NaN and -inf cells (masked scores) are left blank. `value_range` fixes a sequential scale
    (e.g. 0-1 for shares of attention), so its darkest colour means the same in every figure."""
    trace = _heatmap_trace(values, x_labels, y_labels, x_title, y_title, diverging, show_values, value_format,
                           value_range, colour_title)
    return figure([trace], dict(title=titled(title), height=height or max(260, min(900, 60 + 22 * len(y_labels))),
                                margin=dict(t=50),  # the sides: plot_style.finished
                                xaxis=dict(type=axis_type(x_labels), title=titled(x_title)),
                                yaxis=dict(type=axis_type(y_labels), autorange="reversed", title=titled(y_title))))


def heatmap_panels(panels: list[tuple], x_labels: list[str], y_labels: list[str], title: str,
                   x_title: str = "", y_title: str = "", diverging: bool = True, show_values: bool | None = None,
                   value_format: str = ".2f", value_range: tuple[float, float] | None = None,
                   colour_title: str = "value", columns: int | None = None, clip_outliers: bool = False) -> go.Figure:
    """Heatmaps of the same shape side by side in one figure, (values, panel title) or (values,
    panel title, colour title) each: what `heatmap` draws, as panels of one chart (a browser draws
    one chart of three panels in about half the time of three charts). A fixed `value_range` gives
    all panels one scale and one colour bar; otherwise each panel has its own, beside it.
    `clip_outliers`: see `_heatmap_trace`."""
    import torch

    columns = columns or len(panels)
    rows = (len(panels) + columns - 1) // columns
    panel_px = max(240, min(900, 40 + 22 * len(y_labels)))
    shared = value_range is not None and not diverging
    height = 60 + rows * (panel_px + 30)
    scales = [colour_range(torch.as_tensor(panel[0], dtype=torch.float32), clip_outliers and diverging)
              for panel in panels]  # each panel's, worked out once: for its colours and its title
    notes = [scale.note() for scale in scales]  # a clipped panel says so under its title
    cells, subtitles = subplot_grid(len(panels), columns, [panel[1] + (f"<br><i>({note})</i>" if note else "")
                                                           for panel, note in zip(panels, notes)],
                                    gap_x=0.03 if shared else 0.11, gap_y=30 / height if rows > 1 else 0.1)
    if show_values is None:  # the values in the cells, where they fit: about 34 px a cell across a panel
        show_values = len(x_labels) * len(y_labels) <= 400 and len(x_labels) * 34 <= 900 // columns
    traces, layout = [], {}
    for cell, scale, (values, _, *own_colour_title) in zip(cells, scales, panels):
        bar = dict(x=1.01, xanchor="left", y=0.5, len=1.0, thickness=12) if shared else \
            dict(x=cell.x_domain[1] + 0.005, xanchor="left", y=sum(cell.y_domain) / 2,
                 len=cell.y_domain[1] - cell.y_domain[0], thickness=12)  # each panel's own, beside it
        traces.append(_heatmap_trace(values, x_labels, y_labels, x_title, y_title, diverging, show_values, value_format,
                                     value_range, (own_colour_title or [colour_title])[0], clip_outliers, scale,
                                     xaxis=cell.x, yaxis=cell.y, colorbar=bar,
                                     showscale=not shared or cell.index == len(panels) - 1,
                                     # titled above (at its side it reads as the next panel's axis title)
                                     colour_title_side="right" if shared else "top"))
        lowest = cell.index + columns >= len(panels)
        layout.update(cell.axes(dict(type=axis_type(x_labels), title=titled(x_title if lowest else None), showticklabels=lowest),
                                dict(type=axis_type(y_labels), autorange="reversed", showticklabels=cell.column == 0,
                                     title=titled(y_title if cell.column == 0 else None))))
    layout.update(title=titled(title), height=height + 20, annotations=subtitles,  # the panels' titles under the figure's
                  margin=dict(t=90 if any(notes) else 70))  # the sides: plot_style.finished, as the page builds the figure
    return figure(traces, layout)


def bar(labels: list[str], values: list[float], title: str, x_title: str = "", colours=None) -> go.Figure:
    return figure([dict(type="bar", x=labels, y=values, marker=dict(color=colours or "#2563eb"),
                        hovertemplate="%{x}: %{y:.4f}<extra></extra>")],
                  dict(title=titled(title), height=300, xaxis=dict(type="category", title=titled(x_title))))


@dataclass(frozen=True)
class Cell:
    """One subplot of a grid: the axes its traces name ("x2", "y2") and where they sit on the page."""
    index: int  # row by row from the top left
    column: int
    x_domain: list[float]
    y_domain: list[float]

    @property
    def x(self) -> str:
        return "x" if self.index == 0 else f"x{self.index + 1}"

    @property
    def y(self) -> str:
        return "y" if self.index == 0 else f"y{self.index + 1}"

    def axes(self, x: dict, y: dict) -> dict:
        """Layout entries for this cell's two axes, with `x` and `y` added to each."""
        return {self.x.replace("x", "xaxis", 1): dict(domain=self.x_domain, anchor=self.y, **x),
                self.y.replace("y", "yaxis", 1): dict(domain=self.y_domain, anchor=self.x, **y)}


def subplot_grid(count: int, columns: int, titles: list[str] | None = None, gap_x: float | None = None,
                 gap_y: float | None = None, title_size: int = 12) -> tuple[list[Cell], list[dict]]:
    """A grid of `count` subplots, `columns` wide, filled row by row from the top: its cells and the
    titles above them (paper annotations). The layout plotly's make_subplots computes, built as plain
    dicts in one go (make_subplots and per-axis updates were a third of lesson 4's server time)."""
    rows = (count + columns - 1) // columns
    gap_x = 0.2 / columns if gap_x is None else gap_x
    gap_y = 0.3 / rows if gap_y is None else gap_y
    width, height = (1 - gap_x * (columns - 1)) / columns, (1 - gap_y * (rows - 1)) / rows
    cells, annotations = [], []
    for index in range(count):
        row, column = divmod(index, columns)
        left, top = column * (width + gap_x), 1 - row * (height + gap_y)
        cells.append(Cell(index, column, [left, min(1.0, left + width)], [max(0.0, top - height), top]))
        if titles:
            annotations.append(dict(text=titles[index], x=left + width / 2, y=top, xref="paper", yref="paper",
                                    xanchor="center", yanchor="bottom", showarrow=False, font=dict(size=title_size)))
    return cells, annotations


def small_multiples(patterns: list, titles: list[str], labels: list[str], columns: int, title: str) -> go.Figure:
    """Several attention patterns side by side, sharing one 0–1 colour scale."""
    rows = (len(patterns) + columns - 1) // columns
    row_px = max(48, min(230, 760 // columns))  # about square cells, however many columns
    title_px = 26  # room for each subplot's title
    height = 70 + rows * (row_px + title_px)
    cells, subtitles = subplot_grid(len(patterns), columns, titles, gap_x=0.02,
                                    gap_y=title_px / height if rows > 1 else 0.1, title_size=12 if columns <= 6 else 9)
    # token labels on the outer axes (the first column's rows, each column's lowest pattern): every
    # label when they fit at about 10 px each, else every k-th; all of them on hover
    shown = labels[::max(1, math.ceil(len(labels) * 10 / row_px))]
    label_px = min(90, 6 * max((len(label) for label in shown), default=1))
    ticks, no_ticks = dict(showticklabels=True, tickvals=shown, tickfont=dict(size=8)), dict(showticklabels=False)
    traces, layout = [], {}
    for cell, pattern in zip(cells, patterns):
        traces.append(dict(
            type="heatmap", z=pattern.detach().float().numpy(), x=labels, y=labels, xaxis=cell.x, yaxis=cell.y,
            colorscale=SEQUENTIAL_SCALE, zmin=0, zmax=1, showscale=cell.index == 0,
            colorbar=dict(title=dict(text="attention weight", side="right")),
            hovertemplate="query %{y}<br>key %{x}<br>weight %{z:.3f}<extra></extra>"))
        lowest = cell.index + columns >= len(patterns)
        layout.update(cell.axes(dict(ticks, tickangle=-90) if lowest else no_ticks,
                                dict(ticks if cell.column == 0 else no_ticks, autorange="reversed")))
    layout.update(title=titled(title), height=height + label_px, annotations=subtitles,
                  margin=dict(l=10 + label_px, r=10, t=60, b=10 + label_px))  # the colour bar's room: plot_style.finished
    return figure(traces, layout)


TOKEN_COLOURS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"]


def rgba(hex_colour: str, alpha: float) -> str:
    red, green, blue = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgba({red},{green},{blue},{alpha:.2f})"


def attention_sankey(links: list[tuple[int, int, float]], token_strings: list[str], title: str) -> go.Figure:
    """Source tokens (left, as keys) to destination tokens (right, as queries); width = attention
    weight. A position has the same colour on both sides; each band takes its key's colour, more
    opaque the larger its weight. The token names stand in the margins, outside the bands, and
    the columns are headed "key" and "query"."""
    keys, queries = sorted({k for k, _, _ in links}), sorted({q for _, q, _ in links})  # the positions with a band
    labels = token_labels(token_strings)
    colour = {p: TOKEN_COLOURS[p % len(TOKEN_COLOURS)] for p in keys + queries}
    nodes = [FlowNode((side, p), column, labels[p], colour[p], f"{labels[p]} ({name})")
             for column, (side, name, positions) in enumerate((("k", "key", keys), ("q", "query", queries)))
             for p in positions]
    bands = [FlowLink(("k", k), ("q", q), w, rgba(colour[k], 0.15 + 0.6 * w),
                      f"from {labels[k]} (key)<br>to {labels[q]} (query)<br>weight {w:.3f}") for k, q, w in links]
    return flow_figure(nodes, bands, title, ["key: what is read", "query: who reads"])


def grouped_bars(labels: list[str], series: dict[str, list[float]], title: str, x_title: str = "",
                 log_scale: bool = False, y_title: str = "probability") -> go.Figure:
    """Bars side by side per label, one colour per series (e.g. before / after an intervention)."""
    colours = ["#2563eb", "#f97316", "#16a34a", "#9333ea"]
    return figure([dict(type="bar", name=name, x=labels, y=values, marker=dict(color=colours[i % len(colours)]),
                        hovertemplate=f"{name}: %{{y:.4f}}<extra>%{{x}}</extra>")
                   for i, (name, values) in enumerate(series.items())],
                  dict(title=titled(title), barmode="group", height=340,
                       xaxis=dict(type="category", title=titled(x_title)),
                       yaxis=dict(title=titled(y_title), type="log" if log_scale else "linear")))


def embedding_map(coords, labels: list[str], highlighted: list[bool], explained: list[float], title: str,
                  apart=None, apart_name: str = "", group_name: str = "vocabulary") -> go.Figure:
    """A 2-D scatter of token embeddings; highlighted points (the prompt's tokens) drawn larger,
    labelled. `apart`: (coords, labels) of another group, drawn in grey under `apart_name`."""
    points = [(float(x), float(y), label, mark) for (x, y), label, mark in zip(coords.tolist(), labels, highlighted)]
    traces = []
    if apart is not None and len(apart[1]):
        traces.append(dict(
            type="scatter", x=apart[0][:, 0].tolist(), y=apart[0][:, 1].tolist(), mode="markers", text=apart[1],
            name=apart_name, marker=dict(size=7, color="#6b7280", symbol="x"), hovertemplate="%{text}<extra></extra>"))
    for mark, name, size, colour in ((False, group_name, 6, "#93c5fd"), (True, "your prompt", 11, "#dc2626")):
        chosen = [p for p in points if p[3] == mark]
        traces.append(dict(
            type="scatter", x=[p[0] for p in chosen], y=[p[1] for p in chosen], mode="markers+text" if mark else "markers",
            text=[p[2] for p in chosen], textposition="top center", name=name,
            marker=dict(size=size, color=colour), hovertemplate="%{text}<extra></extra>"))
    return figure(traces, dict(title=titled(title), height=560,
                               xaxis=dict(title=titled(f"direction 1 ({explained[0]:.1%} of the variance)")),
                               yaxis=dict(title=titled(f"direction 2 ({explained[1]:.1%} of the variance)"))))


def vector_rows(rows: dict[str, object], title: str, x_title: str = "entry of the vector") -> go.Figure:
    """Several vectors of the same width, one bar chart each, stacked (each with its own y scale,
    one shared x axis: zooming one row zooms them all). Each row's bars, side by side with no gap,
    are drawn as one filled outline (a step line), which the browser draws in a fraction of the time
    of one shape per entry."""
    names = list(rows)
    cells, subtitles = subplot_grid(len(names), 1, names, gap_y=0.06, title_size=16)
    bottom = cells[-1]
    traces, layout = [], {}
    for cell, name in zip(cells, names):
        values = numbers(rows[name])  # [width]
        entries = np.arange(len(values))  # [width]
        edges = (entries[:, None] + np.array([-0.5, 0.5])).ravel()  # [2 × width]: each entry a full-width step
        traces.append(dict(type="scatter", x=edges, y=np.repeat(values, 2), xaxis=cell.x, yaxis=cell.y, mode="lines",
                           line=dict(width=1, color="#2563eb"), fill="tozeroy", fillcolor="#2563eb",
                           showlegend=False, customdata=np.repeat(entries, 2),
                           hovertemplate=f"{html.escape(name)}<br>entry %{{customdata}}: %{{y:.4f}}<extra></extra>"))
        shared = dict(title=titled(x_title), range=[-0.5, len(values) - 0.5]) if cell is bottom \
            else dict(matches=bottom.x, showticklabels=False)
        layout.update(cell.axes(shared, {}))
    layout.update(title=titled(title), height=60 + 150 * len(names), margin=dict(l=10, r=10, t=84, b=10),
                  annotations=subtitles, hovermode="x")
    return figure(traces, layout)


def activation_curve_figure(curve_x, curve_y, points_x, points_y, point_labels: list[str], title: str,
                            activation: str = "GELU", pre_name: str = "c_fc output") -> go.Figure:
    """The activation function as a line, with the prompt's real (pre, post) pairs as points on it."""
    return figure([
        dict(type="scatter", x=numbers(curve_x), y=numbers(curve_y), mode="lines", name=f"{activation}(x)",
             line=dict(color="#6b7280"), hoverinfo="skip"),
        dict(type="scatter", x=numbers(points_x), y=numbers(points_y), mode="markers",
             name="your prompt", marker=dict(size=6, color="#dc2626", opacity=0.6), text=point_labels,
             hovertemplate="%{text}<br>before %{x:.3f} → after %{y:.3f}<extra></extra>"),
    ], dict(title=titled(title), height=380, xaxis=dict(title=titled(f"pre-activation ({pre_name})")),
            yaxis=dict(title=titled("post-activation"))))


def waterfall(names: list[str], values: list[float], total_name: str, title: str) -> go.Figure:
    """Contributions stacked one after another, ending in a bar for their sum."""
    return figure([dict(
        type="waterfall", x=[html.escape(n) for n in names] + [html.escape(total_name)], y=list(values) + [0.0],
        measure=["relative"] * len(values) + ["total"], texttemplate="%{delta:+.2f}", textposition="outside",
        increasing=dict(marker=dict(color="#dc2626")), decreasing=dict(marker=dict(color="#2563eb")),
        totals=dict(marker=dict(color="#111827")), hovertemplate="%{x}: %{delta:+.4f}<extra></extra>")],
        dict(title=titled(title), height=420, xaxis=dict(type="category"), yaxis=dict(title=titled("logit")),
             showlegend=False))


def line(labels: list[str], values: list[float], title: str, y_title: str = "") -> go.Figure:
    return figure([dict(type="scatter", x=[html.escape(l) for l in labels], y=values, mode="lines+markers",
                        line=dict(color="#2563eb"), hovertemplate="%{x}: %{y:.3f}<extra></extra>")],
                  dict(title=titled(title), height=340, xaxis=dict(type="category"), yaxis=dict(title=titled(y_title))))


# --- lesson 6: sampling, generation, the whole journey ------------------------------------------
def lines(x: list[float], series: dict[str, list[float]], title: str, x_title: str, y_title: str,
          log_x: bool = False, log_y: bool = False, marker: tuple[str, float] | None = None,
          reference: tuple[str, float] | None = None, dashed: tuple[str, ...] = (), height: int = 380,
          max_points: int = 400, x_format: str = "", x_axis: dict | None = None) -> go.Figure:
    """Several lines over one x axis (series may hold their own (x, y) as a pair of lists).
    `marker` draws a labelled vertical line, `reference` a labelled horizontal one; series named in
    `dashed` are drawn dashed (e.g. an earlier run for comparison). Long series are drawn with
    every k-th point (and the last), at most `max_points`. `x_axis`: more settings of the x axis
    (its range, its ticks). Names must be escaped already."""
    traces = []
    for name, values in series.items():
        xs, ys = values if isinstance(values, tuple) else (x, values)
        if len(xs) > max_points:
            keep = list(range(0, len(xs), -(-len(xs) // max_points))) + [len(xs) - 1]
            xs, ys = [xs[i] for i in keep], [ys[i] for i in keep]
        traces.append(dict(type="scatter", x=numbers(xs), y=numbers(ys), mode="lines", name=name,
                           line=dict(dash="dash" if name in dashed else "solid"),
                           hovertemplate=f"{name}<br>{x_title} %{{x{':' + x_format if x_format else ''}}}"
                                         f"<br>%{{y:.4r}}<extra></extra>"))  # 4 digits, never e-notation (0.00001234)
    shapes, notes = [], []
    if marker is not None:  # its label placed by hand: on a log axis an annotation's x is the value's log10
        shape, note = guide_line(x=marker[1], label=marker[0], dash="dot", colour="#111827",
                                 label_x=math.log10(marker[1]) if log_x else None)
        shapes, notes = shapes + [shape], notes + note
    if reference is not None:
        shape, note = guide_line(y=reference[1], label=reference[0], colour="#9ca3af")
        shapes, notes = shapes + [shape], notes + note
    return figure(traces, dict(title=titled(title), height=height, shapes=shapes or None, annotations=notes or None,
                               xaxis=dict(type="log" if log_x else "linear", title=titled(x_title), **(x_axis or {})),
                               yaxis=dict(type="log" if log_y else "linear", title=titled(y_title))))


def sweep_lines(temperatures: list[float], series: dict[str, list[float]], title: str, y_title: str,
                marker: float | None = None, reference: tuple[str, float] | None = None) -> go.Figure:
    """Lines across temperatures on a log axis, the slider's temperature marked. The axis spans
    exactly the swept temperatures, labelled at 1-2-5 steps."""
    low, high = min(temperatures), max(temperatures)
    ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50) if low <= t <= high]
    return lines(temperatures, series, title, "temperature T (log scale)", y_title, log_x=True,
                 marker=(f"T = {marker:g}", marker) if marker else None, reference=reference, x_format=".3g",
                 x_axis=dict(range=[math.log10(low), math.log10(high)], tickvals=ticks, ticktext=[f"{t:g}" for t in ticks]))


def cumulative_figure(names: list[str], probabilities: list[float], kept: list[bool], top_p: float,
                      title: str) -> go.Figure:
    """Candidates by rank: their probability (bars) and the running total (line), the nucleus cut drawn at p."""
    running = []
    total = 0.0
    for value in probabilities:
        total += value
        running.append(total)
    colours = ["#2563eb" if keep else "#d1d5db" for keep in kept]
    cut, cut_note = guide_line(y=top_p, label=f"top-p = {top_p:g}", colour="#dc2626")
    return figure([
        dict(type="bar", x=names, y=probabilities, marker=dict(color=colours), name="probability",
             hovertemplate="%{x}: %{y:.4f}<extra></extra>"),
        dict(type="scatter", x=names, y=running, mode="lines+markers", name="cumulative", line=dict(color="#dc2626"),
             hovertemplate="up to %{x}: %{y:.4f}<extra></extra>"),
    ], dict(title=titled(title), height=380, yaxis=dict(range=[0, 1.05]), shapes=[cut], annotations=cut_note,
            xaxis=dict(type="category", title=titled("candidates, most likely first (grey: cut)"))))


def funnel_sankey(masses: list[tuple[str, str, float]], title: str) -> go.Figure:
    """Probability mass flowing between named stages: (from, to, mass), each stage a column one
    step right of the stage it comes from. Names must be escaped already (`plotly_text`)."""
    names = list(dict.fromkeys([a for a, _, _ in masses] + [b for _, b, _ in masses]))
    column = {name: 0 for name in names}
    for _ in names:  # a stage stands one column right of the stage its mass comes from
        for a, b, _ in masses:
            column[b] = max(column[b], column[a] + 1)
    colours = {name: "#dc2626" if name.startswith("cut") else "#16a34a" if name.startswith("sampled") else "#2563eb"
               for name in names}  # what is cut red, the drawn token green, what is kept blue
    bands = [FlowLink(a, b, m, rgba(colours[b], 0.3), f"{a} → {b}<br>probability {m:.4f}") for a, b, m in masses]
    through = flow_through(bands)
    nodes = [FlowNode(name, column[name], name, colours[name], f"{name}: probability {through[name]:.4f}")
             for name in sorted(names, key=lambda name: column[name])]
    return flow_figure(nodes, bands, title, band_px=220, pad=10, side_margin=0.14)


def cell_text(label: str, limit: int) -> str:
    """An escaped label cut to `limit` characters, the last one '…', so that it stays inside its cell
    (Plotly writes a cell's text across its neighbours); the escapes are never cut in half."""
    plain = html.unescape(label)
    return label if len(plain) <= limit else html.escape(plain[:limit - 1] + "…", quote=False)


def text_heatmap(values, texts: list[list[str]], x_labels: list[str], y_labels: list[str], title: str,
                 x_title: str, y_title: str, colour_title: str = "probability") -> go.Figure:
    """A 0–1 heatmap with a short text (already escaped) written in each cell: cut to what a cell
    of its width holds (5 characters at 24 columns; `<|endoftext|>` shows as `<|en…`), whole
    on hover."""
    limit = max(4, 125 // max(1, len(x_labels)))  # characters a cell holds, at 10 px, on a lesson's width
    return figure([dict(
        type="heatmap", z=np.array([numbers(row) for row in values]), x=x_labels, y=y_labels,
        text=[[cell_text(text, limit) for text in row] for row in texts], customdata=texts,
        texttemplate="%{text}", textfont={"size": 10}, colorscale=SEQUENTIAL_SCALE, zmin=0, zmax=1,
        colorbar=dict(title=titled(colour_title)),
        hovertemplate=f"{y_title} %{{y}}<br>{x_title} %{{x}}<br>%{{customdata}}: %{{z:.4f}}<extra></extra>")],
        dict(title=titled(title), height=max(280, min(1000, 80 + 28 * len(y_labels))),
             xaxis=dict(type="category", title=titled(x_title)),
             yaxis=dict(type="category", title=titled(y_title), autorange="reversed")))


def journey_sankey(flows: list[tuple[str, str, float]], sinks: tuple[str, str], title: str) -> go.Figure:
    """Sources → components → two sinks (raises / lowers the logit). `flows` are (source, component,
    signed value); each link's width is |value|; red links raise the logit, blue ones lower it.
    Names must be escaped already (`token_labels`, `plotly_text`)."""
    raising, lowering = "rgba(220,38,38,0.45)", "rgba(37,99,235,0.45)"
    flows = [(source, component, amount) for source, component, amount in flows if abs(amount) >= 1e-9]
    sources = list(dict.fromkeys(s for s, _, _ in flows))
    components = list(dict.fromkeys(c for _, c, _ in flows))
    bands = [FlowLink(("source", s), ("component", c), abs(a), raising if a > 0 else lowering,
                      f"{s} → {c}<br>{a:+.3f} logit") for s, c, a in flows]
    for component in components:
        up = sum(a for _, c, a in flows if c == component and a > 0)
        down = -sum(a for _, c, a in flows if c == component and a < 0)
        for amount, sink, tint in ((up, sinks[0], raising), (down, sinks[1], lowering)):
            if amount > 1e-9:
                bands.append(FlowLink(("component", component), ("sink", sink), amount, tint,
                                      f"{component} → {sink}<br>{amount:.3f} logit"))
    total = defaultdict(float, flow_through(bands))  # a sink nothing reaches: 0, and not drawn
    nodes = ([FlowNode(("source", s), 0, s, TOKEN_COLOURS[i % len(TOKEN_COLOURS)], f"{s}: {total[('source', s)]:.3f}")
              for i, s in enumerate(sources)]
             + [FlowNode(("component", c), 1, c, "#6b7280", f"{c}: {total[('component', c)]:.3f}") for c in components]
             + [FlowNode(("sink", s), 2, s, colour, f"{s}: {total[('sink', s)]:.3f}")
                for s, colour in zip(sinks, ("#dc2626", "#2563eb")) if total[("sink", s)] > 0])
    return flow_figure(nodes, bands, title, band_px=320, pad=10, side_margin=0.15)


def shaded_band(x0: float, x1: float, opacity: float = 0.5) -> dict:
    """A pale band behind a chart's traces, from x0 to x1 over the whole height (a Plotly shape)."""
    return dict(type="rect", xref="x", yref="paper", x0=x0, x1=x1, y0=0, y1=1, fillcolor="#fde68a", opacity=opacity,
                line=dict(width=0), layer="below")


def per_token_loss(labels: list[str], series: dict[str, list[float]], copyable: list[int], title: str) -> go.Figure:
    """The loss of each next-token prediction of a prompt, one line per run of the model; the
    positions whose next token could be copied from an earlier repeat are shaded."""
    traces = [dict(type="scatter", x=list(range(len(values))), y=values, mode="lines+markers", name=name,
                   marker=dict(size=4), line=dict(color=TOKEN_COLOURS[index % len(TOKEN_COLOURS)]),
                   customdata=labels[1:len(values) + 1],
                   hovertemplate=f"{name}<br>after %{{x}}, predicting %{{customdata}}<br>loss %{{y:.3f}} nats<extra></extra>")
              for index, (name, values) in enumerate(series.items())]
    runs: list[list[int]] = []  # consecutive copyable predictions drawn as one shaded band
    for q in copyable:
        if runs and runs[-1][1] == q - 1:
            runs[-1][1] = q
        else:
            runs.append([q, q])
    shown = list(range(0, len(labels) - 1, max(1, math.ceil((len(labels) - 1) / 40))))
    return figure(traces, dict(
        title=titled(title), height=400, margin=dict(l=10, r=10, t=70, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.01, x=0),
        xaxis=dict(title=titled("position (the token the prediction is made at)"), tickvals=shown,
                   ticktext=[labels[i] for i in shown], tickangle=-60, tickfont=dict(size=9)),
        yaxis=dict(title=titled("loss, −ln p(next token), nats"), rangemode="tozero"),
        shapes=[shaded_band(first - 0.5, last + 0.5) for first, last in runs]))


def induction_growth(history: list[dict], phases: list[tuple[int, int, str]], found_score: float,
                     title: str) -> go.Figure:
    """A build's standard induction test at every logged step: the best induction score and the
    repeat's loss as a share of the first half's, with the copying warm-up's phases shaded (each
    named above its band, darker first) and the score that counts as a circuit marked."""
    steps = [entry["step"] for entry in history]
    traces = [dict(type="scatter", x=steps, y=[entry[field] for entry in history], mode="lines+markers", name=name,
                   marker=dict(size=4), line=dict(color=TOKEN_COLOURS[index]),
                   hovertemplate=f"step %{{x}}<br>{name}: %{{y:.2f}}<extra></extra>")
              for index, (field, name) in enumerate((("induction_score", "best induction score"),
                                                     ("repeat_loss_ratio", "loss on the repeat ÷ loss on the first half")))]
    shapes = [dict(type="line", xref="paper", x0=0, x1=1, y0=found_score, y1=found_score,
                   line=dict(color="#6b7280", dash="dash", width=1))]
    annotations = [dict(xref="paper", x=1, y=found_score, text=f"a circuit: score ≥ {found_score:.2f}",
                        showarrow=False, xanchor="right", yanchor="bottom", font=dict(size=11))]
    for index, (first, last, what) in enumerate(phases):
        shapes.append(shaded_band(first, last, opacity=0.5 / (index + 1)))
        annotations.append(dict(xref="x", yref="paper", x=(first + last) / 2, y=1, showarrow=False, yanchor="bottom",
                                text=what, font=dict(size=11)))
    return figure(traces, dict(
        title=titled(title), height=360, margin=dict(l=10, r=10, t=90, b=10), shapes=shapes, annotations=annotations,
        legend=dict(orientation="h", yanchor="bottom", y=1.08, x=0),
        xaxis=dict(title=titled("training step"), rangemode="tozero"),
        yaxis=dict(title=titled("score or loss ratio"),
                   range=[0, max(1.1, *(entry["repeat_loss_ratio"] + 0.05 for entry in history))])))
