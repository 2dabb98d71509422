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
        hoverlabel=dict(font=dict(family=FONT, size=13), bgcolor="white", bordercolor="#9ca3af"),
        legend=dict(font=dict(size=12)),
        hovermode="closest",
    ),
    data=dict(heatmap=[go.Heatmap(colorbar=_COLOUR_BAR)]),
)

pio.templates["glassbox"] = GLASSBOX
pio.templates.default = "glassbox"
