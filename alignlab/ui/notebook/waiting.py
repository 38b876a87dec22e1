"""Waiting in a cell for runs to end, with a live Stop button, and an interrupt that stops the runs.

A Jupyter kernel reads the browser's requests on its main thread, between cells: while a cell blocks
(``lab.wait()``, ``train(...)``), a click on a widget such as Stop waits in the queue until the cell
ends. :func:`process_ui_events` handles the widget (comm) messages among them from inside the
cell, the way ipykernel (>= 7.4) handles them while an ``await``-ing cell holds the shell: each is
dispatched at once (``dispatch_shell(..., concurrent=True)``); every other request, the next cell's
included, goes back to the kernel's queue in arrival order and runs after this cell, as it would
have. That is the idea of the ``jupyter-ui-poll`` package, whose 1.1 release does nothing on
ipykernel 7.4 (it calls ``Kernel.do_one_iteration``, which 7.4 removed). Outside a kernel (plain
Python, tests) and on older kernels it just sleeps.

:func:`wait_until` polls a condition that way. :func:`stop_on_interrupt` turns the kernel's interrupt
(the ■ button, ``KeyboardInterrupt``) into a clean stop: the runs are asked to stop, they save what
they have and end ``stopped``, then the ``KeyboardInterrupt`` goes on, so a "Run all" stops there too.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

POLL_S = 0.05  # how often a waiting cell checks its condition (and at most how long a click waits)
COMM_MESSAGES = frozenset({"comm_open", "comm_msg", "comm_close"})


def widget_kernel() -> Any | None:
    """The IPython kernel running this cell when it can handle widget messages during the cell, else None.

    That takes ipykernel >= 7.4 (``dispatch_shell`` with ``concurrent``), called on the kernel's main thread.
    """
    shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
    kernel = getattr(shell, "kernel", None)
    dispatch = getattr(kernel, "dispatch_shell", None)
    if dispatch is None or "concurrent" not in inspect.signature(dispatch).parameters:
        return None
    return kernel if threading.current_thread() is threading.main_thread() else None


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
    """Handle widget messages until ``done()`` is true or ``timeout`` seconds pass; returns ``done()``."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not done():
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        process_ui_events(POLL_S if left is None else min(POLL_S, left))
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


def stopped_note(handles: Iterable[Any], skipped: int = 0) -> str:
    """What an interrupt left: each run's state, step and folder, and how many queued runs never started."""
    notes = [f"run {handle.run_id} {handle.state} at step {handle.status['step']} (saved in {handle.run_dir})"
             for handle in handles]
    return "; ".join(notes + [f"{skipped} more not started"] * bool(skipped)) or "no run had started"
