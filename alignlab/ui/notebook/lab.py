"""``Lab()``: the whole lab in one widget: Train (preset, form, Start/Stop, progress, live curves, then what
changed), Runs (Resume), Chat.

Training runs in a background thread (:func:`alignlab.runner.start`); the widgets follow it through
the run's metric bus, so the kernel stays free while it trains. ``Lab(method="dpo", beta=0.3,
model="tiny-random")`` presets the form, ``Lab(preset="classroom")`` starts from a named run
(:mod:`alignlab.presets`); :meth:`Lab.start` and :meth:`Lab.wait` do from code what
the buttons do. While a cell waits with ``await lab.wait_async()`` (or :meth:`Lab.wait`, on the ipykernel
releases it fits) the widgets stay live (Stop works), and interrupting the kernel stops the run (see
:mod:`alignlab.ui.notebook.waiting`).
"""

from __future__ import annotations

import html
import threading
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from alignlab import rundir, runner
from alignlab.errors import AlignLabError
from alignlab.labels import run_label
from alignlab.methods import generates_text
from alignlab.models import offered_models
from alignlab.runner import RunHandle
from alignlab.ui.notebook.changes import ChangesView
from alignlab.ui.notebook.chat import Chat
from alignlab.ui.notebook.form import RunForm
from alignlab.ui.notebook.live import LiveFigures
from alignlab.ui.notebook.progress import RunProgress
from alignlab.ui.notebook.runs import RunsView
from alignlab.ui.notebook.waiting import (
    stop_on_cancel,
    stop_on_interrupt,
    stopped_note,
    wait_until,
    wait_until_async,
)


class Lab(widgets.VBox):
    """Method picker and knobs, Start/Stop, progress with ETA, live curves; Runs and Chat tabs."""

    def __init__(self, method: str | None = None, preset: str = "", **presets: Any):
        self.form = RunForm(method, preset, **presets)
        self.run: RunHandle | None = None
        self.changes = ChangesView()  # what changed, once a run has ended
        self._settled = threading.Event()  # the current run has ended and what changed is shown
        self._settled.set()
        self.start_button = widgets.Button(description="Start", button_style="success", icon="play")
        self.stop_button = widgets.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.progress = RunProgress()
        self.live = LiveFigures([self.form.method.value])
        self.live_box = widgets.VBox([self.live])
        self.runs = RunsView(self.output_dir, start=self._start_from_runs)
        self.resume_button = widgets.Button(description="Resume", icon="repeat",
                                            tooltip="Continue the selected stopped, failed or killed run from its "
                                            "last checkpoint, in the same run directory")
        self.resume_note = widgets.HTML()
        self.chat = Chat()
        self.chat_with = widgets.Dropdown(description="chat with", style={"description_width": "80px"},
                                          layout=widgets.Layout(width="720px"))
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.resume_button.on_click(lambda _: self.resume())
        self.runs.refresh_button.on_click(lambda _: self._list_chat_targets())
        self.form.inputs["output_dir"].observe(lambda _: setattr(self.runs, "output_dir", self.output_dir),
                                               names="value")
        self.chat_with.observe(lambda change: self._chat_with(change["new"]), names="value")
        train = widgets.VBox([self.form, widgets.HBox([self.start_button, self.stop_button, self.progress]),
                              self.live_box, self.changes])
        runs = widgets.VBox([self.runs, widgets.HBox([self.resume_button, self.resume_note])])
        self.tabs = widgets.Tab([train, runs, widgets.VBox([self.chat_with, self.chat])],
                                titles=("Train", "Runs", "Chat"))
        super().__init__([self.tabs])
        self._list_chat_targets()

    @property
    def output_dir(self) -> Path:
        """The runs folder the form points at."""
        return Path(self.form.inputs["output_dir"].value)

    def start(self) -> RunHandle | None:
        """Start a run with the form's values; None (reason shown in the form) if they are refused."""
        if self.run is not None and not self.run.done:
            self.form.show_error("a run is already training: stop it or wait for it to finish")
            return None
        config = self.form.config()
        if config is None:
            return None
        live = LiveFigures([config.method])
        try:
            handle = runner.start(config)
        except AlignLabError as error:
            self.form.show_error(str(error))
            return None
        self._follow(handle, live)
        return handle

    def resume(self, run: str | Path | None = None) -> RunHandle | None:
        """Continue a stopped, failed or killed run from its last checkpoint, in its own run directory, and
        follow it in the Train tab. ``run``: a run directory or id; by default the one run selected in the
        Runs tab. None (the reason shown beside the Resume button) if it cannot resume."""
        selected = self.runs.picker.value
        if self.run is not None and not self.run.done:
            reason = "a run is already training: stop it or wait for it to finish"
        elif run is None and len(selected) != 1:
            reason = "select the one run to resume in the list above"
        else:
            try:
                handle = runner.resume(self.runs.runs[selected[0]]["path"] if run is None else run, self.output_dir)
            except AlignLabError as error:
                reason = str(error)
            else:
                self.resume_note.value = ""
                self._follow(handle, LiveFigures([handle.config.method]))
                self.tabs.selected_index = 0
                return handle
        self.resume_note.value = f"<span style='color:#b00'>{html.escape(reason)}</span>"
        return None

    def _start_from_runs(self, config) -> RunHandle:
        """Start a run the Runs tab made (Train on these votes) and follow it in the Train tab: one run at a time."""
        if self.run is not None and not self.run.done:
            raise AlignLabError("a run is already training: stop it or wait for it to finish")
        handle = runner.start(config)
        self._follow(handle, LiveFigures([config.method]))
        self.tabs.selected_index = 0
        return handle

    def _follow(self, handle: RunHandle, live: LiveFigures) -> None:
        """Make ``handle`` the current run: live curves, progress, buttons and chat follow it."""
        self.run = handle
        self._settled.clear()
        self.changes.value = ""
        self.live.close_subscriptions()
        self.live = live
        self.live_box.children = [live]
        live.follow(handle)
        self.progress.track(handle, on_end=self._ended)
        self.start_button.disabled, self.stop_button.disabled = True, False
        self._list_chat_targets()
        self.chat_with.value = handle

    def stop(self) -> None:
        """Ask the current run to stop at its next step (it saves what it has)."""
        if self.run is not None:
            self.run.stop()
            self.stop_button.disabled = True

    def wait(self, timeout: float | None = None) -> str | None:
        """Block until the current run ends and what changed is shown (or ``timeout`` seconds); returns its state.

        The widgets keep answering meanwhile, so Stop works, on the ipykernel releases whose internals this
        fits (it warns once elsewhere: ``await lab.wait_async()`` keeps Stop live through ipykernel's public
        behaviour). Interrupting the kernel stops the run, waits until it has saved, and raises
        ``KeyboardInterrupt`` saying so.
        """
        run = self.run
        if run is None:
            return None
        with stop_on_interrupt(self.stop, run.wait, lambda: stopped_note([run])):
            if wait_until(lambda: run.done, timeout):
                run.wait()  # joins the training thread
                wait_until(self._settled.is_set, timeout)
        return run.state

    async def wait_async(self, timeout: float | None = None) -> str | None:
        """:meth:`wait` for a cell that awaits it: ``await lab.wait_async()``. The kernel handles widget clicks
        while the cell awaits (ipykernel >= 7.4), so Stop works. Interrupting the kernel stops the run, waits
        until it has saved, and raises ``asyncio.CancelledError`` saying so.
        """
        run = self.run
        if run is None:
            return None
        async with stop_on_cancel(self.stop, lambda: run.done, lambda: stopped_note([run])):
            if await wait_until_async(lambda: run.done, timeout):
                run.wait()  # joins the training thread
                await wait_until_async(self._settled.is_set, timeout)
        return run.state

    def _ended(self, handle: RunHandle) -> None:
        """The run ended: buttons, Runs and Chat tabs follow, then what changed is sampled and shown."""
        try:
            self.start_button.disabled, self.stop_button.disabled = False, True
            self.runs.refresh([handle.run_id])
            self._list_chat_targets()  # relabels "this run" with how it ended
            self.chat.show_title()  # the Chat tab stops saying "training now"
            if handle is self.run:
                self.changes.show(handle)
        finally:
            if handle is self.run:
                self._settled.set()

    def _chat_with(self, target: Any) -> None:
        if target is not None and not (target is self.chat.run or target == self.chat.run):
            self.chat.bind(target)

    def _list_chat_targets(self) -> None:
        """Offer the current run (live), past runs of generative methods, and the base models."""
        options: list[tuple[str, Any]] = []
        runs = rundir.list_runs(self.output_dir)
        if self.run is not None:
            state = "training now" if not self.run.done else self.run.state
            current = next((run for run in runs if run["run_id"] == self.run.run_id), None)
            label = self.run.run_id if current is None else run_label(current)
            options.append((f"this run: {label} ({state})", self.run))
        for run in runs:
            readable = run["state"] != rundir.UNREADABLE  # a damaged run lists in the runs table, with what is wrong
            if readable and generates_text(run["method"]) and rundir.has_model(run["path"]) and \
                    (self.run is None or run["run_id"] != self.run.run_id):
                options.append((run_label(run, show_state=True), run["path"]))
        model = self.form.inputs["model"].value
        options += [(f"base model only: {name}", name) for name in dict.fromkeys([model, *offered_models()])]
        current = self.chat_with.value
        self.chat_with.options = options
        values = [value for _, value in options]
        self.chat_with.value = current if any(value is current for value in values) else values[0]
