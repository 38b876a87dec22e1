"""Live curves: one plotly FigureWidget that runs push their logged points into as they train.

:class:`LiveFigures` shows the panels of the followed runs' methods (loss, reward, KL, the method's
own panels, the reward-vs-KL frontier) as subplots of a single ``FigureWidget`` (see
:mod:`alignlab.ui.notebook.grid`): every panel until the first row, then the ones rows fill
(:func:`alignlab.panels.visible_panels`, the app's rule), laid out again as panels come and go.
``follow(handle)`` subscribes to the run's metric bus; each event
extends the run's traces inside one ``batch_update`` (one message to the browser per logged step,
and one more when a subplot's axes are refitted or a KL-below-0 note is added: see
:func:`~alignlab.ui.notebook.grid.fit_subplot`), from the training thread, so the kernel stays free.
When a run ends the figure is drawn again from the run's whole history, so the final picture is
complete even if a live message was lost. Under the figure, a DPO-family run's metrics are explained in its own
numbers (:func:`alignlab.explain.explain`, the app's words), renewed as its rows arrive.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable, Iterable

import ipywidgets as widgets
import pandas  # noqa: F401 - import now: plotly imports it lazily, racing the training thread's import
import plotly.graph_objects as go

from alignlab.explain import explain
from alignlab.metrics import is_se_key, se_key
from alignlab.panels import rows_from_events, visible_panels
from alignlab.ui.figures import kl_notes, line_errors, line_mode, panel_bands, panel_lines, path_marks
from alignlab.ui.notebook.figure_widget import FigureWidget
from alignlab.ui.notebook.grid import (
    arrange,
    empty_grid,
    fit_subplot,
    grid_figure,
    note_verdict,
    subplot_title,
    trace_style,
)


class LiveFigures(widgets.VBox):
    """Every panel of ``methods`` in one live figure, fed by the runs it follows.

    With ``overlay=True`` several runs share the panels, one colour and one legend entry each (for
    sweeps and comparisons). ``latencies`` keeps, for recent events, the seconds from the metric's
    log time to the moment its point had been sent to the figure.
    """

    def __init__(self, methods: Iterable[str], overlay: bool = False):
        self.methods = list(methods)
        self.panels = visible_panels(self.methods)  # before any row: every panel, to fill as the runs log
        self.shown = [panel.title for panel in self.panels]  # once rows arrive: the panels they fill
        self.probing = False  # whether a followed run probes (its Reward and KL panels fill later)
        self.overlay = overlay
        self.rows: dict[str, list[dict]] = {}  # run label -> metric rows so far
        self.latencies: list[float] = []
        self._lock = threading.Lock()
        self._unsubscribe: list[Callable[[], None]] = []
        self.configs: dict[str, object] = {}  # run label -> its RunConfig (method and knobs, for the explainer)
        self.figure = FigureWidget(empty_grid(self.panels, overlay))
        self.explainer = widgets.HTML(layout=widgets.Layout(display="none"))
        super().__init__([self.figure, self.explainer])

    def follow(self, handle, label: str | None = None) -> None:
        """Draw ``handle``'s past events and every new one as it is logged; redraw whole when it ends."""
        label = label or handle.run_id
        with self._lock:
            self.rows.setdefault(label, [])
            self.probing |= bool(getattr(getattr(handle, "config", None), "probe_every", 0))
            if getattr(handle, "config", None) is not None:
                self.configs[label] = handle.config
        self._unsubscribe.append(handle.subscribe(lambda event: self.add([event], label), replay=True))

        def redraw_at_end() -> None:
            handle.wait()
            self.redraw()

        threading.Thread(target=redraw_at_end, name=f"figures-{handle.run_id}", daemon=True).start()

    def add(self, events: list[dict], label: str) -> None:
        """Append the points of ``events`` (bus events) to ``label``'s traces."""
        rows = rows_from_events(events)
        with self._lock:
            history = self.rows.setdefault(label, [])
            history.extend(rows)
            new_errors = any(is_se_key(key) for row in rows for key in row)  # bands change only then
            with self.figure.batch_update():
                for panel in self.panels:
                    for key, x, y in panel_bands(panel, history) if new_errors else ():  # an outline is redrawn whole
                        trace = self._trace(panel.title, label, se_key(key))
                        trace.x, trace.y = x, y
                    frontier = panel.kind == "frontier"  # recomputed from the whole history; curves just grow
                    for key, x, y, steps in panel_lines(panel, history if frontier else rows):
                        trace = self._trace(panel.title, label, key)
                        notes = kl_notes(panel, key, x, y).get("hovertext")
                        if frontier:
                            trace.x, trace.y, trace.customdata = x, y, steps
                            trace.update(line_errors(panel, history, trace.line.color),
                                         **path_marks(panel, steps, trace.line.color))
                            trace.hovertext = notes
                        else:
                            trace.x, trace.y = (*trace.x, *x), (*trace.y, *y)
                            if notes is not None:
                                trace.hovertext = (*(trace.hovertext or ()), *notes)
                        if trace.mode != line_mode(panel, len(trace.x)):  # markers go once a curve is long
                            trace.mode = line_mode(panel, len(trace.x))
            for index in range(len(self.panels)):  # once the points are in (a batch defers them): axes follow the
                fit_subplot(self.figure, self.panels, index)  # points and a KL below 0 is noted, sent only on a change
            note_verdict(self.figure, self.panels, self.rows)  # the drift panel's words, sent only when they change
            self.explain()
            shown = [panel.title for panel in visible_panels(self.methods, self.rows, self.probing)]
            if shown != self.shown:  # a panel no row fills goes; one whose first points arrived comes back
                self.shown = shown
                with self.figure.batch_update():
                    arrange(self.figure, self.panels, shown)
        now = time.time()
        self.latencies.extend(now - event["time"] for event in events if event.get("time"))
        del self.latencies[:-1000]

    def explain(self) -> None:
        """Renew the metric explainer under the figure (:func:`explainer_html`); sent only when its words change."""
        text = explainer_html({label: explain(config.method, config.method_args, self.rows.get(label, []))
                               for label, config in self.configs.items()})
        if text != self.explainer.value:
            self.explainer.value = text
            self.explainer.layout.display = None if text else "none"

    def line(self, title: str, key: str, label: str | None = None) -> go.Scatter | None:
        """The trace of ``key`` on panel ``title`` for run ``label`` (the only run when None), if drawn yet."""
        for trace in self.figure.data:
            meta = tuple(trace.meta or ())
            if meta[:1] == (title,) and meta[2:] == (key,) and (label is None or meta[1] == label):
                return trace
        return None

    def _trace(self, title: str, label: str, key: str) -> go.Scatter:
        trace = self.line(title, key, label)
        if trace is None:
            style = trace_style(self.panels, title, key, list(self.rows).index(label), label, self.overlay)
            if self.overlay and not is_se_key(key):  # the run's first line carries its legend entry
                style["showlegend"] = not any(trace.meta[1] == label and not is_se_key(trace.meta[2])
                                              for trace in self.figure.data)
            self.figure.add_scatter(x=(), y=(), meta=[title, label, key], **style)
            index = next(i for i, panel in enumerate(self.panels) if panel.title == title)
            drawn = {trace.meta[2] for trace in self.figure.data if trace.meta[0] == title}
            self.figure.layout.annotations[index].text = subplot_title(self.panels[index], drawn, self.overlay)
            trace = self.figure.data[-1]
        return trace

    def redraw(self) -> None:
        """Draw the figure again from every followed run's whole history (a new widget)."""
        with self._lock:
            self.figure = FigureWidget(grid_figure(self.panels, self.rows, self.overlay))
            arrange(self.figure, self.panels, self.shown)
            self.explain()
            self.children = [self.figure, self.explainer]

    def close_subscriptions(self) -> None:
        """Unsubscribe from every followed run (the figure keeps what it shows)."""
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()


EXPLAINER_HEADING = "What these curves mean, in this run's numbers"


def explainer_html(explained: dict) -> str:
    """The explanations of each run (run label -> :func:`alignlab.explain.explain`'s points, or None) as HTML: a
    heading, then each point's bold title and text, under its run's label when several runs have some; "" for
    none."""
    runs = {label: points for label, points in explained.items() if points}
    if not runs:
        return ""
    parts = [f"<h4>{EXPLAINER_HEADING}</h4>"]
    for label, points in runs.items():
        if len(runs) > 1:
            parts.append(f"<h5>{html.escape(label)}</h5>")
        parts += [f"<p><b>{html.escape(point.title)}.</b> {html.escape(point.text)}</p>" for point in points]
    return "<div class='alignlab-explainer' style='max-width:60em'>" + "".join(parts) + "</div>"
