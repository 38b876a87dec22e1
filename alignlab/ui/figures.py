"""Plotly figures from run histories, shared by the notebook widgets and the Gradio app.

A history is a list of a run's metric rows (see :mod:`alignlab.panels`, which picks the data);
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

Read at a glance: an axis whose points all sit at one value (a first probe point, a flat curve) spans
that value with a little room (:func:`axis_fit`) instead of plotly's width-2 window around it; other axes
autoscale as points arrive. The frontier's path reads in order: each point coloured by its step (dark
to light), the first and last steps written beside them (:func:`path_marks`); its axis titles say which
way is more reward and which is further from the reference. A KL below 0 (the estimate's noise on few
samples: the true KL is ≥ 0) says so in its hover text and in a note on the panel, over a visible zero
line (:func:`kl_notes`, :func:`kl_note`).

The drift panel (:data:`alignlab.panels.DRIFT_PANEL`) draws its curves like any curve panel and says under its title
whether each run is drifting, in the run's own numbers (:func:`verdict_text`, from :func:`alignlab.drift.verdict`):
red when it is trading the instruction or the reference's language for reward.
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Sequence

import plotly.colors
import plotly.graph_objects as go

from alignlab.drift import verdict
from alignlab.labels import metric_name
from alignlab.methods.base import Panel
from alignlab.metrics import KL_KEYS, PROBE_KL, PROBE_REWARD, SE_SUFFIX, is_se_key, se_key
from alignlab.panels import FRONTIER_PANEL, band, error_bars, frontier_points, series

HEIGHT = 280
LOOK = {"template": "plotly_white", "hovermode": "closest"}
WAITING = "waiting for the first logged step"
FRONTIER_KEYS = (PROBE_REWARD, PROBE_KL)  # what to log for a frontier (named when it is missing)
COLOURS = plotly.colors.qualitative.Plotly
DASHES = ("solid", "dot", "dash", "dashdot")
MARKERS_BELOW = 30  # a curve with fewer points marks each one
BAND_OPACITY = 0.15  # of the ±1.96·se band's fill, in its line's colour
ERROR_OPACITY = 0.4  # of the frontier's error bars, in its line's colour
STEP_COLOURS = "Viridis"  # the frontier's points, from a run's first probed step (dark) to its last (yellow)
FLAT_PAD = 0.1  # an axis whose points all sit at one value spans it ± this fraction of it,
FLAT_MIN_PAD = {"step": 1.0, "value": 0.05}  # or at least this much (a step axis, a value axis)
STEP_TICKS_UPTO = 10  # a step axis spanning at most this many steps gets a tick at each whole step
KL_HOVER = "<br>below 0: the estimate's noise on few samples (the true KL is ≥ 0)"
KEY_HOVER = "<span style='color:#888'>{key}</span>"  # a curve's metric key, as logged, under its value
KL_NOTE = "KL below 0 is the estimate's noise<br>on few samples: the true KL is ≥ 0"
VERDICT_COLOURS = {True: "#b00020", False: "#2e7d32"}  # the drift verdict: an alarm, steady
VERDICT_WIDTH = 80  # characters a verdict's line holds before it wraps
VERDICT_LINE = 16  # pixels a verdict's line takes under a panel's title


def axis_titles(panel: Panel) -> tuple[str, str]:
    """(x, y) axis titles of a panel: the frontier is reward against KL, a curve is a value against the step."""
    if panel.kind == "frontier":
        return "KL(policy ‖ reference): → further from the reference", "reward: ↑ more"
    if panel.kind == "drift":
        return "step", "× the reference's · share"
    return "step", ""


def verdict_text(panel: Panel, histories: dict[str, list[dict]], width: int = VERDICT_WIDTH) -> str:
    """The drift verdict of each run (:func:`alignlab.drift.verdict`) as HTML lines for a drift panel, each run's
    in red when it alarms (named by its run when several are shown); "" on another panel or before two probes."""
    if panel.kind != "drift":
        return ""
    lines = []
    for label, rows in histories.items():
        found = verdict(rows)
        if found is None:
            continue
        text = f"{label}: {found.text}" if len(histories) > 1 else found.text
        wrapped = "<br>".join(html.escape(line) for line in textwrap.wrap(text, width))
        lines.append(f"<span style='color:{VERDICT_COLOURS[found.alarm]}'>{wrapped}</span>")
    return "<br>".join(lines)


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
    lower edge back (:func:`alignlab.panels.band`). The frontier has error bars instead (:func:`line_errors`).
    """
    if panel.kind == "frontier":
        return []
    bands = []
    for key in panel.keys:
        steps, lower, upper = band(rows, key)
        if steps:
            bands.append((key, steps + steps[::-1], upper + lower[::-1]))
    return bands


def line_errors(panel: Panel, rows: list[dict], colour: str | None = None) -> dict:
    """``go.Scatter`` error-bar keywords of one run's frontier line: ±1.96·se of KL (x) and of reward (y)
    where the probe logged them ({} on curves and on frontiers without standard errors); drawn in the line's
    ``colour``, faint, so the path stays the first thing read."""
    if panel.kind != "frontier":
        return {}
    points = frontier_points(rows)
    bars = {}
    for axis, field in (("error_x", "kl"), ("error_y", "reward")):
        half_widths = error_bars(points, field)
        if half_widths is not None:
            bars[axis] = {"type": "data", "array": half_widths, "thickness": 1, "width": 3}
            if colour:
                bars[axis]["color"] = faint(colour, ERROR_OPACITY)
    return bars


def key_style(panel: Panel, key: str) -> tuple[str, str]:
    """(colour, dash) of ``key`` within ``panel``: its position picks both."""
    position = panel.keys.index(key)
    return COLOURS[position % len(COLOURS)], DASHES[position % len(DASHES)]


def line_mode(panel: Panel, points: int) -> str:
    """Markers (and step labels) on the frontier, markers on short curves; plain lines on long curves."""
    if panel.kind == "frontier":
        return "lines+markers+text"
    return "lines" if points >= MARKERS_BELOW else "lines+markers"


def shows_kl(panel: Panel, key: str) -> bool:
    """Whether ``key``'s line on ``panel`` draws a KL: the frontier's x, a KL key's y."""
    return panel.kind == "frontier" or key in KL_KEYS


def kl_notes(panel: Panel, key: str, x: list, y: list) -> dict:
    """``go.Scatter`` keywords of one line's hover notes: ``hovertext`` per point, :data:`KL_HOVER` where its KL is
    below 0 ({} for a line that draws no KL)."""
    if not shows_kl(panel, key):
        return {}
    return {"hovertext": [KL_HOVER if value < 0 else "" for value in (x if panel.kind == "frontier" else y)]}


def path_marks(panel: Panel, steps: list[int], colour: str) -> dict:
    """``go.Scatter`` keywords that make one run's frontier path read in order ({} on curves): each point coloured by
    its step on :data:`STEP_COLOURS` and outlined in the run's ``colour``, and the first and last steps written
    beside their points. (No arrow heads: plotly's ``angleref="previous"`` leaves the first point undrawn.)"""
    if panel.kind != "frontier" or not steps:
        return {}
    labels = [""] * len(steps)
    labels[0], labels[-1] = f"step {steps[0]}", f"step {steps[-1]}"
    marker = dict(color=list(steps), colorscale=STEP_COLOURS, cmin=steps[0], cmax=max(steps[-1], steps[0] + 1),
                  size=10, line={"color": colour, "width": 1.5})
    return dict(marker=marker, text=labels, textposition="top center", textfont={"size": 10, "color": "#555"})


def line_style(panel: Panel, key: str, run_index: int, label: str, overlay: bool, points: int = 0) -> dict:
    """``go.Scatter`` keywords of one run's line for ``key`` on ``panel``: name, mode, colour, dash, hover.

    Overlaid (several runs) a line is named by its run (and key, on a panel of several keys), coloured
    by its run and dashed by its key; alone it is named and coloured by its key. A key is named for people
    (:func:`alignlab.labels.metric_name`: ``rewards/chosen`` is the "chosen reward"), and a curve's hover
    shows the key itself too. ``points`` picks the mode.
    """
    frontier = panel.kind == "frontier"
    colour, dash = key_style(panel, key)
    if overlay:
        name = label if frontier or len(panel.keys) == 1 else f"{label} · {metric_name(key)}"
        colour, dash = COLOURS[run_index % len(COLOURS)], "solid" if frontier else dash
    else:
        name, dash = ("reward vs KL" if frontier else metric_name(key)), "solid"
    if frontier:
        hover = "step %{customdata}<br>KL %{x:.4g}<br>reward %{y:.4g}"
    else:
        hover = "step %{x}: %{y:.4g}<br>" + KEY_HOVER.format(key=key)
    hover += "%{hovertext}" if shows_kl(panel, key) else ""
    return dict(name=name, mode=line_mode(panel, points), line={"color": colour, "dash": dash},
                hovertemplate=f"{name}<br>{hover}<extra></extra>", legendgroup=label)


def faint(colour: str, opacity: float) -> str:
    """A ``#rrggbb`` colour as ``rgba(...)`` at ``opacity``.

    >>> faint("#636efa", 0.15)
    'rgba(99, 110, 250, 0.15)'
    """
    red, green, blue = plotly.colors.hex_to_rgb(colour)
    return f"rgba({red}, {green}, {blue}, {opacity})"


def band_style(panel: Panel, key: str, run_index: int, label: str, overlay: bool) -> dict:
    """``go.Scatter`` keywords of the band under one run's line for ``key``: the line's colour, faint,
    with no outline, no hover and no legend entry of its own."""
    line = line_style(panel, key, run_index, label, overlay)
    return dict(name=f"{line['name']} ± 1.96·se", mode="lines", fill="toself",
                fillcolor=faint(line["line"]["color"], BAND_OPACITY), line={"width": 0},
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
    for key, x, y, steps in panel_lines(panel, rows):
        style = line_style(panel, key, run_index, label, overlay, len(x))
        errors = line_errors(panel, rows, style["line"]["color"])
        traces.append((key, dict(x=x, y=y, customdata=steps, **style, **errors, **kl_notes(panel, key, x, y),
                                 **path_marks(panel, steps, style["line"]["color"]))))
    return traces


def flat_range(values: list[float], least: float, ends: Sequence[float] = ()) -> list[float] | None:
    """``[low, high]`` around points ``values`` that all sit at one value (plotly would draw a window of width 2
    around it, −1…1 for 0, or one a few millionths wide when its error bars are): ± :data:`FLAT_PAD` of it, at
    least ``least``, and wide enough for the ``ends`` of its error bars and bands with a little room. None when
    the points spread (plotly's autorange fits them) or there are none.

    >>> flat_range([2.0], 0.05), flat_range([0.0, 0.0], 0.05), flat_range([0.1, 0.2], 0.05)
    ([1.8, 2.2], [-0.05, 0.05], None)
    >>> flat_range([0.0], 0.05, ends=[-1e-6, 1e-6]), flat_range([0.0], 0.05, ends=[-0.1, 0.1])
    ([-0.05, 0.05], [-0.11, 0.11])
    """
    if not values or max(values) > min(values):
        return None
    pad = max(abs(values[0]) * FLAT_PAD, least)
    low, high = min([values[0] - pad, *ends]), max([values[0] + pad, *ends])
    room = FLAT_PAD / 2 * (high - low) if low < values[0] - pad or high > values[0] + pad else 0.0
    return [round(low - room, 12), round(high + room, 12)]


def extents(traces, axis: str) -> tuple[list[float], list[float]]:
    """``(points, ends)`` the traces (``go.Scatter``) put on ``axis`` ("x" or "y"): the lines' points, and the ends
    of their error bars and the edges of bands (traces filled ``toself``)."""
    points: list[float] = []
    ends: list[float] = []
    for trace in traces:
        values = [value for value in (getattr(trace, axis) or ()) if value is not None]
        if trace.fill == "toself":
            ends += values
            continue
        points += values
        bars = getattr(trace, f"error_{axis}").array
        for value, width in zip(values, bars or ()):
            ends += [value - width, value + width] if width else []
    return points, ends


def negative_kl(traces) -> bool:
    """Whether a KL point of the traces is below 0 (its hover note says so: :func:`kl_notes`)."""
    return any(KL_HOVER in (trace.hovertext or ()) for trace in traces)


def step_ticks(steps: list[float]) -> dict:
    """Layout updates of a step axis for ``steps``: a tick at every whole step while they span at most
    :data:`STEP_TICKS_UPTO` (where plotly would write 1.2 and 1.4), plotly's own ticks on longer runs (whole
    steps there too).

    >>> step_ticks([1, 2]), step_ticks([0, 40])
    ({'tickmode': 'linear', 'tick0': 0, 'dtick': 1}, {'tickmode': 'auto'})
    """
    if steps and max(steps) - min(steps) > STEP_TICKS_UPTO:
        return {"tickmode": "auto"}
    return {"tickmode": "linear", "tick0": 0, "dtick": 1}


def axis_fit(panel: Panel, traces) -> tuple[dict, dict]:
    """Layout updates of the (x, y) axes of ``panel`` for the ``traces`` drawn on it: a padded range
    (:func:`flat_range`) for an axis whose points all sit at one value, plotly's autorange for the others (so
    they follow new points), whole-step ticks on a curve's step axis (:func:`step_ticks`), and a visible zero line
    on the KL axis once a KL point is below 0. A step axis starts at most half a step before step 0."""
    fits = []
    for axis in ("x", "y"):
        steps = axis == "x" and panel.kind != "frontier"
        points, ends = extents(traces, axis)
        span = flat_range(points, FLAT_MIN_PAD["step" if steps else "value"], ends)
        if steps and span and span[0] < -0.5:  # a first point at step 0: not a window from step −1
            span = [-0.5, 2 * points[0] + 0.5]
        fits.append({"range": span, "autorange": span is None, **(step_ticks(points) if steps else {})})
    if negative_kl(traces):
        fits[0 if panel.kind == "frontier" else 1].update(zeroline=True, zerolinecolor="#888", zerolinewidth=1)
    return fits[0], fits[1]


def kl_note(name: str = "kl-note", **where) -> dict:
    """``add_annotation`` keywords of the note that a KL below 0 is the estimate's noise: inside the plot's bottom
    right corner (``where``: its ``xref`` and ``yref``, the whole plot's by default)."""
    return dict(text=KL_NOTE, name=name, showarrow=False, x=1, y=0, xanchor="right", yanchor="bottom", align="right",
                font={"size": 10, "color": "#555"}, bgcolor="rgba(255, 255, 255, 0.85)",
                **{"xref": "paper", "yref": "paper", **where})


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
    said = verdict_text(panel, histories)
    extra = VERDICT_LINE * (said.count("<br>") + 1) + 4 if said else 0  # the verdict's lines, under the title
    title = {"text": panel.title, "x": 0.02, "font": {"size": 14}}
    if said:  # hung from the top, so its lines grow down into the room made for them, not over the plot
        title.update(text=f"{panel.title}<br><span style='font-size:11px'>{said}</span>", y=1, yref="container",
                     yanchor="top", pad={"t": 10})
    figure.update_layout(
        **LOOK, title=title, height=HEIGHT + extra,
        margin={"l": 50, "r": 10, "t": 40 + extra, "b": 40}, xaxis_title=x_title, yaxis_title=y_title,
        legend={"orientation": "h", "yanchor": "top", "y": -0.2, "x": 0, "font": {"size": 10}},
        showlegend=lines > 1 or (overlay and bool(lines)),
    )
    x_fit, y_fit = axis_fit(panel, figure.data)
    figure.update_xaxes(**x_fit)
    figure.update_yaxes(**y_fit)
    if negative_kl(figure.data):
        figure.add_annotation(**kl_note())
    if panel.kind == "frontier" and lines == 1 and len(figure.data[-1].x) > 1:  # one run: its steps' colour scale
        figure.data[-1].marker.update(showscale=True, colorbar={"title": {"text": "step"}, "thickness": 10})
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
    """One figure per panel, in order (the panels of :func:`alignlab.panels.visible_panels`): the frontier's
    (:func:`frontier_figure`) for the frontier panel, curves (as :func:`curves_figure` draws them) for the others,
    the drift panel's with its verdict."""
    return [frontier_figure(histories) if panel.kind == "frontier" else
            panel_figure(panel, histories, overlay=len(histories) > 1) for panel in panels]
