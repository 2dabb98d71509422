"""The one look every figure of the course shares, and how a figure is built and finished.

Every figure is made by `figure`, which writes the house style (HOUSE_LAYOUT, HOUSE_AXIS,
HOUSE_COLOUR_BAR) into the figure itself: one font, one ink, one set of colour scales, titled colour
bars, the same margins. The pages draw figures with Streamlit's own theme switched off
(`course_ui.show_figure`), so what is set here is what the student sees. The style is written into
each figure rather than sent as a Plotly template: Streamlit hands plotly.js a fresh copy of every
chart just after drawing it, and plotly.js draws a chart whose layout names a template all over
again when it is handed a copy (see ONE_DATA_REVISION).
"""
from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio
import numpy as np
from _plotly_utils.utils import to_typed_array_spec
from plotly.colors import get_colorscale

FONT = '"Source Sans", "Source Sans Pro", sans-serif'  # the app's own font (Streamlit serves it)
INK = "#31333F"  # Streamlit's text colour on the light theme (.streamlit/config.toml)
GRID = "#e5e7eb"
SEQUENTIAL = "Blues"  # weights, probabilities: 0 is white, readable by colour-blind students
DIVERGING = "RdBu_r"  # signed values around 0: blue below, red above
# The two scales spelled out as [[position, colour], ...] for figures built unchecked (`figure`): the
# browser's Plotly knows some of Python's scale names under other colours, and "RdBu_r" not at all
SEQUENTIAL_SCALE = [[round(at, 6), colour] for at, colour in get_colorscale(SEQUENTIAL)]
DIVERGING_SCALE = [[round(at, 6), colour] for at, colour in get_colorscale(DIVERGING)]  # 0.3, not 0.30000000000000004
COLOURS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"]

# How the browser draws every figure (Plotly's config): no hover toolbar. Building it was a third of
# Plotly's drawing time in Chromium (lessons 4 and 6: 810 -> 506 ms for 18 figures); dragging still
# zooms, a double click resets the view, and Streamlit's own toolbar opens a figure full screen.
BROWSER_CONFIG = {"displayModeBar": False}

HOUSE_AXIS = dict(gridcolor=GRID, zerolinecolor="#d1d5db", linecolor="#d1d5db", automargin=True,
                  title=dict(standoff=8), tickfont=dict(size=12))  # every x and y axis
HOUSE_COLOUR_BAR = dict(title=dict(side="right"), outlinewidth=0, thickness=14)  # every heatmap's
HOUSE_LAYOUT = dict(
    font=dict(family=FONT, size=13, color=INK),
    title=dict(font=dict(size=16), x=0, xanchor="left", xref="paper"),
    paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)",
    colorway=COLOURS, margin=dict(l=10, r=10, t=40, b=10),
    colorscale=dict(sequential=SEQUENTIAL_SCALE, diverging=DIVERGING_SCALE),
    hoverlabel=dict(font=dict(family=FONT, size=13, color=INK), bgcolor="white", bordercolor="#9ca3af"),
    legend=dict(font=dict(size=12)),
    hovermode="closest",
)
pio.templates.default = None  # Plotly adds no template of its own to a figure (its "plotly" one weighs 7 kB)

# A chart's data never changes once it is in the browser: Streamlit gives a figure with other data
# another element id, and the browser makes a new chart for it. But Streamlit's chart, once drawn,
# hands plotly.js a fresh copy of the same figure (to apply a theme, even with none), and plotly.js
# took the copy's new arrays for new data and drew the whole chart a second time: every chart was
# drawn twice, on every page and at every move of a control. A datarevision that stays the same
# tells plotly.js the data did not change; it then keeps what it drew (for heatmaps, bars and the
# flows: a copy costs a quarter to a third of a first drawing, not as much again). It works only
# with no template in the layout: a template, copied, is taken for a new one and everything is drawn.
ONE_DATA_REVISION = 1


def _under(defaults: dict, own: dict) -> dict:
    """`own` over `defaults`, dict by dict: what a figure sets wins, the house style fills the rest."""
    merged = dict(defaults)
    for key, value in own.items():
        merged[key] = _under(defaults[key], value) if isinstance(value, dict) and isinstance(defaults.get(key), dict) \
            else value
    return merged


def _styled(traces: list[dict], layout: dict) -> tuple[list[dict], dict]:
    """The house style written into a figure's (sent) traces and layout, under their own settings."""
    layout = _under(HOUSE_LAYOUT, layout)
    named = {f"{ref[0]}axis{ref[1:]}" for trace in traces for ref in (trace.get("xaxis"), trace.get("yaxis")) if ref}
    for axis in {"xaxis", "yaxis"} | named | {key for key in layout if key.startswith(("xaxis", "yaxis"))}:
        layout[axis] = _under(HOUSE_AXIS, layout.get(axis, {}))
    traces = [trace | {"colorbar": _under(HOUSE_COLOUR_BAR, trace.get("colorbar", {}))} if trace.get("type") == "heatmap"
              else trace for trace in traces]
    return traces, layout | {"datarevision": ONE_DATA_REVISION}


class Chart(go.Figure):
    """A figure held as the dict the browser is sent, and nothing else: Streamlit asks a Plotly
    figure for its dict at every draw, and a go.Figure deep-copies itself for it (~10 ms a chart);
    a chart answers with its own. Built by `figure`, never changed once finished (`finished`).
    `.data` and `.layout` read it as Plotly objects, built on first use (for tests and checks)."""

    def __init__(self, spec: dict):  # not go.Figure's: nothing is checked, nothing copied
        self._spec, self._as_objects = spec, None

    def to_dict(self) -> dict:
        return self._spec

    @property
    def data(self):
        return self._objects().data

    @property
    def layout(self):
        return self._objects().layout

    def _objects(self) -> go.Figure:
        if self._as_objects is None:
            self._as_objects = go.Figure(self._spec, _validate=False)
        return self._as_objects


# The traces whose number arrays are sent as binary blocks. A line or a scatter whose x, y or
# customdata came as a binary block was drawn twice over: when Streamlit hands plotly.js its copy of
# the chart (ONE_DATA_REVISION), plotly.js took the copy's decoded arrays for new data and worked the
# whole chart out again. As plain lists it keeps what it drew. Measured alone in Chromium, the copy's
# cost: the GELU scatter 192 -> 56 ms, the LayerNorm rows 82 -> 34, a temperature sweep 51 -> 20, the
# learning-rate curve 33 -> 13. Heatmaps do not redraw for a binary block, and their grids are
# the large arrays: as text they would be two to three times as long.
BINARY_TRACES = {"heatmap"}


def figure(traces: list[dict], layout: dict) -> Chart:
    """A figure of plain dicts, built unchecked: Plotly's checking of every property and copying of
    the whole figure were two thirds of a lesson's server time on a new prompt (one sweep of three
    lines: 15 ms checked, 1.4 ms unchecked, less as a plain dict). Write the dicts as plotly.js reads
    them, for nothing corrects them on the way: `title=dict(text=...)`, never a bare string;
    `font=dict(size=...)`, never `font_size`; colour scales spelled out (`SEQUENTIAL_SCALE`); no
    empty dict. tests/test_app.py checks that every chart a page sends is what Plotly's checking
    would have made of it. A heatmap's number arrays go to the browser as binary blocks, as Plotly
    sends them; every other trace's as plain lists (BINARY_TRACES). The house style is written in
    (`_styled`)."""
    sent = [_as_sent(trace, binary=trace.get("type") in BINARY_TRACES) for trace in traces]
    styled_traces, styled_layout = _styled(sent, _as_sent(layout, binary=False))
    return Chart({"data": styled_traces, "layout": styled_layout})


def _as_sent(spec, binary: bool):
    """A figure's dict as it is sent: without None values (an argument not given) and empty lists
    (no shapes, no notes), number arrays (numpy, torch) as binary blocks (`binary`) or plain lists;
    through nested dicts and lists of dicts, copied, so the builder's own dicts are left as they were."""
    if isinstance(spec, dict):
        return {key: _as_sent(value, binary) for key, value in spec.items()
                if value is not None and not (isinstance(value, (list, tuple)) and len(value) == 0)}
    if isinstance(spec, (list, tuple)) and spec and isinstance(spec[0], dict):
        return [_as_sent(item, binary) for item in spec]
    if hasattr(spec, "__array__") and not isinstance(spec, (str, bytes)):
        array = np.asarray(spec)
        if not array.ndim:
            return array.item()  # a numpy number: a number
        return to_typed_array_spec(array) if binary else array.tolist()
    return spec


def titled(text: str | None) -> dict | None:
    """A title as plotly.js reads it (for a figure, an axis, a colour bar); None for none."""
    return None if text is None else dict(text=text)


# --- margins worked out before drawing ---------------------------------------------------------------
CHAR_PX = 7  # a character of a 12-13 px label, a little wider than the course font's average
COLOUR_BAR_PX = 120  # a colour bar beside the plot: the bar, its tick labels ("−0.05") and its title
NUMBER_CHARS = 5  # a numeric tick label such as "−0.25" or "0.001"
TITLE_PX = 26  # an axis title and its standoff
EDGE_PX = 22  # between the tick labels and the figure's edge


def _text_width(labels) -> int:
    return max((len(str(label)) for label in labels), default=NUMBER_CHARS) * CHAR_PX


def _strings(values) -> list[str]:
    """The text labels among a trace's x or y (numeric arrays are base64 dicts in a figure's dict: none)."""
    return [v for v in values if isinstance(v, str)] if isinstance(values, (list, tuple)) else []


def _fitted_margin(spec: dict, plot_px: int) -> dict:
    """The margins a figure's dict (`Figure.to_dict()`) needs for its tick labels, axis titles,
    colour bars and a legend at the side; its own margins where they are wider, its top as it was."""
    layout, traces = spec["layout"], spec["data"]
    wanted = dict(l=0, r=0, b=0)
    for name in dict.fromkeys(["xaxis", "yaxis"] + [key for key in layout if key.startswith(("xaxis", "yaxis"))]):
        axis = layout.get(name, {})
        if axis.get("visible") is False or axis.get("showticklabels") is False:
            continue
        is_x, short = name.startswith("x"), name.replace("axis", "")  # "x2", "y"
        bound = [t for t in traces if t.get("xaxis" if is_x else "yaxis", name[0]) == short]
        labels = _strings(axis["ticktext"]) if axis.get("ticktext") else [
            v for t in bound for v in _strings(t.get("x" if is_x else "y"))]
        titled = bool((axis.get("title") or {}).get("text"))
        if is_x:
            width = _text_width(labels) if labels else NUMBER_CHARS * CHAR_PX
            low, high = axis.get("domain", (0.0, 1.0))  # a panel of several is as wide as its share of the plot
            upright = labels and width * len(set(labels)) > plot_px * (high - low)
            wanted["b"] = max(wanted["b"], EDGE_PX + (width if upright else 16) + TITLE_PX * titled)
            wanted["r"] = max(wanted["r"], 24)  # half of the last tick label stands right of the plot
        elif axis.get("side") != "right":
            wanted["l"] = max(wanted["l"], EDGE_PX + (_text_width(labels) if labels else NUMBER_CHARS * CHAR_PX)
                              + TITLE_PX * titled)
    if any(t.get("type") in ("heatmap", "contour") and t.get("showscale") is not False and not t.get("coloraxis")
           and t.get("colorbar", {}).get("x", 1) >= 1 for t in traces):
        wanted["r"] = COLOUR_BAR_PX
    named = [t["name"] for t in traces if t.get("name") and t.get("showlegend") is not False]
    if (len(named) > 1 or any(t.get("showlegend") for t in traces)) and layout.get("showlegend") is not False \
            and layout.get("legend", {}).get("orientation") != "h":
        wanted["r"] = max(wanted["r"], 64 + _text_width(named))
    margin = dict(layout.get("margin", {}))
    margin.update({side: max(margin.get(side) or 0, value) for side, value in wanted.items()})
    return margin


def finished(built: go.Figure, plot_px: int = 600) -> Chart:
    """Finish building a figure: widen its margins to hold what Plotly's automargin would push them
    out for (tick labels, axis titles, colour bars, a legend at the side), and make its dict once.
    A chart whose margins grow after its first drawing is drawn a second time; in lessons 4 and 5
    that was nearly every chart, about a quarter of a control's redraw time. Automargin stays on, so
    a short guess costs only that second drawing. Margins are only ever widened, the top never.
    A chart (`figure`) is finished in place and returned; any other Plotly figure as a new chart of
    its dict. Call it once, as the last step of building."""
    spec = built.to_dict()  # a chart's own dict; a go.Figure's copy
    spec["layout"]["margin"] = _fitted_margin(spec, plot_px)
    if isinstance(built, Chart):
        built._as_objects = None  # read again, with its margins
        return built
    return Chart(spec)


def guide_line(*, x: float | None = None, y: float | None = None, label: str = "", dash: str = "dash",
               colour: str = INK, label_x: float | None = None) -> tuple[dict, list[dict]]:
    """A labelled line across the plot at `x` (vertical) or at `y` (horizontal), for a layout's
    shapes and annotations: the shape, and its label's note (none without a label), as Plotly's
    add_vline / add_hline make them, about a tenth of their time (they check the whole layout at each call).
    A vertical line's label sits above the plot at `label_x` (on a log axis: log10 of x); a
    horizontal one's at the right end, above the line."""
    line = dict(type="line", line=dict(color=colour, dash=dash))
    if x is not None:
        line.update(x0=x, x1=x, xref="x", y0=0, y1=1, yref="y domain")
        note = dict(x=x if label_x is None else label_x, xref="x", y=1, yref="paper", xanchor="left",
                    yanchor="bottom", font=dict(size=12))
    else:
        line.update(x0=0, x1=1, xref="x domain", y0=y, y1=y, yref="y")
        note = dict(x=1, xref="x domain", y=y, yref="y", xanchor="right", yanchor="bottom")
    return line, [note | dict(text=label, showarrow=False)] if label else []
