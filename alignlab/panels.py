"""Panel data: run histories -> the panels a view shows and the series, bands and points they hold. Pure data, no
plotting library.

Both front ends draw from these functions (through :mod:`alignlab.ui.figures`), so a curve looks the
same in the notebook and in the app. A history is a list of a run's metric rows
(:func:`alignlab.rundir.read_metrics`): dicts with ``step`` and TRL's metric keys (``loss``,
``rewards/margins``, ``objective/kl``, ``probe/reward``, ...).
Live runs give events ``{"step", "time", "metrics"}`` instead; :func:`rows_from_events` flattens them.
Which panels a view shows (:func:`visible_panels`) is decided here too, once for both front ends; how fast a run
goes (its ETA) is :func:`alignlab.eta.pace`.

The reward-vs-KL *frontier* (the DPO paper's Fig. 2) pairs a run's reward with its KL from the
reference at the same step. The probe logs both on one row (:data:`alignlab.metrics.PROBE_HEADLINE`), so every
method gets a frontier; an online method's own KL and reward keys (its MethodSpec's ``kl_key`` and
``reward_key``, PPO's ``objective/kl`` with ``objective/scores``) are the fallback for runs without a probe.

Uncertainty: the probe's means come with standard errors on the same row (``probe/reward_se``,
``probe/kl_se``, see :func:`alignlab.metrics.se_key`). A curve gets a band of mean ± 1.96·se
(:func:`band`: a 95% normal interval) and a frontier point error bars of the same width
(:func:`error_bars`), so a move smaller than the noise of 32 prompts reads as such.
"""

from __future__ import annotations

from collections.abc import Iterable

from alignlab.methods import get_method, registry
from alignlab.methods.base import Panel
from alignlab.metrics import (
    KL_KEYS,
    LOSS_KEYS,
    PROBE_FOLLOW,
    PROBE_KEYS,
    PROBE_KL,
    PROBE_KL_RATE,
    PROBE_LENGTH_RATIO,
    PROBE_REF_PPL_RATIO,
    PROBE_REWARD,
    REWARD_KEYS,
    se_key,
)

FRONTIER = "Reward vs KL from reference"  # the frontier panel's title, and the key of its one line per run
FRONTIER_PANEL = Panel(FRONTIER, (FRONTIER,), kind="frontier")
DRIFT = "Drift from the reference"  # the drift panel's title: its curves, and a verdict (alignlab.drift.verdict)
DRIFT_PANEL = Panel(DRIFT, (PROBE_LENGTH_RATIO, PROBE_REF_PPL_RATIO, PROBE_FOLLOW), kind="drift")
KL_RATE_PANEL = Panel("KL rate (nats per step)", (PROBE_KL_RATE,))
DRIFT_PANELS = (DRIFT_PANEL, KL_RATE_PANEL)  # every probing method's (a language model's), after its own
Z_95 = 1.96  # half-width of a 95% normal interval, in standard errors


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


def band(rows: list[dict], key: str, z: float = Z_95) -> tuple[list[int], list[float], list[float]]:
    """Steps, lower and upper edges of ``key`` ± z·se over the rows that log both ``key`` and its
    standard error ``key + "_se"`` (a 95% interval with the default ``z``).

    >>> band([{"step": 1, "probe/reward": 2.0, "probe/reward_se": 0.5}, {"step": 2, "probe/reward": 2.5}],
    ...      "probe/reward")
    ([1], [1.02], [2.98])
    """
    steps, lower, upper = [], [], []
    for row in rows:
        value, error = row.get(key), row.get(se_key(key))
        if value is not None and error is not None:
            steps.append(int(row.get("step", len(steps))))
            lower.append(float(value) - z * float(error))
            upper.append(float(value) + z * float(error))
    return steps, lower, upper


def panels_for(method: str) -> list[Panel]:
    """The plot panels of a method: Loss, Reward, KL from reference, then the method's own panels, then (for a
    language model, which the probe samples) the drift panels: :data:`DRIFT_PANEL` (length and reference perplexity
    against the reference's, the share that followed the instruction, and a verdict) and the KL rate.

    Each key is drawn once: a method's own panel claims its keys (DPO's implicit
    ``rewards/chosen``, KTO's ``kl`` estimate) and the common panels keep the rest.

    >>> [panel.title for panel in panels_for("dpo")][:3]
    ['Loss', 'Reward', 'KL from reference']
    >>> [panel.title for panel in panels_for("dpo")][-2:]
    ['Drift from the reference', 'KL rate (nats per step)']
    """
    spec = get_method(method)
    own = list(spec.panels) + (list(DRIFT_PANELS) if spec.model_kind == "causal-lm" else [])
    claimed = {key for panel in own for key in panel.keys}
    common = [Panel(title, tuple(key for key in keys if key not in claimed))
              for title, keys in (("Loss", LOSS_KEYS), ("Reward", REWARD_KEYS), ("KL from reference", KL_KEYS))]
    return [panel for panel in common if panel.keys] + own


def merged_panels(methods: Iterable[str]) -> list[Panel]:
    """Panels of several methods merged by title (keys united, in order of first appearance; the drift panels
    last), for overlaying runs of different methods.

    >>> merged = merged_panels(["kto", "dpo"])
    >>> [panel.title for panel in merged][-5:]
    ['KL estimate', 'Reward margin', 'Preference accuracy', 'Drift from the reference', 'KL rate (nats per step)']
    >>> merged[2].keys
    ('objective/kl', 'probe/kl', 'kl')
    """
    merged: dict[str, list[str]] = {}
    kinds: dict[str, str] = {}
    for method in methods:
        for panel in panels_for(method):
            keys = merged.setdefault(panel.title, [])
            keys.extend(key for key in panel.keys if key not in keys)
            kinds.setdefault(panel.title, panel.kind)
    drift = [panel.title for panel in DRIFT_PANELS]
    titles = [title for title in merged if title not in drift] + [title for title in drift if title in merged]
    return [Panel(title, tuple(merged[title]), kinds[title]) for title in titles]


def visible_panels(methods: Iterable[str], histories: dict[str, list[dict]] | None = None,
                   probing: bool = False) -> list[Panel]:
    """The panels a view of runs of ``methods`` shows: their curve panels (:func:`merged_panels`), then the
    reward-vs-KL frontier, always, last.

    Before any run has logged a row every curve panel shows, to fill as the runs log. Once rows arrive
    (``histories``: run label -> metric rows), a curve panel no row fills is left out (Reward and KL of a
    DPO run without the probe), unless ``probing`` says the probe will fill it later. The frontier stays
    either way: when no run draws it, its figure says what to log. The notebook's live figure, the app's
    Train view and both Runs views show these panels.

    >>> [panel.title for panel in visible_panels(["dpo"], {"a": [{"step": 1, "loss": 0.7}]})]
    ['Loss', 'Reward vs KL from reference']
    >>> len(visible_panels(["dpo"])) == len(panels_for("dpo")) + 1
    True
    """
    panels = merged_panels(methods)
    rows = [row for history in (histories or {}).values() for row in history]
    if rows:
        logged = {key for row in rows for key, value in row.items() if value is not None}
        logged |= set(PROBE_KEYS) if probing else set()
        panels = [panel for panel in panels if logged & set(panel.keys)]
    return panels + [FRONTIER_PANEL]


def frontier_sources() -> list[tuple[str, str]]:
    """``(kl key, reward key)`` pairs a frontier is drawn from, tried in order (the first with any point wins): the
    probe's, then each method's own ``kl_key`` with its ``reward_key`` (where it declares both).

    >>> frontier_sources()[:2]
    [('probe/kl', 'probe/reward'), ('objective/kl', 'objective/scores')]
    """
    pairs = [(PROBE_KL, PROBE_REWARD)]
    for spec in registry().values():
        if spec.kl_key and spec.reward_key and (spec.kl_key, spec.reward_key) not in pairs:
            pairs.append((spec.kl_key, spec.reward_key))
    return pairs


def frontier_points(rows: list[dict]) -> list[dict]:
    """``[{"step", "kl", "reward"}]``: reward and KL logged on the same row, in step order.

    Uses the probe's ``probe/kl`` + ``probe/reward``; without them, a method's own pair
    (:func:`frontier_sources`). A point also has ``kl_se`` / ``reward_se`` where its row
    logs the standard errors.

    >>> frontier_points([{"step": 5, "probe/kl": 0.1, "probe/reward": 0.3}, {"step": 6, "loss": 1.0}])
    [{'step': 5, 'kl': 0.1, 'reward': 0.3}]
    >>> frontier_points([{"step": 5, "probe/kl": 0.1, "probe/reward": 0.3, "probe/reward_se": 0.05}])
    [{'step': 5, 'kl': 0.1, 'reward': 0.3, 'reward_se': 0.05}]
    """
    for kl_key, reward_key in frontier_sources():
        points = []
        for row in rows:
            if row.get(kl_key) is None or row.get(reward_key) is None:
                continue
            point = {"step": int(row.get("step", 0)), "kl": float(row[kl_key]), "reward": float(row[reward_key])}
            for field, key in (("kl", kl_key), ("reward", reward_key)):
                if row.get(se_key(key)) is not None:
                    point[f"{field}_se"] = float(row[se_key(key)])
            points.append(point)
        if points:
            return sorted(points, key=lambda point: point["step"])
    return []


def error_bars(points: list[dict], field: str, z: float = Z_95) -> list[float | None] | None:
    """Half-widths z·se of the frontier points' ``field`` (``kl`` or ``reward``): None for a point
    without its standard error, and None instead of a list when no point has one.

    >>> error_bars([{"kl": 0.1, "reward": 0.3, "reward_se": 0.5}, {"kl": 0.2, "reward": 0.4}], "reward")
    [0.98, None]
    >>> error_bars([{"kl": 0.1, "reward": 0.3}], "kl") is None
    True
    """
    half_widths = [None if point.get(f"{field}_se") is None else z * point[f"{field}_se"] for point in points]
    return half_widths if any(width is not None for width in half_widths) else None


def frontier(runs: dict[str, list[dict]]) -> dict[str, list[dict]]:
    """Frontier points of each run, by run label (runs without any point are left out)."""
    points = {label: frontier_points(rows) for label, rows in runs.items()}
    return {label: run_points for label, run_points in points.items() if run_points}


def final_point(rows: list[dict]) -> dict | None:
    """The last frontier point of a run (one point per run, for frontier tables), or None."""
    points = frontier_points(rows)
    return points[-1] if points else None


def rows_from_events(events: Iterable[dict]) -> list[dict]:
    """Bus events ``{"step", "time", "metrics": {...}}`` as metric rows, like those a run directory holds.

    >>> rows_from_events([{"run_id": "r", "step": 1, "time": 2.0, "metrics": {"loss": 0.7}}])
    [{'step': 1, 'time': 2.0, 'loss': 0.7}]
    """
    return [{"step": event["step"], "time": event.get("time"), **event.get("metrics", {})} for event in events]
