"""Plotly figures from run histories, shared by the notebook widgets and the Gradio app.

A history is a list of a run's metric rows (see :mod:`alignlab.plots`, which picks the data);
this module decides how it looks, once for both front ends: the lines a run draws on a panel
(:func:`panel_lines`), each line's name, colour, dash, markers and hover text (:func:`line_style`), the
axis titles and the template. The Gradio app shows one figure per panel (:func:`curves_figure`,
:func:`frontier_figure`, :func:`panel_figures`, redrawn on a timer); the notebook puts every panel
in one subplot grid (:mod:`alignlab.ui.notebook.grid`) built from the same parts, and adds points to
its lines in place as runs log them.

Colours: one run alone gets a colour per metric key; runs overlaid get a colour per run and a dash
per key. A curve whose rows also log its standard error (``probe/reward`` with ``probe/reward_se``)
sits on a faint band of mean ± 1.96·se in its own colour (:func:`panel_bands`, drawn under the lines,
without hover or legend entry); the frontier's points get error bars of the same width
(:func:`line_errors`). An empty history gives a valid empty figure that says it is waiting for the
first logged step; a history without the figure's keys says which keys are missing.
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.colors
import plotly.graph_objects as go

from alignlab.methods.base import Panel
from alignlab.metrics import SE_SUFFIX, is_se_key, se_key
from alignlab.plots import FRONTIER_PANEL, band, error_bars, frontier_points, series

HEIGHT = 280
LOOK = {"template": "plotly_white", "hovermode": "closest"}
WAITING = "waiting for the first logged step"
FRONTIER_KEYS = ("probe/reward", "probe/kl")  # what to log for a frontier (named when it is missing)
COLOURS = plotly.colors.qualitative.Plotly
DASHES = ("solid", "dot", "dash", "dashdot")
MARKERS_BELOW = 30  # a curve with fewer points marks each one
BAND_OPACITY = 0.15  # of the ±1.96·se band's fill, in its line's colour


def axis_titles(panel: Panel) -> tuple[str, str]:
    """(x, y) axis titles of a panel: the frontier is reward against KL, a curve is a value against the step."""
    return ("KL(policy ‖ reference)", "reward") if panel.kind == "frontier" else ("step", "")


def panel_lines(panel: Panel, rows: list[dict]) -> list[tuple[str, list, list, list | None]]:
    """``(key, x, y, customdata)`` of each line one run's ``rows`` draw on ``panel`` (keys without points left out).

    Curves are a key's value against the step; the frontier is one line of reward against KL, with
    the step as customdata.
    """
    if panel.kind == "frontier":
        points = frontier_points(rows)
        lines = [(panel.keys[0], [p["kl"] for p in points], [p["reward"] for p in points], [p["step"] for p in points])]
    else:
        lines = [(key, *series(rows, key), None) for key in panel.keys]
    return [line for line in lines if line[1]]


def panel_bands(panel: Panel, rows: list[dict]) -> list[tuple[str, list, list]]:
    """``(key, x, y)`` of the ±1.96·se band under each curve of ``panel`` whose rows log ``key``'s standard error.

    The band is one closed outline for ``fill="toself"``: the upper edge left to right, then the
    lower edge back (:func:`alignlab.plots.band`). The frontier has error bars instead (:func:`line_errors`).
    """
    if panel.kind == "frontier":
        return []
    bands = []
    for key in panel.keys:
        steps, lower, upper = band(rows, key)
        if steps:
            bands.append((key, steps + steps[::-1], upper + lower[::-1]))
    return bands


def line_errors(panel: Panel, rows: list[dict]) -> dict:
    """``go.Scatter`` error-bar keywords of one run's frontier line: ±1.96·se of KL (x) and of reward (y)
    where the probe logged them ({} on curves and on frontiers without standard errors)."""
    if panel.kind != "frontier":
        return {}
    points = frontier_points(rows)
    bars = {}
    for axis, field in (("error_x", "kl"), ("error_y", "reward")):
        half_widths = error_bars(points, field)
        if half_widths is not None:
            bars[axis] = {"type": "data", "array": half_widths, "thickness": 1, "width": 3}
    return bars


def key_style(panel: Panel, key: str) -> tuple[str, str]:
    """(colour, dash) of ``key`` within ``panel``: its position picks both."""
    position = panel.keys.index(key)
    return COLOURS[position % len(COLOURS)], DASHES[position % len(DASHES)]


def line_mode(panel: Panel, points: int) -> str:
    """Markers on the frontier and on short curves; plain lines on long curves."""
    return "lines" if panel.kind != "frontier" and points >= MARKERS_BELOW else "lines+markers"


def line_style(panel: Panel, key: str, run_index: int, label: str, overlay: bool, points: int = 0) -> dict:
    """``go.Scatter`` keywords of one run's line for ``key`` on ``panel``: name, mode, colour, dash, hover.

    Overlaid (several runs) a line is named by its run (and key, on a panel of several keys), coloured
    by its run and dashed by its key; alone it is named and coloured by its key. ``points`` picks the mode.
    """
    frontier = panel.kind == "frontier"
    colour, dash = key_style(panel, key)
    if overlay:
        name = label if frontier or len(panel.keys) == 1 else f"{label} · {key}"
        colour, dash = COLOURS[run_index % len(COLOURS)], "solid" if frontier else dash
    else:
        name, dash = ("reward vs KL" if frontier else key), "solid"
    hover = "step %{customdata}<br>KL %{x:.4g}<br>reward %{y:.4g}" if frontier else "step %{x}: %{y:.4g}"
    return dict(name=name, mode=line_mode(panel, points), line={"color": colour, "dash": dash},
                hovertemplate=f"{name}<br>{hover}<extra></extra>", legendgroup=label)


def band_style(panel: Panel, key: str, run_index: int, label: str, overlay: bool) -> dict:
    """``go.Scatter`` keywords of the band under one run's line for ``key``: the line's colour, faint,
    with no outline, no hover and no legend entry of its own."""
    line = line_style(panel, key, run_index, label, overlay)
    red, green, blue = plotly.colors.hex_to_rgb(line["line"]["color"])
    return dict(name=f"{line['name']} ± 1.96·se", mode="lines", fill="toself",
                fillcolor=f"rgba({red}, {green}, {blue}, {BAND_OPACITY})", line={"width": 0},
                hoverinfo="skip", showlegend=False, legendgroup=label)


def style_for(panel: Panel, key: str, run_index: int, label: str, overlay: bool, points: int = 0) -> dict:
    """The style of one run's trace for ``key`` on ``panel``: a band for a standard-error key
    (:func:`band_style` of its mean's line), else a line (:func:`line_style`)."""
    if is_se_key(key):
        return band_style(panel, key[: -len(SE_SUFFIX)], run_index, label, overlay)
    return line_style(panel, key, run_index, label, overlay, points)


def run_traces(panel: Panel, rows: list[dict], run_index: int, label: str, overlay: bool) -> list[tuple[str, dict]]:
    """``(key, go.Scatter keywords)`` of every trace one run draws on ``panel``: its bands first, keyed
    ``<key>_se`` (so the lines sit on top), then its lines, the frontier's with its error bars."""
    traces = [(se_key(key), dict(x=x, y=y, **band_style(panel, key, run_index, label, overlay)))
              for key, x, y in panel_bands(panel, rows)]
    errors = line_errors(panel, rows)
    traces += [(key, dict(x=x, y=y, customdata=steps, **line_style(panel, key, run_index, label, overlay, len(x)),
                          **errors)) for key, x, y, steps in panel_lines(panel, rows)]
    return traces


def _missing(keys: Sequence[str]) -> str:
    """The note on a figure whose runs have logged steps, none with these keys."""
    hint = "<br>(the probe logs reward and KL: set probe_every)" if any(k.startswith("probe/") for k in keys) else ""
    return f"no {', '.join(keys)} logged yet{hint}"


def panel_figure(panel: Panel, histories: dict[str, list[dict]], overlay: bool) -> go.Figure:
    """One panel as a figure of its own: every run's lines (run label -> metric rows), titled, with a note when
    empty."""
    figure = go.Figure()
    lines = 0
    for run_index, (label, rows) in enumerate(histories.items()):
        for key, trace in run_traces(panel, rows, run_index, label, overlay):
            figure.add_scatter(**trace)
            lines += not is_se_key(key)
    x_title, y_title = axis_titles(panel)
    figure.update_layout(
        **LOOK, title={"text": panel.title, "x": 0.02, "font": {"size": 14}}, height=HEIGHT,
        margin={"l": 50, "r": 10, "t": 40, "b": 40}, xaxis_title=x_title, yaxis_title=y_title,
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0, "font": {"size": 10}},
        showlegend=lines > 1 or (overlay and bool(lines)),
    )
    if not figure.data:
        keys = FRONTIER_KEYS if panel.kind == "frontier" else panel.keys
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


def panel_figures(panels: Sequence[Panel], histories: dict[str, list[dict]]) -> list[go.Figure]:
    """One figure per panel, in order (the panels of :func:`alignlab.plots.visible_panels`): the frontier's
    (:func:`frontier_figure`) for the frontier panel, a :func:`curves_figure` for each curve panel."""
    return [frontier_figure(histories) if panel.kind == "frontier" else
            curves_figure(histories, panel.keys, panel.title) for panel in panels]
