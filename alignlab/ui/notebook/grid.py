"""Every plot panel of a run (or several) in one plotly figure: a grid of subplots, two to a row.

The notebook draws one ``FigureWidget`` per view rather than one per panel: each widget makes the
browser load plotly's whole bundle again (see :mod:`alignlab.ui.notebook.figure_widget`). The
panels are :func:`alignlab.plots.panels_for` of the methods shown, then the reward-vs-KL frontier.

Colours: one run alone gets a colour per metric key within a panel, named in the subplot title; runs
overlaid get a colour per run (named in the legend) and a line style per key (named in the title).
Titles list only the keys that have points. Pure functions: histories in, ``go.Figure`` out;
:class:`~alignlab.ui.notebook.live.LiveFigures` adds points to the same traces as runs log them.
"""

from __future__ import annotations

import html
import math
from typing import Iterable

import plotly.colors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from alignlab.methods.base import Panel
from alignlab.plots import frontier_points, panels_for, series

FRONTIER = "Reward vs KL from reference"
COLUMNS = 2
ROW_HEIGHT = 250
COLOURS = plotly.colors.qualitative.Plotly
DASHES = ("solid", "dot", "dash", "dashdot")
DASH_MARKS = {"solid": "—", "dot": "┈", "dash": "╌", "dashdot": "-·"}


def panels_of(methods: Iterable[str]) -> list[Panel]:
    """Panels of several methods merged by title (keys united, first appearance order kept), then the frontier."""
    merged: dict[str, list[str]] = {}
    for method in methods:
        for panel in panels_for(method):
            keys = merged.setdefault(panel.title, [])
            keys.extend(key for key in panel.keys if key not in keys)
    return [Panel(title, tuple(keys)) for title, keys in merged.items()] + [Panel(FRONTIER, (FRONTIER,))]


def short_name(key: str, keys: Iterable[str]) -> str:
    """``key`` without its prefix (``rewards/chosen`` -> ``chosen``) unless another key ends the same."""
    short = key.rsplit("/", 1)[-1]
    return short if sum(other.rsplit("/", 1)[-1] == short for other in keys) == 1 else key


def key_style(panel: Panel, key: str) -> tuple[str, str]:
    """(colour, dash) of ``key`` within ``panel``: its position picks both."""
    position = panel.keys.index(key)
    return COLOURS[position % len(COLOURS)], DASHES[position % len(DASHES)]


def subplot_title(panel: Panel, drawn: Iterable[str], overlay: bool) -> str:
    """The panel's title, and which line is which when it draws several keys."""
    drawn = [key for key in panel.keys if key in set(drawn)]
    if len(drawn) < 2 or panel.title == FRONTIER:
        return panel.title if len(drawn) != 1 or len(panel.keys) == 1 else f"{panel.title}: {drawn[0]}"
    names = []
    for key in drawn:
        colour, dash = key_style(panel, key)
        name = html.escape(short_name(key, drawn))
        names.append(f"{name} {DASH_MARKS[dash]}" if overlay else f"<span style='color:{colour}'>{name}</span>")
    return f"{panel.title}: {'  '.join(names)}"


def axes_of(index: int) -> dict[str, str]:
    """Trace axis references of the ``index``-th subplot (0-based, row-major)."""
    suffix = "" if index == 0 else str(index + 1)
    return {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}


def empty_grid(panels: list[Panel], overlay: bool = False) -> go.Figure:
    """The grid with titled, empty subplots (the last cell left out when the count is odd)."""
    rows = math.ceil(len(panels) / COLUMNS)
    specs = [[{} if row * COLUMNS + col < len(panels) else None for col in range(COLUMNS)] for row in range(rows)]
    figure = make_subplots(rows=rows, cols=COLUMNS, specs=specs, subplot_titles=[p.title for p in panels],
                           vertical_spacing=min(0.3 / rows, 0.12), horizontal_spacing=0.08)
    figure.update_layout(template="plotly_white", height=ROW_HEIGHT * rows + 40, hovermode="closest",
                         margin={"l": 50, "r": 10, "t": 70 if overlay else 40, "b": 45}, showlegend=overlay,
                         legend={"orientation": "h", "x": 0, "y": 1, "yref": "container", "yanchor": "top",
                                 "font": {"size": 11}})  # above the subplot titles
    figure.update_annotations(font_size=12)
    for index, panel in enumerate(panels):
        suffix = index + 1 if index else ""
        frontier = panel.title == FRONTIER
        figure.layout[f"xaxis{suffix}"].title = "KL(policy ‖ reference)" if frontier else "step"
        if frontier:
            figure.layout[f"yaxis{suffix}"].title = "reward"
    return figure


def trace_style(panels: list[Panel], title: str, key: str, run_index: int, label: str, overlay: bool) -> dict:
    """Keyword arguments of the line for one (panel, key, run): axes, name, colour, dash, hover, legend group.

    Overlaid, the caller shows the legend entry on each run's first line only.
    """
    index = next(i for i, panel in enumerate(panels) if panel.title == title)
    panel = panels[index]
    colour, dash = key_style(panel, key)
    frontier = title == FRONTIER
    if overlay:
        name = label if frontier or len(panel.keys) == 1 else f"{label} · {key}"
        colour, dash = COLOURS[run_index % len(COLOURS)], "solid" if frontier else dash
    else:
        name, dash = ("reward vs KL" if frontier else key), "solid"
    hover = "step %{customdata}<br>KL %{x:.4g}<br>reward %{y:.4g}" if frontier else "step %{x}: %{y:.4g}"
    return dict(**axes_of(index), name=name, mode="lines+markers", line={"color": colour, "dash": dash},
                hovertemplate=f"{name}<br>{hover}<extra></extra>", legendgroup=label, showlegend=False)


def panel_lines(panel: Panel, rows: list[dict]) -> list[tuple[str, list, list, list | None]]:
    """``(key, x, y, customdata)`` of each line ``rows`` draw on ``panel`` (keys without points left out).

    Curves are value against step; the frontier is one line of reward against KL, the step as customdata.
    """
    if panel.title == FRONTIER:
        points = frontier_points(rows)
        lines = [(FRONTIER, [p["kl"] for p in points], [p["reward"] for p in points], [p["step"] for p in points])]
    else:
        lines = [(key, *series(rows, key), None) for key in panel.keys]
    return [line for line in lines if line[1]]


def grid_figure(panels: list[Panel], histories: dict[str, list[dict]], overlay: bool = False) -> go.Figure:
    """Every panel for every run in ``histories`` (label -> metric rows); one legend entry per run when overlaid.

    Each trace's ``meta`` is ``[panel title, run label, metric key]``, so code can find a line again.
    """
    figure = empty_grid(panels, overlay)
    drawn: dict[str, set[str]] = {panel.title: set() for panel in panels}
    for run_index, (label, rows) in enumerate(histories.items()):
        first = True
        for panel in panels:
            for key, x, y, steps in panel_lines(panel, rows):
                style = trace_style(panels, panel.title, key, run_index, label, overlay)
                style["showlegend"], first = overlay and first, False
                figure.add_scatter(x=x, y=y, customdata=steps, meta=[panel.title, label, key], **style)
                drawn[panel.title].add(key)
    for index, panel in enumerate(panels):
        figure.layout.annotations[index].text = subplot_title(panel, drawn[panel.title], overlay)
    return figure
