"""A fixed pool of plot slots, two per row, filled with however many figures a method or a comparison has.

Gradio components are created once, when the page is built; a view's panels (Loss, Reward, KL, the
methods' own, then the reward-vs-KL frontier: :func:`alignlab.panels.visible_panels`) differ between
methods, so a tab holds as many slots as the largest view it can show needs (:func:`slot_count`) and shows
only the slots (and rows) it fills.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import gradio as gr
import plotly.graph_objects as go

from alignlab.panels import visible_panels

PER_ROW = 2


def slot_count(views: Iterable[Iterable[str]]) -> int:
    """Slots for the largest of ``views`` (each the methods one view draws together): the most panels
    :func:`~alignlab.panels.visible_panels` gives any of them, frontier included (before rows arrive it
    shows every panel, so no later view needs more)."""
    return max(len(visible_panels(methods)) for methods in views)


@dataclass
class PlotGrid:
    """Rows of hidden plots; ``outputs`` lists them for an event, ``updates`` fills them."""

    rows: list[gr.Row]
    plots: list[gr.Plot]

    @property
    def outputs(self) -> list[gr.components.Component | gr.Row]:
        return [*self.rows, *self.plots]

    def updates(self, figures: list[go.Figure]) -> list:
        """Show the figures in order; hide the other slots and the rows left empty. More figures than
        slots is a grid sized too small (see :func:`slot_count`): an error, never a figure dropped."""
        if len(figures) > len(self.plots):
            raise ValueError(f"{len(figures)} figures for {len(self.plots)} plot slots: size the grid with slot_count")
        rows = [gr.update(visible=index * PER_ROW < len(figures)) for index in range(len(self.rows))]
        plots = [gr.update(value=figure, visible=True) for figure in figures]
        return rows + plots + [gr.update(value=None, visible=False)] * (len(self.plots) - len(plots))

    def skip(self) -> list:
        return [gr.skip()] * len(self.outputs)


def create_plot_grid(slots: int, prefix: str) -> PlotGrid:
    """``slots`` hidden plots laid out two per row; elem ids ``<prefix>-plot-<i>``."""
    rows, plots = [], []
    for start in range(0, slots, PER_ROW):
        with gr.Row(equal_height=True, visible=False) as row:
            for index in range(start, min(start + PER_ROW, slots)):
                plots.append(gr.Plot(visible=False, show_label=False, elem_id=f"{prefix}-plot-{index}",
                                     elem_classes=["lab-plot"], min_width=300))
        rows.append(row)
    return PlotGrid(rows, plots)
