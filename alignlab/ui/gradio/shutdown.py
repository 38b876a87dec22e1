"""How ``alignlab app`` ends: SIGTERM, SIGINT (Ctrl-C) or SIGHUP stops the training job as the Stop button does.

The job's worker is a process of its own session (so a Ctrl-C in the terminal reaches the server only), and
nothing else would stop it: a server that just died would leave it training. So the first of those signals ends
serving; the queue then cancels the waiting jobs, sends the training one SIGINT (it saves its adapter and samples
and marks its run ``stopped``), and the app waits for it however long the save takes before it exits. More
signals meanwhile only say that it is already stopping.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator

from alignlab.signals import noted_signals

END_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP")
POLL_S = 0.1


def serve_until_signalled(demo) -> None:
    """Serve the launched ``demo`` until one of :data:`END_SIGNALS` arrives (or the server stops), then close it and
    stop its training jobs, waiting for them to save. Call it from the main thread (signals are handled there)."""
    with _noted_signals() as received:
        while demo.is_running and not received:
            time.sleep(POLL_S)
        what = received[0] if received else "the server stopped"
        jobs = demo.services.jobs
        training = [job for job in jobs.jobs if job.active]
        if training:
            _say(f"{what}: stopping the training job at its next step; waiting for it to save what it has...")
        else:
            _say(f"{what}: closing the app")
        demo.close()
        jobs.close(wait_s=None)
        for job in training:
            _say(f"{job.label}: {job.state}" + (f" ({job.error})" if job.error else ""))


@contextlib.contextmanager
def _noted_signals() -> Iterator[list[str]]:
    """While the app serves and shuts down, :data:`END_SIGNALS` are noted by name in the list yielded (the first
    ends serving; any later one says the app is already stopping) and never raise, so none can cut the save short.
    The previous handlers come back afterwards. Outside the main thread nothing is installed."""
    def again(received: list[str]) -> None:
        if len(received) > 1:
            _say(f"{received[-1]}: already stopping (a training job, if any, is saving what it has); wait for it")

    with noted_signals(END_SIGNALS, on_signal=again) as received:
        yield received


def _say(text: str) -> None:
    """A line on stderr, unless stderr is gone (the terminal that sent SIGHUP has closed)."""
    try:
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError, RuntimeError):  # RuntimeError: a signal arrived in the middle of another print
        pass
