"""A run trained from the command line, watched in the terminal: a progress bar with its headline figures, and
SIGINT, SIGTERM and SIGHUP turned into a clean stop (the run saves what it has and ends ``stopped``).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

from alignlab.methods.base import headline_of
from alignlab.metrics import HEADLINE_LABELS
from alignlab.signals import noted_signals

STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")  # each stops a run trained here cleanly (see signals_stop_the_run)


@contextlib.contextmanager
def signals_stop_the_run(restore: bool = True) -> Iterator[list[str]]:
    """While a run trains here: SIGINT (Ctrl-C, once or again and again), SIGTERM and SIGHUP are noted, by
    name, in the list yielded, for :func:`follow` to stop the run at the next step; it then saves what it
    has and ends ``stopped``. The handlers are installed whatever this process inherited (a shell starts a
    background job with SIGINT ignored) and never raise, so a signal can neither interrupt the save nor print
    a traceback. The previous handlers come back afterwards, with ``restore``; else (the process ends after the
    run) these signals are ignored from then on: the run is saved, and a Ctrl-C more must not turn the exit into
    a traceback (Python sets its own handlers back to the default while it shuts down; an ignored signal stays
    ignored)."""
    with noted_signals(STOP_SIGNALS, restore=restore) as received:
        yield received


def follow(handle, quiet: bool, signals: list[str]) -> None:
    """Progress bar until the run ends; a signal named in ``signals`` (see :func:`signals_stop_the_run`)
    stops the run cleanly at the next step (it still saves)."""
    from tqdm import tqdm

    bar = None if quiet else tqdm(total=None, desc=handle.run_id, unit="step", dynamic_ncols=True)

    def on_event(event):
        if bar is None:
            return
        if handle.total_steps and bar.total != handle.total_steps:
            bar.total = handle.total_steps
        bar.n = event["step"]
        metrics = event["metrics"]
        headline = headline_of(handle.config.method, metrics)  # the reward, KL and instruction followed, when logged
        shown = {"loss": metrics.get("loss"), "rewards/margins": metrics.get("rewards/margins"),  # DPO: between probes
                 **{HEADLINE_LABELS[field]: value for field, value in headline.items()}}
        bar.set_postfix({k: f"{v:.3g}" for k, v in shown.items() if v is not None}, refresh=True)

    unsubscribe = handle.subscribe(on_event)
    noted = 0
    try:
        while not handle.done:
            handle.wait(0.1)
            if len(signals) > noted:  # said once for the first signal, once for any more
                if not noted:
                    _say(f"\n{signals[0]}: stopping at the next step, then saving what the run has so far...")
                if len(signals) > 1 and noted <= 1:
                    _say(f"\n{signals[-1]}: already stopping; the run is saving what it has, wait for it")
                noted = len(signals)
                handle.stop()
        handle.wait()  # the training thread ends too: exiting while it frees tensors would abort the process
    finally:
        unsubscribe()
        if bar is not None:
            bar.close()


def _say(text: str) -> None:
    """A line on stderr, unless stderr is gone (the terminal that sent SIGHUP has closed)."""
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass
