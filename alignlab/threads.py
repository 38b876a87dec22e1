"""How many CPU threads a run computes with when nobody said: the cores that other work leaves free.

torch's CPU kernels run on OpenMP threads, which wait for each other at every barrier. When a run takes all the
cores and another process keeps one of them busy, every barrier waits for the thread that lost its core. On the
project's 2-CPU machine, beside one other 1-thread process, the default DPO run reached its first curve point in
70.1 s with 2 threads and in 28.2 s with 1 (``python -m bench.first_point --threads 2`` / ``--threads 1``,
2026-12-06). On a quiet machine, 2 threads took 15.3 s.

So before training on the CPU, :func:`apply` measures for a moment how many cores other processes keep busy
(:func:`busy_elsewhere`, from ``/proc/stat``) and sets torch's thread count to the cores left
(:func:`free_threads`), never above torch's own default. ``OMP_NUM_THREADS`` set by the user, or by the app for its
workers (:mod:`alignlab.ui.gradio.cpu`), always wins. Where ``/proc`` cannot tell (not Linux, a process pinned to
some of the cores), nothing changes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

SAMPLE_S = 0.2  # how long the other processes' CPU use is sampled
_DEFAULT: list[int] = []  # torch's thread count before the first change


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs since boot, from ``/proc/stat``; None where it cannot be read."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle and waiting for I/O
    return sum(fields[:8]) - idle, sum(fields[:8])


def _own_jiffies() -> int | None:
    """This process's user and system jiffies (all its threads)."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]) + int(fields[12])


def busy_elsewhere(seconds: float = SAMPLE_S) -> float | None:
    """Cores kept busy by other processes over the next ``seconds`` (1.0 = one core's worth), or None where
    ``/proc`` cannot tell (not Linux, or the process is pinned to some of the machine's cores)."""
    cores = os.cpu_count() or 0
    if not cores or len(os.sched_getaffinity(0)) != cores:
        return None
    before, own_before = _cpu_times(), _own_jiffies()
    time.sleep(seconds)
    after, own_after = _cpu_times(), _own_jiffies()
    if None in (before, after, own_before, own_after) or after[1] == before[1]:
        return None
    busy = (after[0] - before[0]) - (own_after - own_before)
    return max(0.0, busy / (after[1] - before[1]) * cores)


def free_threads(cores: int, busy: float, most: int) -> int:
    """Threads for a run: the cores not kept busy by other work (a core counts as busy from half of it on), at
    least 1 and at most ``most``.

    >>> free_threads(2, 0.97, 2), free_threads(2, 0.3, 2), free_threads(16, 3.6, 8), free_threads(2, 2.0, 2)
    (1, 2, 8, 1)
    """
    return max(1, min(most, cores - int(busy + 0.5)))


def apply() -> str | None:
    """Set torch's CPU threads to the cores other work leaves free (see the module docstring); returns a line
    saying so when it chose fewer threads than torch's default, else None."""
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    import torch

    if not _DEFAULT:
        _DEFAULT.append(torch.get_num_threads())
    busy = busy_elsewhere()
    if busy is None:
        return None
    threads = free_threads(os.cpu_count() or 1, busy, _DEFAULT[0])
    torch.set_num_threads(threads)
    if threads < _DEFAULT[0]:
        return (f"other processes keep about {busy:.1f} of {os.cpu_count()} cores busy: training with {threads} "
                f"thread{'s' if threads != 1 else ''} instead of {_DEFAULT[0]}, as threads that share cores wait for "
                "each other (set OMP_NUM_THREADS to choose)")
    return None
