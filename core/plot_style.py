"""The one look every figure of the course shares: a Plotly template named "glassbox".

Importing this module registers the template and makes it Plotly's default, so every figure built
in `core` (figures, diagrams) carries it. The pages draw figures with Streamlit's own theme switched
off (`course_ui.show_figure`), so what is set here is what the student sees: one font, one ink, one
set of colour scales, titled colour bars, the same margins. The template is small on purpose: it is
sent with every figure, and Plotly's built-in ones weigh about 7 kB each.
"""
from __future__ import annotations

import plotly.graph_objects as go
import plotly.io as pio

FONT = '"Source Sans", "Source Sans Pro", sans-serif'  # the app's own font (Streamlit serves it)
INK = "#31333F"  # Streamlit's text colour on the light theme (.streamlit/config.toml)
GRID = "#e5e7eb"
SEQUENTIAL = "Blues"  # weights, probabilities: 0 is white, readable by colour-blind students
DIVERGING = "RdBu_r"  # signed values around 0: blue below, red above
COLOURS = ["#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"]

_AXIS = dict(gridcolor=GRID, zerolinecolor="#d1d5db", linecolor="#d1d5db", automargin=True,
             title=dict(standoff=8), tickfont=dict(size=12))
_COLOUR_BAR = dict(title=dict(side="right"), outlinewidth=0, thickness=14)

GLASSBOX = go.layout.Template(
    layout=dict(
        font=dict(family=FONT, size=13, color=INK),
        title=dict(font=dict(size=16), x=0, xanchor="left", xref="paper"),
        paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)",
        colorway=COLOURS, margin=dict(l=10, r=10, t=40, b=10),
        xaxis=_AXIS, yaxis=_AXIS,
        colorscale=dict(sequential=SEQUENTIAL, diverging=DIVERGING),
        coloraxis=dict(colorbar=_COLOUR_BAR),
        hoverlabel=dict(font=dict(family=FONT, size=13, color=INK), bgcolor="white", bordercolor="#9ca3af"),
        legend=dict(font=dict(size=12)),
        hovermode="closest",
    ),
    data=dict(heatmap=[go.Heatmap(colorbar=_COLOUR_BAR)]),
)

pio.templates["glassbox"] = GLASSBOX
pio.templates.default = "glassbox"


# --- margins worked out before drawing ---------------------------------------------------------------
CHAR_PX = 7  # a character of a 12-13 px label, a little wider than the course font's average
COLOUR_BAR_PX = 110  # a colour bar beside the plot: the bar, its tick labels and its title
NUMBER_CHARS = 5  # a numeric tick label such as "−0.25" or "0.001"
TITLE_PX = 26  # an axis title and its standoff
EDGE_PX = 22  # between the tick labels and the figure's edge


def _text_width(labels) -> int:
    return max((len(str(label)) for label in labels), default=NUMBER_CHARS) * CHAR_PX


def fit_margins(figure: go.Figure, plot_px: int = 600) -> go.Figure:
    """Widen a figure's margins to hold what Plotly's automargin would push them out for: tick
    labels, axis titles, colour bars and a legend at the side. A chart whose margins grow after its
    first drawing is drawn a second time; in lessons 4 and 5 that was nearly every chart, about a
    quarter of a control's redraw time. Automargin stays on, so a short guess costs only that second
    drawing. Margins are only ever widened. Returns the figure (changed in place: call it while
    building, never on a shared figure)."""
    layout, traces = figure.layout, figure.data
    wanted = dict(l=0, r=0, b=0)
    for name in [key for key in layout if key.startswith(("xaxis", "yaxis"))] or ["xaxis", "yaxis"]:
        axis = layout[name]
        if axis.visible is False or axis.showticklabels is False:
            continue
        is_x, short = name.startswith("x"), name.replace("axis", "")  # "x2", "y"
        bound = [t for t in traces if (getattr(t, "xaxis" if is_x else "yaxis", None) or name[0]) == short]
        labels = list(axis.ticktext) if axis.ticktext else [
            v for t in bound for v in (getattr(t, "x" if is_x else "y", None) or ()) if isinstance(v, str)]
        titled = bool(axis.title and axis.title.text)
        if is_x:
            width = _text_width(labels) if labels else NUMBER_CHARS * CHAR_PX
            upright = labels and width * len(set(labels)) > plot_px
            wanted["b"] = max(wanted["b"], EDGE_PX + (width if upright else 16) + TITLE_PX * titled)
            wanted["r"] = max(wanted["r"], 24)  # half of the last tick label stands right of the plot
        elif axis.side != "right":
            wanted["l"] = max(wanted["l"], EDGE_PX + (_text_width(labels) if labels else NUMBER_CHARS * CHAR_PX)
                              + TITLE_PX * titled)
    if any(t.type in ("heatmap", "contour") and t.showscale is not False and not getattr(t, "coloraxis", None)
           and (t.colorbar.x is None or t.colorbar.x >= 1) for t in traces):
        wanted["r"] = COLOUR_BAR_PX
    named = [t.name for t in traces if t.name and t.showlegend is not False]
    if (len(named) > 1 or any(t.showlegend for t in traces)) and layout.showlegend is not False \
            and layout.legend.orientation != "h":
        wanted["r"] = max(wanted["r"], 64 + _text_width(named))
    margin = layout.margin
    margin.update({side: max(getattr(margin, side) or 0, value) for side, value in wanted.items()})  # the top as it was
    return figure
