"""Plotly figures from run histories, shared by the notebook widgets and the Gradio app.

A history is a list of ``metrics.jsonl`` rows (see :mod:`alignlab.plots`, which picks the data);
this module decides how it looks, once for both front ends: the lines a run draws on a panel
(:func:`panel_lines`), each line's name, colour, dash, markers and hover text (:func:`line_style`), the
axis titles and the template. The Gradio app shows one figure per panel (:func:`curves_figure`,
:func:`frontier_figure`, :func:`method_figures`, redrawn on a timer); the notebook puts every panel
in one subplot grid (:mod:`alignlab.ui.notebook.grid`) built from the same parts, and adds points to
its lines in place as runs log them.

Colours: one run alone gets a colour per metric key; runs overlaid get a colour per run and a dash
per key. An empty history gives a valid empty figure that says it is waiting for the first logged
step; a history without the figure's keys says which keys are missing.
"""

from __future__ import annotations

from typing import Sequence

import plotly.colors
import plotly.graph_objects as go

from alignlab.methods.base import Panel
from alignlab.plots import frontier_points, panels_for, series

HEIGHT = 280
LOOK = {"template": "plotly_white", "hovermode": "closest"}
WAITING = "waiting for the first logged step"
FRONTIER = "Reward vs KL from reference"  # the frontier panel's title, and the key of its one line per run
FRONTIER_PANEL = Panel(FRONTIER, (FRONTIER,))
FRONTIER_KEYS = ("probe/reward", "probe/kl")  # what to log for a frontier (named when it is missing)
COLOURS = plotly.colors.qualitative.Plotly
DASHES = ("solid", "dot", "dash", "dashdot")
MARKERS_BELOW = 30  # a curve with fewer points marks each one


def axis_titles(panel: Panel) -> tuple[str, str]:
    """(x, y) axis titles of a panel: the frontier is reward against KL, a curve is a value against the step."""
    return ("KL(policy ‖ reference)", "reward") if panel.title == FRONTIER else ("step", "")


def panel_lines(panel: Panel, rows: list[dict]) -> list[tuple[str, list, list, list | None]]:
    """``(key, x, y, customdata)`` of each line one run's ``rows`` draw on ``panel`` (keys without points left out).

    Curves are a key's value against the step; the frontier is one line of reward against KL, with
    the step as customdata.
    """
    if panel.title == FRONTIER:
        points = frontier_points(rows)
        lines = [(FRONTIER, [p["kl"] for p in points], [p["reward"] for p in points], [p["step"] for p in points])]
    else:
        lines = [(key, *series(rows, key), None) for key in panel.keys]
    return [line for line in lines if line[1]]


def key_style(panel: Panel, key: str) -> tuple[str, str]:
    """(colour, dash) of ``key`` within ``panel``: its position picks both."""
    position = panel.keys.index(key)
    return COLOURS[position % len(COLOURS)], DASHES[position % len(DASHES)]


def line_mode(panel: Panel, points: int) -> str:
    """Markers on the frontier and on short curves; plain lines on long curves."""
    return "lines" if panel.title != FRONTIER and points >= MARKERS_BELOW else "lines+markers"


def line_style(panel: Panel, key: str, run_index: int, label: str, overlay: bool, points: int = 0) -> dict:
    """``go.Scatter`` keywords of one run's line for ``key`` on ``panel``: name, mode, colour, dash, hover.

    Overlaid (several runs) a line is named by its run (and key, on a panel of several keys), coloured
    by its run and dashed by its key; alone it is named and coloured by its key. ``points`` picks the mode.
    """
    frontier = panel.title == FRONTIER
    colour, dash = key_style(panel, key)
    if overlay:
        name = label if frontier or len(panel.keys) == 1 else f"{label} · {key}"
        colour, dash = COLOURS[run_index % len(COLOURS)], "solid" if frontier else dash
    else:
        name, dash = ("reward vs KL" if frontier else key), "solid"
    hover = "step %{customdata}<br>KL %{x:.4g}<br>reward %{y:.4g}" if frontier else "step %{x}: %{y:.4g}"
    return dict(name=name, mode=line_mode(panel, points), line={"color": colour, "dash": dash},
                hovertemplate=f"{name}<br>{hover}<extra></extra>", legendgroup=label)


def _missing(keys: Sequence[str]) -> str:
    """The note on a figure whose runs have logged steps, none with these keys."""
    hint = "<br>(the probe logs reward and KL: set probe_every)" if any(k.startswith("probe/") for k in keys) else ""
    return f"no {', '.join(keys)} logged yet{hint}"


def panel_figure(panel: Panel, histories: dict[str, list[dict]], overlay: bool) -> go.Figure:
    """One panel as a figure of its own: every run's lines (run label -> metric rows), titled, with a note when empty."""
    figure = go.Figure()
    for run_index, (label, rows) in enumerate(histories.items()):
        for key, x, y, steps in panel_lines(panel, rows):
            figure.add_scatter(x=x, y=y, customdata=steps, **line_style(panel, key, run_index, label, overlay, len(x)))
    x_title, y_title = axis_titles(panel)
    figure.update_layout(
        **LOOK, title={"text": panel.title, "x": 0.02, "font": {"size": 14}}, height=HEIGHT,
        margin={"l": 50, "r": 10, "t": 40, "b": 40}, xaxis_title=x_title, yaxis_title=y_title,
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0, "font": {"size": 10}},
        showlegend=len(figure.data) > 1 or (overlay and bool(figure.data)),
    )
    if not figure.data:
        keys = FRONTIER_KEYS if panel.title == FRONTIER else panel.keys
        figure.add_annotation(text=_missing(keys) if any(histories.values()) else WAITING, showarrow=False,
                              xref="paper", yref="paper", x=0.5, y=0.5, font={"size": 13, "color": "#888"})
        figure.update_xaxes(showticklabels=False)
        figure.update_yaxes(showticklabels=False)
    return figure


def curves_figure(histories: dict[str, list[dict]], keys: Sequence[str], title: str) -> go.Figure:
    """One line per (run label, metric key) that has data, against the training step.

    The legend names the run when there are several runs and the key when there are several keys.
    """
    return panel_figure(Panel(title, tuple(keys)), histories, overlay=len(histories) > 1)


def frontier_figure(runs: dict[str, list[dict]]) -> go.Figure:
    """Reward (y) against KL from the reference (x), one line with markers per run; hover shows the step.

    Up and to the left is better: more reward for less drift (the DPO paper's Fig. 2).
    """
    return panel_figure(FRONTIER_PANEL, runs, overlay=True)


def method_figures(method: str, histories: dict[str, list[dict]]) -> dict[str, go.Figure]:
    """Title -> figure, one per plot panel of ``method`` (see :func:`alignlab.plots.panels_for`)."""
    return {panel.title: curves_figure(histories, panel.keys, panel.title) for panel in panels_for(method)}
