"""Plot data: run histories -> the series and points every plot draws. Pure data, no plotting library.

Both front ends draw from these functions (through :mod:`alignlab.ui.figures`), so a curve looks the
same in the notebook and in the app. A history is a list of ``metrics.jsonl`` rows: dicts with
``step`` and TRL's metric keys (``loss``, ``rewards/margins``, ``objective/kl``, ``probe/reward``, ...).
Live runs give events ``{"step", "time", "metrics"}`` instead; :func:`rows_from_events` flattens them.

The reward-vs-KL *frontier* (the DPO paper's Fig. 2) pairs a run's reward with its KL from the
reference at the same step. The probe logs ``probe/reward`` and ``probe/kl`` on one row, so every
method gets a frontier; RL trainers' own ``objective/kl`` with ``objective/scores`` (or ``reward``)
is the fallback for runs without a probe.
"""

from __future__ import annotations

from typing import Iterable

from alignlab.methods import get_method
from alignlab.methods.base import Panel
from alignlab.metrics import KL_KEYS, LOSS_KEYS, REWARD_KEYS

# (kl key, reward keys) pairs tried in order; the first pair with any point wins.
FRONTIER_SOURCES = (
    ("probe/kl", ("probe/reward",)),
    ("objective/kl", ("objective/scores", "reward")),
)


def series(rows: list[dict], key: str) -> tuple[list[int], list[float]]:
    """Steps and values of ``key`` over the rows that have it (missing and ``None`` values skipped).

    >>> series([{"step": 1, "loss": 0.7}, {"step": 2}, {"step": 3, "loss": 0.5}], "loss")
    ([1, 3], [0.7, 0.5])
    """
    steps, values = [], []
    for row in rows:
        value = row.get(key)
        if value is not None:
            steps.append(int(row.get("step", len(steps))))
            values.append(float(value))
    return steps, values


def panels_for(method: str) -> list[Panel]:
    """The plot panels of a method: Loss, Reward, KL from reference, then the method's own panels.

    Each key is drawn once: a method's own panel claims its keys (DPO's implicit
    ``rewards/chosen``, KTO's ``kl`` estimate) and the common panels keep the rest.

    >>> [panel.title for panel in panels_for("dpo")][:3]
    ['Loss', 'Reward', 'KL from reference']
    """
    own = list(get_method(method).panels)
    claimed = {key for panel in own for key in panel.keys}
    common = [Panel(title, tuple(key for key in keys if key not in claimed))
              for title, keys in (("Loss", LOSS_KEYS), ("Reward", REWARD_KEYS), ("KL from reference", KL_KEYS))]
    return [panel for panel in common if panel.keys] + own


def merged_panels(methods: Iterable[str]) -> list[Panel]:
    """Panels of several methods merged by title (keys united, in order of first appearance), for
    overlaying runs of different methods.

    >>> merged = merged_panels(["kto", "dpo"])
    >>> [panel.title for panel in merged][-3:], merged[2].keys
    (['KL estimate', 'Reward margin', 'Preference accuracy'], ('objective/kl', 'probe/kl', 'kl'))
    """
    merged: dict[str, list[str]] = {}
    for method in methods:
        for panel in panels_for(method):
            keys = merged.setdefault(panel.title, [])
            keys.extend(key for key in panel.keys if key not in keys)
    return [Panel(title, tuple(keys)) for title, keys in merged.items()]


def frontier_points(rows: list[dict]) -> list[dict]:
    """``[{"step", "kl", "reward"}]``: reward and KL logged on the same row, in step order.

    Uses the probe's ``probe/kl`` + ``probe/reward``; without them, ``objective/kl`` with
    ``objective/scores`` (or ``reward``).

    >>> frontier_points([{"step": 5, "probe/kl": 0.1, "probe/reward": 0.3}, {"step": 6, "loss": 1.0}])
    [{'step': 5, 'kl': 0.1, 'reward': 0.3}]
    """
    for kl_key, reward_keys in FRONTIER_SOURCES:
        points = []
        for row in rows:
            kl = row.get(kl_key)
            reward = next((row[key] for key in reward_keys if row.get(key) is not None), None)
            if kl is not None and reward is not None:
                points.append({"step": int(row.get("step", 0)), "kl": float(kl), "reward": float(reward)})
        if points:
            return sorted(points, key=lambda point: point["step"])
    return []


def frontier(runs: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Frontier points of each run, by run label (runs without any point are left out)."""
    points = {label: frontier_points(rows) for label, rows in runs.items()}
    return {label: run_points for label, run_points in points.items() if run_points}


def final_point(rows: list[dict]) -> dict | None:
    """The last frontier point of a run (one point per run, for frontier tables), or None."""
    points = frontier_points(rows)
    return points[-1] if points else None


def rows_from_events(events: Iterable[dict]) -> list[dict]:
    """Bus events ``{"step", "time", "metrics": {...}}`` as ``metrics.jsonl``-style rows.

    >>> rows_from_events([{"run_id": "r", "step": 1, "time": 2.0, "metrics": {"loss": 0.7}}])
    [{'step': 1, 'time': 2.0, 'loss': 0.7}]
    """
    return [{"step": event["step"], "time": event.get("time"), **event.get("metrics", {})} for event in events]
