"""Runs from code with live curves: ``train`` one, ``sweep`` a grid, ``compare`` methods, one after another.

>>> sft = train("sft", max_steps=30)  # doctest: +SKIP
>>> runs = sweep("dpo", beta=[0.03, 0.1, 0.3], max_steps=30)  # doctest: +SKIP
>>> runs = compare(dict(method="dpo"), dict(method="kto"), max_steps=30)  # doctest: +SKIP
>>> runs = await sweep_async("dpo", beta=[0.03, 0.1], max_steps=30)  # doctest: +SKIP

Every configuration is checked (knobs, data, reward, model) before the first run starts, so a typo
fails at once rather than after an hour of training. Runs go one at a time: on a CPU, two at once
only make both slower. By default the call waits for the last run, with the curves updating live
and the Stop button working meanwhile; interrupting the kernel stops the run in progress, skips the
rest and raises ``KeyboardInterrupt`` (see :mod:`alignlab.ui.notebook.waiting`). ``wait=False``
returns at once and leaves the cell free. The ``*_async`` twins are awaited (``await train_async(...)``):
the kernel itself keeps Stop live while the cell awaits (ipykernel >= 7.4), where the blocking wait
relies on ipykernel's internals.
"""

from __future__ import annotations

import html
import itertools
import re
import threading
from typing import Any

import ipywidgets as widgets

from alignlab import runner
from alignlab.config import RunConfig
from alignlab.errors import AlignLabError
from alignlab.rundir import MAX_RUN_NAME
from alignlab.runner import RunHandle
from alignlab.ui.notebook.live import LiveFigures
from alignlab.ui.notebook.progress import RunProgress
from alignlab.ui.notebook.waiting import (
    stop_on_cancel,
    stop_on_interrupt,
    stopped_note,
    wait_until,
    wait_until_async,
)


def run_name(label: str) -> str:
    """A label made a safe ``run_name`` (letters, digits, ``_ . -``; at most 64 characters), as it appears in
    the run id (``beta=0.1, loss_type=ipo`` -> ``beta-0.1_loss_type-ipo``)."""
    label = re.sub(r"[^\w.=-]+", "_", label).strip("_")
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", label).lstrip("_.-")[:MAX_RUN_NAME].rstrip("_.-")


class SeriesView(widgets.VBox):
    """Which run of the series is training, its progress, a Stop button and the live curves (overlaid)."""

    def __init__(self, configs: list[RunConfig], labels: list[str]):
        self.configs, self.labels = configs, labels
        self.handles: list[RunHandle] = []
        self.started = threading.Event()  # set once the first run has started (or could not)
        self.stopped = threading.Event()
        self.heading = widgets.HTML()
        self.progress = RunProgress()
        self.stop_button = widgets.Button(description="Stop" if len(configs) == 1 else "Stop all", icon="stop",
                                          button_style="danger")
        self.stop_button.on_click(lambda _: self.stop())
        self.live = LiveFigures(dict.fromkeys(config.method for config in configs), overlay=len(configs) > 1)
        self.thread = threading.Thread(target=self._run_all, name="alignlab-series", daemon=True)
        super().__init__([self.heading, widgets.HBox([self.progress, self.stop_button]), self.live])

    def _run_all(self) -> None:
        problem = ""
        for number, (config, label) in enumerate(zip(self.configs, self.labels), start=1):
            if self.stopped.is_set():
                break
            self.heading.value = f"<b>run {number}/{len(self.configs)}</b>: {html.escape(label)}"
            try:
                handle = runner.start(config)
            except Exception as error:  # noqa: BLE001 - show it in the view, the thread has no caller
                problem = (f" <span style='color:#b00'>({html.escape(label)} did not start: "
                           f"{html.escape(str(error))})</span>")
                break
            finally:
                self.started.set()
            self.handles.append(handle)
            if self.stopped.is_set():  # stop() ran while this run was starting
                handle.stop()
            self.live.follow(handle, label)
            self.progress.track(handle)
            handle.wait()
        done = sum(handle.state == "finished" for handle in self.handles)
        self.heading.value = f"<b>{done} of {len(self.configs)} runs finished</b>{problem}"
        self.stop_button.disabled = True

    def stop(self) -> None:
        """Stop the run in progress and skip the rest."""
        self.stopped.set()
        for handle in self.handles:
            handle.stop()

    def interrupt_note(self) -> str:
        """The runs stopped so far and how many were skipped (the message of an interrupt)."""
        stopped = [handle for handle in self.handles if handle.state != "finished"]
        return stopped_note(stopped, skipped=len(self.configs) - len(self.handles))


def begin(configs: list[RunConfig], labels: list[str], show: bool = True) -> SeriesView:
    """Check every config, show the view and start training the configs one after another in a thread."""
    for config in configs:
        runner.preflight(config)
    view = SeriesView(configs, labels)
    if show:
        from IPython.display import display

        display(view)
    view.thread.start()
    return view


def launch(configs: list[RunConfig], labels: list[str], wait: bool = True, show: bool = True) -> SeriesView:
    """:func:`begin`; returns once the first run has started, or with ``wait`` once the last has ended."""
    view = begin(configs, labels, show)
    with stop_on_interrupt(view.stop, view.thread.join, view.interrupt_note):
        wait_until(view.started.is_set)
        if wait:
            wait_until(lambda: not view.thread.is_alive())
    return view


async def launch_async(configs: list[RunConfig], labels: list[str], show: bool = True) -> SeriesView:
    """:func:`begin`, then await the last run's end. Interrupting the kernel stops the run in progress, skips the
    rest and raises ``asyncio.CancelledError`` saying so."""
    view = begin(configs, labels, show)
    async with stop_on_cancel(view.stop, lambda: not view.thread.is_alive(), view.interrupt_note):
        await wait_until_async(lambda: not view.thread.is_alive())
    return view


def only_run(view: SeriesView, method: str) -> RunHandle:
    """The handle of a one-run view; raises, with the view's reason, if the run did not start."""
    if not view.handles:
        raise AlignLabError(f"run: {method} did not start: {view.heading.value}")
    return view.handles[0]


def train(method: str, wait: bool = True, show: bool = True, **values: Any) -> RunHandle:
    """One run with its live curves, progress and Stop button; returns its handle."""
    view = launch([RunConfig.from_dict({**values, "method": method})], [values.get("run_name") or method], wait, show)
    return only_run(view, method)


async def train_async(method: str, show: bool = True, **values: Any) -> RunHandle:
    """:func:`train` for a cell that awaits it, until the run ends: ``sft = await train_async("sft")``."""
    config = RunConfig.from_dict({**values, "method": method})
    return only_run(await launch_async([config], [values.get("run_name") or method], show), method)


def run_series(configs: list[RunConfig], labels: list[str], wait: bool = True, show: bool = True) -> list[RunHandle]:
    """Train ``configs`` one after another, overlaying their curves live; returns their handles.

    With ``wait=False`` the list fills as runs start.
    """
    return launch(configs, labels, wait, show).handles


def grid(method: str, **values: Any) -> tuple[list[RunConfig], list[str]]:
    """Configs and labels of every combination of the list-valued knobs (scalars shared by all).

    >>> configs, labels = grid("dpo", beta=[0.1, 0.5], loss_type=["sigmoid", "ipo"], max_steps=20)
    >>> labels[1], configs[1].method_args["loss_type"], configs[1].max_steps
    ('beta=0.1, loss_type=ipo', 'ipo', 20)
    """
    axes = {name: list(value) for name, value in values.items() if isinstance(value, (list, tuple))}
    fixed = {name: value for name, value in values.items() if name not in axes}
    combos = [dict(zip(axes, chosen)) for chosen in itertools.product(*axes.values())]
    labels = [", ".join(f"{name}={value}" for name, value in combo.items()) or method for combo in combos]
    configs = [RunConfig.from_dict({**fixed, **combo, "method": method, "run_name": run_name(label)})
               for combo, label in zip(combos, labels)]
    return configs, labels


def sweep(method: str, wait: bool = True, show: bool = True, **values: Any) -> list[RunHandle]:
    """Train one run per combination of the list-valued knobs (see :func:`grid`), overlaid live.

    ``sweep("dpo", beta=[0.1, 0.5], loss_type=["sigmoid", "ipo"], max_steps=20)`` trains four runs.
    """
    configs, labels = grid(method, **values)
    return run_series(configs, labels, wait=wait, show=show)


async def sweep_async(method: str, show: bool = True, **values: Any) -> list[RunHandle]:
    """:func:`sweep` for a cell that awaits it, until the last run ends: ``runs = await sweep_async("dpo", ...)``."""
    return (await launch_async(*grid(method, **values), show=show)).handles


def compare(*settings: dict[str, Any], wait: bool = True, show: bool = True, **common: Any) -> list[RunHandle]:
    """One run per dict of ``settings`` (each names its ``method`` and own knobs), sharing ``common``.

    ``compare(dict(method="dpo"), dict(method="dpo", loss_type="ipo"), dict(method="kto"), max_steps=20)``
    """
    return run_series(*compared(*settings, **common), wait=wait, show=show)


async def compare_async(*settings: dict[str, Any], show: bool = True, **common: Any) -> list[RunHandle]:
    """:func:`compare` for a cell that awaits it, until the last run ends: ``runs = await compare_async(...)``."""
    return (await launch_async(*compared(*settings, **common), show=show)).handles


def compared(*settings: dict[str, Any], **common: Any) -> tuple[list[RunConfig], list[str]]:
    """Configs and labels of :func:`compare`'s runs: one per dict of ``settings``, sharing ``common``."""
    labels = [", ".join([str(each["method"]), *(f"{k}={v}" for k, v in each.items() if k != "method")])
              for each in settings]
    configs = [RunConfig.from_dict({**common, **each, "run_name": run_name(label)})
               for each, label in zip(settings, labels)]
    return configs, labels
