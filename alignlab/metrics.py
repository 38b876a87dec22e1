"""The metric bus and the metric key names.

Each trainer log becomes one event ``{"run_id", "step", "time", "metrics"}``. The event goes to
an in-memory :class:`MetricBus` that UIs subscribe to, and to the run's metrics file (one JSON
object a line, flushed per line, see :class:`alignlab.rundir.MetricsLog`) so another process can
follow the run by tailing the file.
TRL's own key names are kept (``loss``, ``rewards/margins``, ``objective/kl``, ...).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Any

# Keys the plots know how to group, TRL's names kept.
LOSS_KEYS = ("loss",)
REWARD_KEYS = ("reward", "rewards/chosen", "objective/scores", "probe/reward")
KL_KEYS = ("kl", "objective/kl", "probe/kl")
PROBE_KEYS = ("probe/reward", "probe/kl", "probe/length")
# A source that measures a mean over samples (the probe) logs its standard error on the same row, under
# the mean's key plus this suffix (``probe/reward_se``). Plots draw it around its mean, as a band or as
# error bars, never as a curve, a panel or a legend entry of its own.
SE_SUFFIX = "_se"

Event = dict[str, Any]


def se_key(key: str) -> str:
    """The key of the standard error logged with ``key``.

    >>> se_key("probe/reward")
    'probe/reward_se'
    """
    return key + SE_SUFFIX


def is_se_key(key: str) -> bool:
    """True for a standard-error key (drawn with its mean, never on its own)."""
    return key.endswith(SE_SUFFIX)


class MetricBus:
    """Thread-safe publish/subscribe of metric events, keeping the history for late subscribers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[Event], None]] = []
        self.history: list[Event] = []

    def subscribe(self, callback: Callable[[Event], None], replay: bool = False) -> Callable[[], None]:
        """Call ``callback(event)`` for every new event; returns a function that unsubscribes.

        With ``replay=True`` the events published so far are delivered first.
        """
        with self._lock:
            past = list(self.history) if replay else []
            self._subscribers.append(callback)
        for event in past:
            callback(event)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def publish(self, event: Event) -> None:
        with self._lock:
            self.history.append(event)
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:  # noqa: BLE001 - a broken subscriber must never stop training
                pass


def clean_metrics(logs: dict[str, Any]) -> dict[str, float]:
    """Keep numeric, finite-or-NaN-as-None scalar metrics from a trainer log dict."""
    metrics = {}
    for key, value in logs.items():
        if hasattr(value, "item"):
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        metrics[key] = None if (isinstance(value, float) and (math.isnan(value) or math.isinf(value))) else value
    return metrics
