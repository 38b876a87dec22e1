"""A progress bar with ETA that follows a run: step of total, elapsed, pace and time left, final state.

The times read as in the Gradio app's progress card (:mod:`alignlab.ui.format`): the same run shows the
same pace and ETA in both.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable

import ipywidgets as widgets

from alignlab.panels import rows_from_events
from alignlab.ui.format import duration, pace_text

TICK_S = 1.0
BAR_STYLE = {"running": "info", "finished": "success", "stopped": "warning", "failed": "danger"}


def status_text(status: dict, rows: list[dict]) -> str:
    """One line for a run's status dict (see ``RunHandle.status``) and its metric rows so far (for the pace)."""
    state, step, total = status["state"], status["step"], status["total_steps"]
    steps = f"step {step}/{total}" if total else f"step {step}"
    elapsed = duration(status["elapsed_s"])
    if state == "running":
        phase = status.get("phase")
        if not total:
            return f"{phase or 'loading the model and data'}… {elapsed} elapsed"
        pace = pace_text(rows, total)
        return f"{steps} · {elapsed} elapsed" + (f" · {phase}…" if phase else "") + (f" · {pace}" if pace else "")
    if state == "failed":
        return f"failed after {elapsed}: {status['error']}"
    return f"{state} at {steps} in {elapsed}"


class RunProgress(widgets.HBox):
    """Bar + status line, updated on every logged step, every second, and when the run ends."""

    def __init__(self):
        self.bar = widgets.IntProgress(value=0, min=0, max=1, layout=widgets.Layout(width="300px"))
        self.text = widgets.HTML()
        self._unsubscribe: Callable[[], None] | None = None
        super().__init__([self.bar, self.text])

    def track(self, handle, on_end: Callable[[object], None] | None = None) -> None:
        """Follow ``handle`` (replacing the run followed before); ``on_end(handle)`` runs when it ends."""
        if self._unsubscribe:
            self._unsubscribe()
        self.bar.value, self.bar.bar_style = 0, BAR_STYLE["running"]
        self.show(handle)
        self._unsubscribe = handle.subscribe(lambda _: self.show(handle), replay=True)

        def watch() -> None:  # ticks once a second so the elapsed time moves between steps
            while not handle.done:
                handle.wait(TICK_S)
                self.show(handle)
            if on_end is not None:
                on_end(handle)

        threading.Thread(target=watch, name=f"progress-{handle.run_id}", daemon=True).start()

    def show(self, handle) -> None:
        """Draw ``handle``'s status, and its pace from the steps it has logged."""
        status = handle.status
        self.bar.max = max(1, status["total_steps"] or 1)
        self.bar.value = min(self.bar.max, status["step"])
        self.bar.bar_style = BAR_STYLE.get(status["state"], "")
        colour = "#b00" if status["state"] == "failed" else "#333"
        text = status_text(status, rows_from_events(handle.history))
        self.text.value = f"<span style='color:{colour}'>{html.escape(text)}</span>"
