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
import warnings
from collections.abc import Callable
from typing import Any

from alignlab.errors import AlignLabError

# The headline metrics: "the reward" and "the KL" of a run, named here and nowhere else in the engine.
# The probe's (held-out prompts, sampled and scored every probe_every steps, see alignlab.probe) come first:
# every text method logs them, measured the same way. A method's trainer may log its own reward of the samples
# it trains on and its own KL from the reference, under TRL's names; its MethodSpec declares which
# (``reward_key``, ``kl_key``), and a run without the probe shows those.
PROBE_REWARD = "probe/reward"
PROBE_KL = "probe/kl"
PROBE_LENGTH = "probe/length"
PROBE_FOLLOW = "probe/follow"  # the share of the probe's completions that followed their instruction (alignlab.follow)
# Drift from the reference (alignlab.drift): measured by the probe on the same samples, nearly free.
PROBE_REF_PPL = "probe/ref_ppl"  # the reference model's perplexity of the probe's completions (per token)
PROBE_LENGTH_RATIO = "probe/length_ratio"  # the completions' mean length ÷ the reference's (the step-0 probe's)
PROBE_REF_PPL_RATIO = "probe/ref_ppl_ratio"  # the reference's perplexity of them ÷ of its own (the step-0 probe's)
PROBE_KL_RATE = "probe/kl_rate"  # KL gained per training step since the previous probe, in nats
ROLLOUT_REWARD = "reward"  # GRPO, RLOO: the reward of the samples trained on
ROLLOUT_SCORE = "objective/scores"  # PPO, online DPO: the reward source's score of the samples trained on
ROLLOUT_KL = "objective/kl"  # PPO, online DPO: the KL of those samples from the reference
KL_ESTIMATE = "kl"  # GRPO, RLOO, KTO: the trainer's estimate of the KL from the reference
HEADLINE = ("reward", "kl", "follow")  # the fields of :func:`headline`, in the order a table shows them
HEADLINE_LABELS = {"reward": "reward", "kl": "KL", "follow": "instruction followed"}  # as a table's column reads it
PROBE_HEADLINE = {"reward": PROBE_REWARD, "kl": PROBE_KL, "follow": PROBE_FOLLOW}  # the probe's key of each field

# Keys the plots know how to group, TRL's names kept.
LOSS_KEYS = ("loss",)
REWARD_KEYS = (ROLLOUT_REWARD, "rewards/chosen", ROLLOUT_SCORE, PROBE_REWARD)
KL_KEYS = (KL_ESTIMATE, ROLLOUT_KL, PROBE_KL)
PROBE_KEYS = (PROBE_REWARD, PROBE_KL, PROBE_LENGTH, PROBE_REF_PPL, PROBE_LENGTH_RATIO, PROBE_REF_PPL_RATIO,
              PROBE_KL_RATE)
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


def headline_keys(reward_key: str | None = None, kl_key: str | None = None) -> dict[str, tuple[str, ...]]:
    """The keys each headline field is read from, first found first: the probe's, then the method's own
    (``reward_key`` and ``kl_key``, its :class:`~alignlab.methods.base.MethodSpec`'s).

    >>> headline_keys(ROLLOUT_SCORE, ROLLOUT_KL)["reward"]
    ('probe/reward', 'objective/scores')
    """
    own = {"reward": reward_key, "kl": kl_key}
    return {field: (PROBE_HEADLINE[field],) + ((own[field],) if own.get(field) else ()) for field in HEADLINE}


def headline(row: dict[str, Any], reward_key: str | None = None, kl_key: str | None = None) -> dict[str, Any]:
    """The headline metrics of a metric row (or of a run's last values, merged): ``{"reward", "kl", "follow"}``,
    each from the first of :func:`headline_keys` the row has (None when it has none). ``follow`` is the share
    (0-1) of the probe's completions that followed their instruction; only the probe measures it.

    >>> headline({"probe/reward": 0.8, "objective/kl": 2.0, "probe/follow": 0.25}, kl_key=ROLLOUT_KL)
    {'reward': 0.8, 'kl': 2.0, 'follow': 0.25}
    >>> headline({"loss": 0.7})
    {'reward': None, 'kl': None, 'follow': None}
    """
    found = {}
    for field, keys in headline_keys(reward_key, kl_key).items():
        found[field] = next((row[key] for key in keys if row.get(key) is not None), None)
    return found


class MetricBus:
    """Thread-safe publish/subscribe of metric events, keeping the history for late subscribers.

    A subscriber that raises never stops the publisher (training goes on), but is not silent either: its
    first error is reported once as a RuntimeWarning naming it and the error; it keeps receiving events.
    The run's metrics file is no subscriber: the training callbacks write it themselves.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[Event], None]] = []
        self._reported: list[Callable[[Event], None]] = []  # subscribers whose error was reported
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
            except Exception as error:  # noqa: BLE001 - a broken subscriber must never stop training
                self._report(callback, error)

    def _report(self, callback: Callable[[Event], None], error: Exception) -> None:
        """Warn about a subscriber's error, the first time that subscriber raises."""
        with self._lock:
            if any(reported is callback for reported in self._reported):
                return
            self._reported.append(callback)
        name = getattr(callback, "__qualname__", None) or type(callback).__name__
        warnings.warn(f"alignlab: metric subscriber {name} raised {type(error).__name__}: {error} (at step "
                      f"{self.history[-1].get('step') if self.history else '?'}); training goes on, and later "
                      "errors of this subscriber are not reported", RuntimeWarning, stacklevel=2)


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


class NonFiniteMetric(AlignLabError):
    """A loss, gradient norm or reward that is NaN or infinite: the run fails at that step, its weights unsaved.

    ``step`` is None where the raiser does not know it (a reward source): the training loop adds it.
    """

    def __init__(self, message: str, step: int | None = None):
        super().__init__(message)
        self.step = step


def must_be_finite(key: str) -> bool:
    """True for the keys whose NaN or Inf fails a run: the loss, the gradient norm and the rewards (means).

    >>> [key for key in ("loss", "grad_norm", "rewards/margins", "rewards/sentiment/mean", "reward_std", "kl")
    ...  if must_be_finite(key)]
    ['loss', 'grad_norm', 'rewards/margins', 'rewards/sentiment/mean']
    """
    return key in ("loss", "grad_norm", "rewards/rejected", "rewards/margins", *REWARD_KEYS) or (
        key.startswith("rewards/") and key.endswith("/mean"))  # GRPO's and RLOO's per reward function


def check_finite(step: int, logs: dict[str, Any]) -> None:
    """NonFiniteMetric naming the step and the first loss, gradient norm or reward in ``logs`` that is NaN or
    infinite.

    >>> check_finite(3, {"loss": float("nan"), "grad_norm": 1.0})
    Traceback (most recent call last):
    ...
    alignlab.metrics.NonFiniteMetric: loss: got nan at step 3, expected a finite number; the run stops there ...
    """
    for key, value in logs.items():
        if hasattr(value, "item"):
            value = value.item()
        if must_be_finite(key) and isinstance(value, float) and not math.isfinite(value):
            raise NonFiniteMetric(f"{key}: got {value} at step {step}, expected a finite number; the run stops "
                                  "there and its weights are not saved (a lower learning_rate, or max_grad_norm, "
                                  "may help)", step)
