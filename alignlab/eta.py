"""When a queued job will start and finish, from how long recent jobs took on this machine.

A job's time is a start-up (the worker process starting, the model and data loading, the trainer being built)
plus its steps at the machine's pace. Both are measured on jobs that ended here (:func:`measured_pace`: the
pace between the first and the last logged step, :func:`pace`, and the rest of the job's wall
time as its start-up), and the median of the most recent ones of the same model is the estimate
(:func:`recent_pace`): a 135M model and a tiny test model differ fifty-fold, so another model's pace is not
used. Nothing ended yet: the estimate is None and the UI says "unknown".

:func:`schedule` then places the queued jobs, in order, on the slots the queue runs at once (``--max-jobs``):
each starts when the first slot frees up. :func:`runs_pace` measures the same from the run folder's ended runs
(their timed rows and the wall time their status recorded), so a preset can say how long it took here lately.
:func:`pace` is also a running run's ETA (:attr:`alignlab.runner.RunHandle.status`, both front ends' progress).
Pure arithmetic, no file or UI here.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

RECENT = 5  # jobs of a model that the estimate takes the median of


def pace(rows: list[dict], total_steps: int | None) -> tuple[float | None, float | None]:
    """``(seconds per step, seconds left)`` of a run from its timed rows: the time between the first and the
    last logged step over the steps between them (so loading the model is not counted as training), and
    that pace times the steps still to go. None where it cannot be told yet (fewer than two timed steps, or
    no total).

    >>> pace([{"step": 1, "time": 10.0}, {"step": 3, "time": 14.0}], total_steps=10)
    (2.0, 14.0)
    >>> pace([{"step": 1, "time": 10.0}], total_steps=10)
    (None, None)
    """
    timed = [row for row in rows if row.get("time") is not None and row.get("step") is not None]
    if len(timed) < 2 or timed[-1]["step"] <= timed[0]["step"]:
        return None, None
    per_step = (timed[-1]["time"] - timed[0]["time"]) / (timed[-1]["step"] - timed[0]["step"])
    left = None if not total_steps else per_step * max(0, total_steps - timed[-1]["step"])
    return per_step, left


@dataclass(frozen=True)
class Pace:
    """How long a job of one model takes here: its start-up seconds and seconds per step."""

    startup_s: float
    step_s: float

    def seconds(self, steps: int | None) -> float | None:
        """The wall time of a job of ``steps`` steps (None when its steps are not known: an epoch-based run)."""
        return None if not steps else self.startup_s + self.step_s * steps


def measured_pace(rows: list[dict], wall_s: float) -> Pace | None:
    """The pace of one ended job from its timed metric rows and its wall time (worker start to end); None
    with fewer than two timed steps.

    >>> measured_pace([{"step": 1, "time": 100.0}, {"step": 11, "time": 105.0}], wall_s=20.0)
    Pace(startup_s=14.5, step_s=0.5)
    """
    step_s, _ = pace(rows, None)
    if step_s is None:
        return None
    steps = max(row["step"] for row in rows if row.get("step") is not None)
    return Pace(max(0.0, wall_s - step_s * steps), step_s)


def recent_pace(paces: list[Pace], recent: int = RECENT) -> Pace | None:
    """The median start-up and step time of the last ``recent`` paces (oldest first); None without any.

    >>> recent_pace([Pace(10.0, 1.0), Pace(20.0, 3.0), Pace(12.0, 2.0)])
    Pace(startup_s=12.0, step_s=2.0)
    >>> recent_pace([]) is None
    True
    """
    last = paces[-recent:]
    if not last:
        return None
    return Pace(statistics.median(p.startup_s for p in last), statistics.median(p.step_s for p in last))


def runs_pace(runs: list[dict], model: str, recent: int = RECENT) -> tuple[Pace | None, int]:
    """``(pace, runs measured)``: :func:`recent_pace` of the last ``recent`` finished runs of ``model`` in ``runs``
    (run summaries newest first, :func:`alignlab.rundir.list_runs`), each measured from its rows and its recorded
    wall time (``elapsed_s``); ``(None, 0)`` when none can be.

    >>> run = {"model": "m", "state": "finished", "elapsed_s": 20.0,
    ...        "history": [{"step": 1, "time": 100.0}, {"step": 11, "time": 105.0}]}
    >>> runs_pace([run, {**run, "model": "other"}], "m")
    (Pace(startup_s=14.5, step_s=0.5), 1)
    """
    measured = [measured_pace(run.get("history") or [], run["elapsed_s"]) for run in runs
                if run.get("model") == model and run.get("state") == "finished"
                and isinstance(run.get("elapsed_s"), (int, float))]
    paces = [found for found in measured if found is not None][:recent]
    return recent_pace(paces[::-1], recent), len(paces)


def schedule(busy_s: list[float | None], queued_s: list[float | None], slots: int = 1) -> list[tuple | None]:
    """``(starts in, done in)`` seconds from now for each queued job, in queue order, or None where it cannot be
    told.

    ``busy_s``: seconds left of each job training now (None: not known yet); ``queued_s``: each queued job's
    estimated wall time (None: not known); ``slots``: jobs trained at once. A job starts when the first slot
    frees up; once a slot's time is unknown, so is every later start on it.

    >>> schedule([30.0], [60.0, 60.0])
    [(30.0, 90.0), (90.0, 150.0)]
    >>> schedule([30.0], [60.0, 60.0], slots=2)
    [(0.0, 60.0), (30.0, 90.0)]
    >>> schedule([None], [60.0])
    [None]
    """
    free_at = sorted(math.inf if left is None else max(0.0, left) for left in busy_s)
    free_at = (free_at + [0.0] * slots)[:max(slots, len(free_at))]
    free_at.sort()
    times: list[tuple | None] = []
    for seconds in queued_s:
        start = free_at.pop(0)
        end = math.inf if seconds is None or math.isinf(start) else start + seconds
        times.append(None if math.isinf(end) else (start, end))
        free_at.append(end)
        free_at.sort()
    return times
