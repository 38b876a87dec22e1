"""A plotly FigureWidget whose first message to the browser already carries its data and layout.

plotly's FigureWidget (an anywidget) opens its comm in the widget constructor, *before* it fills in
its traces and layout, and sends those as updates right after. In the browser, anywidget evaluates
plotly's 5 MB bundle for every new widget and drops the widget's incoming messages if that takes
longer than 2 seconds (a busy CPU, a slow laptop): the figure then draws empty axes. Opening the
comm only once the constructor is done puts everything in the opening message, so a figure always
draws what it held when it was created; :class:`~alignlab.ui.notebook.live.LiveFigures` also
redraws from the full history when a run ends, so the final picture never depends on live updates.
"""

from __future__ import annotations

import plotly.graph_objects as go


class FigureWidget(go.FigureWidget):
    """``go.FigureWidget`` that opens its comm after plotly has set its data and layout."""

    def __init__(self, *args, **kwargs):
        self._constructing = True
        super().__init__(*args, **kwargs)
        self._constructing = False
        self.open()

    def open(self) -> None:
        """Open the comm (skipped while plotly's constructor runs)."""
        if not getattr(self, "_constructing", False):
            super().open()
