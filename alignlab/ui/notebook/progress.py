"""A progress bar with ETA that follows a run: step of total, elapsed, time left, final state."""

from __future__ import annotations

import html
import threading
from typing import Callable

import ipywidgets as widgets

TICK_S = 1.0
BAR_STYLE = {"running": "info", "finished": "success", "stopped": "warning", "failed": "danger"}


def seconds(value: float | None) -> str:
    """``75`` -> ``1 min 15 s``."""
    if value is None:
        return "?"
    value = int(round(value))
    return f"{value // 60} min {value % 60} s" if value >= 60 else f"{value} s"


def status_text(status: dict) -> str:
    """One line for a run's status dict (see ``RunHandle.status``)."""
    state, step, total = status["state"], status["step"], status["total_steps"]
    steps = f"step {step}/{total}" if total else f"step {step}"
    if state == "running":
        if not total:
            return f"loading model and data… {seconds(status['elapsed_s'])} elapsed"
        return f"{steps} · {seconds(status['elapsed_s'])} elapsed · ETA {seconds(status['eta_s'])}"
    if state == "failed":
        return f"failed after {seconds(status['elapsed_s'])}: {status['error']}"
    return f"{state} at {steps} in {seconds(status['elapsed_s'])}"


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
        self.show(handle.status)
        self._unsubscribe = handle.subscribe(lambda _: self.show(handle.status), replay=True)

        def watch() -> None:  # ticks once a second so elapsed time and ETA move between steps
            while not handle.done:
                handle.wait(TICK_S)
                self.show(handle.status)
            if on_end is not None:
                on_end(handle)

        threading.Thread(target=watch, name=f"progress-{handle.run_id}", daemon=True).start()

    def show(self, status: dict) -> None:
        """Draw a status dict."""
        self.bar.max = max(1, status["total_steps"] or 1)
        self.bar.value = min(self.bar.max, status["step"])
        self.bar.bar_style = BAR_STYLE.get(status["state"], "")
        colour = "#b00" if status["state"] == "failed" else "#333"
        self.text.value = f"<span style='color:{colour}'>{html.escape(status_text(status))}</span>"
