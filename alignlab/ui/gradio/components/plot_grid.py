"""A fixed pool of plot slots, two per row, filled with however many figures a method or a comparison has.

Gradio components are created once, when the page is built; a run's panels (Loss, Reward, KL, then the
method's own) differ between methods, so a tab holds as many slots as the largest method needs and
shows only the slots (and rows) it fills.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import plotly.graph_objects as go

from alignlab.methods import method_names
from alignlab.plots import panels_for

PER_ROW = 2


def slot_count(extra: int = 1) -> int:
    """Slots for the method with the most panels, plus ``extra`` (the reward-vs-KL frontier)."""
    return max(len(panels_for(name)) for name in method_names()) + extra


@dataclass
class PlotGrid:
    """Rows of hidden plots; ``outputs`` lists them for an event, ``updates`` fills them."""

    rows: list[gr.Row]
    plots: list[gr.Plot]

    @property
    def outputs(self) -> list[gr.components.Component | gr.Row]:
        return [*self.rows, *self.plots]

    def updates(self, figures: list[go.Figure]) -> list:
        """Show the figures in order; hide the other slots and the rows left empty."""
        figures = figures[: len(self.plots)]
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
