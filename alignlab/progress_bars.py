"""The libraries' progress bars, off while a run trains and back as they were after.

The lab shows its own progress (the CLI's bar, the forms' curves); the bars of transformers ("Loading
weights"), the Hugging Face Hub and datasets would print into notebooks and logs. A run turns them off for
its duration only, so training with alignlab leaves the rest of the user's process as it found it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_bars_lock = threading.Lock()
_bars_users = 0  # runs training now in this process (threads): the last one to end restores the bars
_bars_before: list[bool] = []


def _progress_bar_switches() -> list[tuple]:
    """(is on, turn on, turn off) of the progress bars of transformers ("Loading weights"; it switches the
    Hub's too), the Hub and datasets."""
    import datasets
    import huggingface_hub.utils as hub
    from transformers.utils import logging as transformers_logging

    return [(transformers_logging.is_progress_bar_enabled, transformers_logging.enable_progress_bar,
             transformers_logging.disable_progress_bar),
            (lambda: not hub.are_progress_bars_disabled(), hub.enable_progress_bars, hub.disable_progress_bars),
            (datasets.is_progress_bar_enabled, datasets.enable_progress_bars, datasets.disable_progress_bars)]


@contextmanager
def progress_bars_off() -> Iterator[None]:
    """The libraries' progress bars off while a run trains (the lab shows its own progress; theirs would print
    into notebooks), then each back as it was: a run leaves the rest of the process as it found it. With runs
    in several threads, the bars come back when the last one ends."""
    global _bars_users
    switches = _progress_bar_switches()
    with _bars_lock:
        if _bars_users == 0:
            _bars_before[:] = [is_on() for is_on, _, _ in switches]
            for is_on, _, turn_off in switches:
                if is_on():
                    turn_off()
        _bars_users += 1
    try:
        yield
    finally:
        with _bars_lock:
            _bars_users -= 1
            if _bars_users == 0:
                for (is_on, turn_on, turn_off), was_on in zip(switches, _bars_before):
                    if was_on != is_on():
                        (turn_on if was_on else turn_off)()
