"""Workshop mode: a room of participants trains on one app. Who may stop what, and the class leaderboard.

Each run started in workshop mode carries its participant's name (``RunConfig.owner``, kept in the run's
config). From the run summaries of the runs folder (:func:`alignlab.rundir.list_runs`) this module derives:

- the **class frontier** (:func:`class_points`): every participant's finished run as one point, its final
  reward against its KL from the reference (:func:`alignlab.panels.final_point`, the probe's pair when it ran);
- the **leaderboard** (:func:`leaderboard`): per participant, the best final reward among their finished runs
  whose KL stays within the budget the instructor sets. The budget is the point of the exercise: the DPO
  paper (Rafailov et al., 2023, https://arxiv.org/abs/2305.18290, Fig. 2) compares methods by the reward they
  reach at a given KL from the reference, since a policy can buy reward by drifting far from it;
- **permissions** (:func:`may_control`): a participant stops or cancels their own jobs, the instructor any; and
  (:func:`may_change_run`) deletes or resumes their own runs, the instructor any. Anyone reads and chats with any run.

Pure functions of plain data; no file is read here and no UI package imported.
"""

from __future__ import annotations

import math
from typing import Any

from alignlab.errors import AlignLabError
from alignlab.labels import kl_setting, method_title, owner_of
from alignlab.panels import final_point


def may_control(owner: str | None, user: str | None, instructor: str | None = None) -> bool:
    """True when ``user`` may stop or cancel a job of ``owner``: its owner, the instructor, or anyone for a job
    without an owner (submitted with neither auth nor workshop mode).

    >>> may_control("ada", "bob"), may_control("ada", "ada"), may_control("ada", "carol", instructor="carol")
    (False, True, True)
    >>> may_control(None, None), may_control("ada", None, instructor=None)
    (True, False)
    """
    if owner is None:
        return True
    return user is not None and (user == owner or (instructor is not None and user == instructor))


def may_change_run(owner: str | None, user: str | None, instructor: str | None = None) -> bool:
    """True when ``user`` may delete or resume a run of ``owner`` on a shared app (accounts or workshop mode): its
    owner or the instructor. A run without an owner was not started on the shared app (the command line, a
    notebook): only the instructor changes it. A single-user app asks nobody (see the app's ``Services``).

    >>> may_change_run("ada", "ada"), may_change_run("ada", "bob"), may_change_run("ada", "carol", "carol")
    (True, False, True)
    >>> may_change_run(None, "bob"), may_change_run(None, "carol", "carol"), may_change_run("ada", None)
    (False, True, False)
    """
    return user is not None and (user == owner or (instructor is not None and user == instructor))


def check_budget(value: Any) -> float | None:
    """A KL budget: a finite number ≥ 0, or None (no limit); AlignLabError in one line for anything else.

    >>> check_budget("0.5"), check_budget(None), check_budget("")
    (0.5, None, None)
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        budget = float(value)
    except (TypeError, ValueError):
        budget = math.nan
    if isinstance(value, bool) or not math.isfinite(budget) or budget < 0:
        raise AlignLabError(f"kl_budget: got {value!r}, expected a number ≥ 0 (or empty for no limit)")
    return budget


def class_points(runs: list[dict]) -> list[dict]:
    """One point per finished run that has an owner and a reward-vs-KL point, oldest run first.

    Each point: ``owner``, ``run_id``, ``method`` (with its loss variant: ``dpo (ipo)``), ``kl_setting``
    (``β 0.1``, "" for a method without one), ``steps``, and the run's final ``reward`` and ``kl`` (with
    ``reward_se`` / ``kl_se`` where the probe logged them). Stopped, failed and running runs are left out: their
    last point is not where training ended.

    >>> run = {"run_id": "r1", "method": "dpo", "state": "finished", "steps": 12,
    ...        "config": {"owner": "ada", "method_args": {"beta": 0.1}},
    ...        "history": [{"step": 12, "probe/reward": 0.8, "probe/kl": 0.2}]}
    >>> class_points([run])
    [{'owner': 'ada', 'run_id': 'r1', 'method': 'dpo', 'kl_setting': 'β 0.1', 'steps': 12, 'kl': 0.2, 'reward': 0.8}]
    """
    points = []
    for run in sorted(runs, key=lambda run: run["run_id"]):
        owner = owner_of(run)
        point = final_point(run.get("history") or []) if run.get("state") == "finished" and owner else None
        if point is None:
            continue
        config = run.get("config") or {}
        method = method_title(run.get("method"), config) if run.get("method") else ""
        points.append({"owner": owner, "run_id": run["run_id"], "method": method,
                       "kl_setting": kl_setting(run.get("method"), config), "steps": run.get("steps") or 0,
                       **{key: value for key, value in point.items() if key != "step"}})
    return points


def leaderboard(runs: list[dict], kl_budget: float | None = None) -> list[dict]:
    """Per participant, their best finished run within the KL budget, best first.

    A run counts when its final KL is at most ``kl_budget`` (None: no limit); among a participant's counted runs
    the one with the highest final reward is theirs. Participants rank by that reward (ties: the lower KL, then
    the earlier run). Each row is the run's :func:`class_points` point plus ``rank`` and ``runs`` (how many of the
    participant's finished runs have a point). Participants none of whose runs fits the budget come last, with
    ``rank`` None and ``reward``, ``kl`` and ``run_id`` None too, so the room sees who still has to come in under it.

    >>> runs = [{"run_id": f"r{i}", "method": "dpo", "state": "finished", "steps": 4, "history": [
    ...     {"step": 4, "probe/reward": reward, "probe/kl": kl}], "config": {"owner": owner}}
    ...     for i, (owner, reward, kl) in enumerate([("ada", 0.9, 0.8), ("ada", 0.5, 0.1), ("bob", 0.7, 0.2)])]
    >>> [(row["rank"], row["owner"], row["reward"]) for row in leaderboard(runs, kl_budget=0.3)]
    [(1, 'bob', 0.7), (2, 'ada', 0.5)]
    >>> [(row["rank"], row["owner"], row["reward"]) for row in leaderboard(runs, kl_budget=0.05)]
    [(None, 'ada', None), (None, 'bob', None)]
    """
    budget = check_budget(kl_budget)
    by_owner: dict[str, list[dict]] = {}
    for point in class_points(runs):
        by_owner.setdefault(point["owner"], []).append(point)
    ranked, unplaced = [], []
    for owner, points in by_owner.items():
        within = [point for point in points if budget is None or point["kl"] <= budget]
        if not within:
            unplaced.append({"owner": owner, "runs": len(points), "run_id": None, "method": None, "kl_setting": None,
                             "steps": None, "reward": None, "kl": None, "rank": None})
            continue
        best = max(within, key=lambda point: (point["reward"], -point["kl"]))
        ranked.append({**best, "runs": len(points)})
    ranked.sort(key=lambda row: (-row["reward"], row["kl"], row["run_id"]))
    for rank, row in enumerate(ranked, start=1):
        row["rank"] = rank
    return ranked + sorted(unplaced, key=lambda row: row["owner"])
