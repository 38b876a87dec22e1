"""Signals noted, never raised: how a process that trains stops cleanly (the CLI's run, the app's shutdown).

A training job must save what it has when the terminal sends SIGINT, SIGTERM or SIGHUP; a handler that raises
(Python's default KeyboardInterrupt) could cut that save short or print a traceback. :func:`noted_signals` installs
handlers that only note each signal by name, for the caller's loop to act on.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Sequence


@contextlib.contextmanager
def noted_signals(names: Sequence[str], restore: bool = True,
                  on_signal: Callable[[list[str]], None] | None = None) -> Iterator[list[str]]:
    """While inside, the signals ``names`` (those this platform has) are noted by name in the list yielded, and
    ``on_signal(noted)`` is called after each. The handlers are installed whatever the process inherited (a shell
    starts a background job with SIGINT ignored). Afterwards the previous handlers come back, with ``restore``;
    else these signals stay ignored (the process is about to end, and one more must not become a traceback).
    Outside the main thread (where handlers cannot be set) nothing is installed and nothing is noted."""
    received: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def note(number, frame) -> None:
        received.append(signal.Signals(number).name)
        if on_signal is not None:
            on_signal(received)

    previous = {number: signal.signal(number, note)
                for number in (getattr(signal, name, None) for name in names) if number is not None}
    try:
        yield received
    finally:
        for number, handler in previous.items():
            signal.signal(number, (signal.SIG_DFL if handler is None else handler) if restore else signal.SIG_IGN)
