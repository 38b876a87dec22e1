"""Waiting in a cell for runs to end, with a live Stop button, and an interrupt that stops the runs.

A Jupyter kernel reads the browser's requests on its main thread, between cells: while a cell blocks,
a click on a widget such as Stop waits in the queue until the cell ends. Two waits keep Stop live:

- **Awaiting** (``await lab.wait_async()``, :func:`wait_until_async`): the cell sleeps with
  ``await asyncio.sleep``, and ipykernel (>= 7.4, :data:`AWAIT_SINCE`) handles widget (comm) messages
  while a cell awaits, by its public behaviour. The kernel's interrupt (■) cancels an awaiting cell;
  :func:`stop_on_cancel` turns that into a clean stop.
- **Blocking** (``lab.wait()``, :func:`wait_until`): :func:`process_ui_events` handles the widget messages
  from inside the cell, through ipykernel's internals, the way ipykernel handles them for an awaiting
  cell: each is dispatched at once (``dispatch_shell(..., concurrent=True)``); every other request, the
  next cell's included, goes back to the kernel's queue in arrival order and runs after this cell, as it
  would have. That is the idea of the ``jupyter-ui-poll`` package, whose 1.1 release does nothing on
  ipykernel 7.4 (it calls ``Kernel.do_one_iteration``, which 7.4 removed). Internals change without
  notice, so this path runs only on the releases it was written for (:data:`DISPATCH_VERSIONS`).

Where a wait cannot keep Stop live (an older ipykernel, or a newer one for the blocking wait) it says
so once, with a :class:`StopNotLiveWarning` naming the fix, and sleeps. Outside a kernel (plain Python,
tests) both waits just sleep, silently. :func:`stop_on_interrupt` turns the kernel's interrupt of a
blocking cell (``KeyboardInterrupt``) into a clean stop: the runs are asked to stop, they save what they
have and end ``stopped``, then the interrupt goes on, so a "Run all" stops there too.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import re
import sys
import threading
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

POLL_S = 0.05  # how often a waiting cell checks its condition (and at most how long a click waits)
COMM_MESSAGES = frozenset({"comm_open", "comm_msg", "comm_close"})
AWAIT_SINCE = (7, 4)  # the first ipykernel that handles widget messages while a cell awaits
DISPATCH_VERSIONS = ((7, 4), (8, 0))  # ipykernel releases (from, before) whose internals the blocking wait fits
ASYNC_FIX = "`await lab.wait_async()` (or `await train_async(...)`, `sweep_async`, `compare_async`)"


class StopNotLiveWarning(UserWarning):
    """A cell waits in a kernel that cannot handle the Stop button until the cell ends."""


def running_kernel() -> Any | None:
    """The IPython kernel this code runs in, or None outside one (plain Python, a terminal IPython)."""
    shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
    return getattr(shell, "kernel", None)


def ipykernel_version() -> tuple[int, int] | None:
    """``(major, minor)`` of the loaded ipykernel; None when it is not loaded or its version is unreadable."""
    match = re.match(r"(\d+)\.(\d+)", str(getattr(sys.modules.get("ipykernel"), "__version__", "")))
    return (int(match[1]), int(match[2])) if match else None


def await_keeps_stop_live(version: tuple[int, int] | None) -> bool:
    """Whether this ipykernel release handles widget messages while a cell awaits (public behaviour)."""
    return version is not None and version >= AWAIT_SINCE


def dispatch_fits(version: tuple[int, int] | None, kernel: Any) -> bool:
    """Whether the blocking wait may use this kernel's internals: a release in :data:`DISPATCH_VERSIONS` whose
    kernel has what :func:`dispatch_now` calls (``dispatch_shell`` with ``concurrent``, the parent accessors)."""
    first, after = DISPATCH_VERSIONS
    if version is None or not first <= version < after:
        return False
    dispatch = getattr(kernel, "dispatch_shell", None)
    if dispatch is None or "concurrent" not in inspect.signature(dispatch).parameters:
        return False
    return all(hasattr(kernel, name) for name in ("_parent_ident", "get_parent", "set_parent", "session"))


def widget_kernel() -> Any | None:
    """The IPython kernel running this cell when the blocking wait can handle widget messages during the
    cell (see :func:`dispatch_fits`), called on the kernel's main thread; else None."""
    kernel = running_kernel()
    if kernel is None or not dispatch_fits(ipykernel_version(), kernel):
        return None
    return kernel if threading.current_thread() is threading.main_thread() else None


def dotted(version: tuple[int, int] | None) -> str:
    """``(7, 4)`` -> ``"7.4"``; None -> ``"unknown"``."""
    return "unknown" if version is None else ".".join(map(str, version))


def stop_not_live_reason(awaiting: bool) -> str | None:
    """Why a cell waiting here (``awaiting``: with ``await``) leaves Stop unanswered until it ends; None when
    Stop stays live, or outside a kernel (or off its main thread), where no cell holds the kernel."""
    kernel = running_kernel()
    if kernel is None or threading.current_thread() is not threading.main_thread():
        return None
    version = ipykernel_version()
    blocking_fits = dispatch_fits(version, kernel)
    if not await_keeps_stop_live(version) and (awaiting or not blocking_fits):
        return (f"ipykernel {dotted(version)} handles widget clicks only once the cell ends; upgrade it with "
                f"`pip install -U 'ipykernel>={dotted(AWAIT_SINCE)}'` and wait with {ASYNC_FIX}")
    if not awaiting and not blocking_fits:
        first, after = DISPATCH_VERSIONS
        return (f"the blocking wait serves widget clicks on ipykernel {dotted(first)} up to (not including) "
                f"{dotted(after)}, and this is ipykernel {dotted(version)}: wait with {ASYNC_FIX} instead")
    return None


_warned = threading.Event()  # the warning below is shown once per process


def warn_if_stop_not_live(awaiting: bool) -> None:
    """Say once per process, with a :class:`StopNotLiveWarning`, when Stop cannot answer during this wait."""
    reason = stop_not_live_reason(awaiting)
    if reason is not None and not _warned.is_set():
        _warned.set()
        warnings.warn(f"alignlab: the Stop button cannot answer while this cell waits: {reason}. Interrupting "
                      "the kernel (■) still stops the run and saves it.", StopNotLiveWarning, stacklevel=2)


def process_ui_events(seconds: float = POLL_S) -> None:
    """Wait up to ``seconds`` for requests to the kernel and handle the widget messages among them.

    Returns early once something came. Outside a kernel this is ``time.sleep(seconds)``.
    """
    kernel = widget_kernel()
    if kernel is None:
        time.sleep(seconds)
        return
    import zmq
    from ipykernel.eventloops import get_shell_stream

    stream = get_shell_stream(kernel)  # the main shell's requests (the kernel's loop is blocked by this cell)
    if not stream.socket.poll(max(0, int(seconds * 1000)), zmq.POLLIN):
        return
    later = []
    try:
        while True:
            try:
                message = stream.socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            if message_type(kernel, message) in COMM_MESSAGES:
                dispatch_now(kernel, message)
            else:
                later.append(message)
    finally:  # back to the kernel's queue, in order: they run once this cell ends
        for message in later:
            asyncio.ensure_future(stream._recv_callback(message))


def message_type(kernel: Any, message: list) -> str | None:
    """The ``msg_type`` of a raw shell message (header only; its signature is checked again on dispatch)."""
    try:
        _, frames = kernel.session.feed_identities(message, copy=False)
        return kernel.session.deserialize(frames, content=False, copy=False)["header"]["msg_type"]
    except Exception:  # noqa: BLE001 - the kernel's own dispatch reports a bad message
        return None


def dispatch_now(kernel: Any, message: list) -> None:
    """Handle a widget message now, from inside the running cell, then give the cell its output back.

    Comm handlers are plain functions, so the kernel's ``dispatch_shell`` coroutine runs to its end
    without an event loop; one that would wait is closed (and logged) rather than left half run.
    """
    ident, parent = kernel._parent_ident["shell"], kernel.get_parent("shell")
    steps = kernel.dispatch_shell(message, subshell_id=None, concurrent=True)
    try:
        steps.send(None)
    except StopIteration:
        pass
    else:
        steps.close()
        kernel.log.warning("alignlab: a widget message handler waited on the event loop; it was skipped")
    finally:
        kernel.set_parent(ident, parent, channel="shell")  # the cell's output stays in the cell


def wait_until(done: Callable[[], bool], timeout: float | None = None) -> bool:
    """Handle widget messages until ``done()`` is true or ``timeout`` seconds pass; returns ``done()``.

    In a kernel this wait cannot serve (see :func:`dispatch_fits`) it warns once and sleeps.
    """
    if not done():
        warn_if_stop_not_live(awaiting=False)
    deadline = None if timeout is None else time.monotonic() + timeout
    while not done():
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        process_ui_events(POLL_S if left is None else min(POLL_S, left))
    return done()


async def wait_until_async(done: Callable[[], bool], timeout: float | None = None) -> bool:
    """Poll ``done()`` every :data:`POLL_S` with ``await asyncio.sleep`` until it is true or ``timeout`` seconds
    pass; returns ``done()``. Awaited in a cell, the kernel handles widget clicks meanwhile (ipykernel >= 7.4;
    on an older one it warns once).

    >>> asyncio.run(wait_until_async(lambda: True))
    True
    """
    if not done():
        warn_if_stop_not_live(awaiting=True)
    deadline = None if timeout is None else time.monotonic() + timeout
    while not done():
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        await asyncio.sleep(POLL_S if left is None else min(POLL_S, left))
    return done()


@contextlib.contextmanager
def stop_on_interrupt(stop: Callable[[], None], settle: Callable[[], None],
                      describe: Callable[[], str] = lambda: "") -> Iterator[None]:
    """On ``KeyboardInterrupt`` inside: ``stop()`` the runs, ``settle()`` (wait until they have ended
    and saved), then raise ``KeyboardInterrupt`` again, with ``describe()`` (what was stopped) as its message.

    A second interrupt while the runs settle is not caught: the runs still stop at their next step.
    """
    try:
        yield
    except KeyboardInterrupt:
        stop()
        settle()
        raise KeyboardInterrupt(describe()) from None


@contextlib.asynccontextmanager
async def stop_on_cancel(stop: Callable[[], None], ended: Callable[[], bool],
                         describe: Callable[[], str] = lambda: "") -> AsyncIterator[None]:
    """:func:`stop_on_interrupt` for a cell that awaits: ipykernel turns the interrupt of an awaiting cell into
    ``asyncio.CancelledError``. On it: ``stop()`` the runs, wait (awaiting) until ``ended()``, then raise
    ``CancelledError`` again with ``describe()`` as its message. A second interrupt meanwhile is not caught.
    """
    try:
        yield
    except asyncio.CancelledError:
        stop()
        await wait_until_async(ended)
        raise asyncio.CancelledError(describe()) from None


def stopped_note(handles: Iterable[Any], skipped: int = 0) -> str:
    """What an interrupt left: each run's state, step and folder, and how many queued runs never started."""
    notes = [f"run {handle.run_id} {handle.state} at step {handle.status['step']} (saved in {handle.run_dir})"
             for handle in handles]
    return "; ".join(notes + [f"{skipped} more not started"] * bool(skipped)) or "no run had started"
