"""Every plot panel of a run (or several) in one plotly figure: a grid of subplots, two to a row.

The notebook draws one ``FigureWidget`` per view rather than one per panel: each widget makes the
browser load plotly's whole bundle again (see :mod:`alignlab.ui.notebook.figure_widget`). The
panels are :func:`alignlab.panels.visible_panels` of the methods shown, the reward-vs-KL frontier last.

The lines are the Gradio app's (:mod:`alignlab.ui.figures`: data, names, colours, dashes, hover,
axis titles); what is the grid's own is where each panel sits and its subplot title, which says
which line is which: a single run's lines are coloured by key (the title names each key in its
colour), overlaid runs are coloured by run (named in the legend) and dashed by key (the title
names each dash). Titles list only the keys that have points. The drift panel carries each run's verdict inside its
top left corner (:func:`note_verdict`). Pure functions: histories in,
``go.Figure`` out; :class:`~alignlab.ui.notebook.live.LiveFigures` adds points to the same traces.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from alignlab.labels import metric_name
from alignlab.methods.base import Panel
from alignlab.metrics import is_se_key
from alignlab.ui.figures import (
    LOOK,
    axis_fit,
    axis_titles,
    key_style,
    kl_note,
    negative_kl,
    run_traces,
    style_for,
    verdict_text,
)

COLUMNS = 2
ROW_HEIGHT = 250
DASH_MARKS = {"solid": "—", "dot": "┈", "dash": "╌", "dashdot": "-·"}
VERDICT_WIDTH = 60  # characters a drift verdict's line holds in a half-width subplot


def verdict_name(index: int) -> str:
    """The name of the ``index``-th subplot's drift verdict annotation."""
    return f"drift-verdict-{index}"


def note_verdict(figure: go.Figure, panels: list[Panel], histories: dict[str, list[dict]]) -> None:
    """Write each drift panel's verdict (:func:`~alignlab.ui.figures.verdict_text`, the runs' own numbers) inside
    its subplot's top left corner, adding the note the first time and changing it only when its words change (so a
    live figure sends nothing new between probes)."""
    for index, panel in enumerate(panels):
        text = verdict_text(panel, histories, VERDICT_WIDTH)
        if not text:
            continue
        suffix = index + 1 if index else ""
        note = next((note for note in figure.layout.annotations if note.name == verdict_name(index)), None)
        if note is None:
            figure.add_annotation(text=text, name=verdict_name(index), showarrow=False, x=0.01, y=0.99,
                                  xanchor="left", yanchor="top", align="left", font={"size": 10},
                                  bgcolor="rgba(255, 255, 255, 0.85)", xref=f"x{suffix} domain",
                                  yref=f"y{suffix} domain")
        elif note.text != text:
            note.text = text


def subplot_title(panel: Panel, drawn: Iterable[str], overlay: bool) -> str:
    """The panel's title, and which line is which when it draws several keys: each key named for people within
    the title (:func:`alignlab.labels.metric_name`: ``Reward (probe)``, ``Implicit rewards: chosen rejected``)."""
    drawn = [key for key in panel.keys if key in set(drawn)]
    if len(drawn) < 2 or panel.kind == "frontier":
        single = len(drawn) == 1 and len(panel.keys) > 1 and panel.kind != "frontier"
        return f"{panel.title} ({html.escape(metric_name(drawn[0], panel.title))})" if single else panel.title
    names = []
    for key in drawn:
        colour, dash = key_style(panel, key)
        name = html.escape(metric_name(key, panel.title))
        names.append(f"{name} {DASH_MARKS[dash]}" if overlay else f"<span style='color:{colour}'>{name}</span>")
    return f"{panel.title}: {'  '.join(names)}"


def fit_subplot(figure: go.Figure, panels: list[Panel], index: int) -> None:
    """Fit the ``index``-th subplot's axes to the traces on it (:func:`~alignlab.ui.figures.axis_fit`: a padded
    range for an axis whose points sit at one value, autorange otherwise) and, once one of its KL points is
    below 0, add the note that says it is noise (once). Axes already fitted are left alone, so a live figure
    sends nothing new.

    A subplot with no trace yet is left as it is until its first line arrives: plotly.js keeps no axis that no
    trace uses once a figure has data, and a FigureWidget update setting such an axis's ``autorange`` throws in
    the browser ("Error setting state: … '_inputDomain'" in the console)."""
    panel, suffix = panels[index], index + 1 if index else ""
    traces = [trace for trace in figure.data if trace.meta and trace.meta[0] == panel.title]
    if not traces:
        return
    for axis, fit in zip((figure.layout[f"xaxis{suffix}"], figure.layout[f"yaxis{suffix}"]), axis_fit(panel, traces)):
        if any(axis[name] != (tuple(value) if isinstance(value, list) else value) for name, value in fit.items()):
            axis.update(fit)
    name = f"kl-note-{index}"
    if negative_kl(traces) and not any(note.name == name for note in figure.layout.annotations):
        figure.add_annotation(**kl_note(name, xref=f"x{suffix} domain", yref=f"y{suffix} domain"))


def axes_of(index: int) -> dict[str, str]:
    """Trace axis references of the ``index``-th subplot (0-based, row-major)."""
    suffix = "" if index == 0 else str(index + 1)
    return {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}


def spacing(rows: int) -> tuple[float, float]:
    """(horizontal, vertical) gaps between subplots, as fractions of the figure, for a grid of ``rows``."""
    return 0.08, min(0.3 / rows, 0.12)


def arrange(figure: go.Figure, panels: list[Panel], shown: Iterable[str]) -> None:
    """Lay out only the panels titled in ``shown``, in order, two to a row, and hide the others (their axes
    and titles), so a live figure grows as data arrives instead of opening with empty panels. Only a layout
    change: traces stay where they are, and a hidden panel comes back with its lines when shown again."""
    shown = set(shown)
    order = [index for index, panel in enumerate(panels) if panel.title in shown]
    rows = max(1, math.ceil(len(order) / COLUMNS))
    across, down = spacing(rows)
    width, height = (1 - across * (COLUMNS - 1)) / COLUMNS, (1 - down * (rows - 1)) / rows
    for index in range(len(panels)):
        suffix = index + 1 if index else ""
        x_axis, y_axis = figure.layout[f"xaxis{suffix}"], figure.layout[f"yaxis{suffix}"]
        title = figure.layout.annotations[index]
        for note in figure.layout.annotations:
            if note.name == verdict_name(index):
                note.visible = index in order
        if index not in order:
            x_axis.visible = y_axis.visible = title.visible = False
            continue
        row, col = divmod(order.index(index), COLUMNS)
        left, top = col * (width + across), 1 - row * (height + down)
        x_axis.update(visible=True, domain=[round(left, 6), round(left + width, 6)])  # no -1e-17 from float sums
        y_axis.update(visible=True, domain=[max(0.0, round(top - height, 6)), round(top, 6)])
        title.update(visible=True, x=left + width / 2, y=top)
    figure.layout.height = ROW_HEIGHT * rows + 40


def empty_grid(panels: list[Panel], overlay: bool = False) -> go.Figure:
    """The grid with titled, empty subplots (the last cell left out when the count is odd)."""
    rows = math.ceil(len(panels) / COLUMNS)
    specs = [[{} if row * COLUMNS + col < len(panels) else None for col in range(COLUMNS)] for row in range(rows)]
    across, down = spacing(rows)
    figure = make_subplots(rows=rows, cols=COLUMNS, specs=specs, subplot_titles=[p.title for p in panels],
                           vertical_spacing=down, horizontal_spacing=across)
    figure.update_layout(**LOOK, height=ROW_HEIGHT * rows + 40, showlegend=overlay,
                         margin={"l": 50, "r": 10, "t": 70 if overlay else 40, "b": 45},
                         legend={"orientation": "h", "x": 0, "y": 1, "yref": "container", "yanchor": "top",
                                 "font": {"size": 11}})  # above the subplot titles
    figure.update_annotations(font_size=12)
    for index, panel in enumerate(panels):
        suffix = index + 1 if index else ""
        x_title, y_title = axis_titles(panel)
        figure.layout[f"xaxis{suffix}"].title, figure.layout[f"yaxis{suffix}"].title = x_title, y_title
    return figure


def trace_style(panels: list[Panel], title: str, key: str, run_index: int, label: str, overlay: bool,
                points: int = 0) -> dict:
    """:func:`~alignlab.ui.figures.style_for` of one (panel, key, run), placed on the panel's subplot.

    The legend entry is off: overlaid, the caller shows it on each run's first line only.
    """
    index = next(i for i, panel in enumerate(panels) if panel.title == title)
    return {**style_for(panels[index], key, run_index, label, overlay, points), **axes_of(index), "showlegend": False}


def grid_figure(panels: list[Panel], histories: dict[str, list[dict]], overlay: bool = False) -> go.Figure:
    """Every panel for every run in ``histories`` (label -> metric rows); one legend entry per run when overlaid.

    Each trace's ``meta`` is ``[panel title, run label, metric key]``, so code can find a line again
    (a ±1.96·se band's key is its line's key with ``_se``).
    """
    figure = empty_grid(panels, overlay)
    drawn: dict[str, set[str]] = {panel.title: set() for panel in panels}
    for run_index, (label, rows) in enumerate(histories.items()):
        first = True
        for index, panel in enumerate(panels):
            for key, trace in run_traces(panel, rows, run_index, label, overlay):
                trace.update(axes_of(index), meta=[panel.title, label, key], showlegend=False)
                if not is_se_key(key):  # bands never get a legend entry
                    trace["showlegend"], first = overlay and first, False
                figure.add_scatter(**trace)
                drawn[panel.title].add(key)
    for index, panel in enumerate(panels):
        figure.layout.annotations[index].text = subplot_title(panel, drawn[panel.title], overlay)
        fit_subplot(figure, panels, index)
    note_verdict(figure, panels, histories)
    return figure
