"""Drift from the reference, while it happens: the probe's drift metrics and a one-line verdict on a run.

The probe (:mod:`alignlab.probe`) samples the same held-out prompts with the same seed every ``probe_every``
steps. Its first probe, at step 0, samples the untrained policy, which *is* the reference: so the step-0 row is the
reference's own behaviour, and every later probe can be read against it at no extra cost:

- ``probe/length_ratio``: the completions' mean length ÷ the reference's (1 = as long as the reference writes);
- ``probe/ref_ppl``: the reference model's perplexity of the completions (per token, from the reference
  log-probs the KL already needs), and ``probe/ref_ppl_ratio``: that ÷ the reference's perplexity of its own
  samples (2 = twice as surprising to the reference, per token, as what it writes itself);
- ``probe/kl_rate``: KL gained per training step since the previous probe (nats/step);
- ``probe/follow`` (logged by the probe already): the share of completions that followed the instruction.

:func:`drift_metrics` computes the ratios and the rate from the earlier probe rows; :func:`verdict` reads a run's
rows and says in one line whether it is trading the instruction (or the reference's language) for reward.
Pure functions of metric rows (:func:`alignlab.rundir.read_metrics`' rows), so both UIs and the report show
the same words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from alignlab.metrics import (
    PROBE_FOLLOW,
    PROBE_KL,
    PROBE_KL_RATE,
    PROBE_LENGTH,
    PROBE_LENGTH_RATIO,
    PROBE_REF_PPL,
    PROBE_REF_PPL_RATIO,
    PROBE_REWARD,
    se_key,
)

FOLLOW_DROP = 0.10  # a fall in the share that followed of at least this much (and beyond noise) is a drop...
FOLLOW_DROP_SHARE = 1 / 3  # ...and at least this fraction of the step-0 share ("well below" it)
PPL_RISE = 2.0  # the reference finds the samples at least this many times as surprising as its own: drift
LENGTH_OFF = 1.5  # completions this many times longer than the reference's (or shorter by as much): drift
COST_RISE = 3.0  # the last half's KL per unit of reward gained, this many times the first half's: diminishing returns
KL_PER_TOKEN = 0.25  # nats per completion token: far from the reference (about 10 nats on the task's 40-token reviews)
Z_95 = 1.96


@dataclass(frozen=True)
class Verdict:
    """A run's drift in one line: ``alarm`` when it is trading the instruction or the reference's language for
    reward; ``text`` says what the numbers show."""

    alarm: bool
    text: str


def probe_rows(rows: list[dict]) -> list[dict]:
    """The rows a probe logged (those with ``probe/reward`` and ``probe/kl``), in step order."""
    probed = [row for row in rows if row.get(PROBE_REWARD) is not None and row.get(PROBE_KL) is not None]
    return sorted(probed, key=lambda row: row.get("step", 0))


def _ratio(value, base) -> float | None:
    if value is None or base is None or not base > 0:
        return None
    return float(value) / float(base)


def drift_metrics(earlier: list[dict], metrics: dict, step: int) -> dict[str, float]:
    """The drift metrics of a probe at ``step`` whose means are ``metrics`` (``probe/length``, ``probe/ref_ppl``,
    ``probe/kl``), given the run's ``earlier`` metric rows: ratios to the step-0 probe (the reference's own samples;
    at step 0 itself they are 1) and the KL gained per step since the previous probe. A ratio without a step-0
    probe, or a rate without an earlier probe, is left out.

    >>> drift_metrics([], {"probe/length": 8.0, "probe/ref_ppl": 20.0, "probe/kl": 0.0}, 0)
    {'probe/length_ratio': 1.0, 'probe/ref_ppl_ratio': 1.0}
    >>> earlier = [{"step": 0, "probe/reward": 0.1, "probe/kl": 0.0, "probe/length": 8.0, "probe/ref_ppl": 20.0}]
    >>> drift_metrics(earlier, {"probe/length": 12.0, "probe/ref_ppl": 50.0, "probe/kl": 6.0}, 4)
    {'probe/length_ratio': 1.5, 'probe/ref_ppl_ratio': 2.5, 'probe/kl_rate': 1.5}
    """
    before = [row for row in probe_rows(earlier) if row.get("step", 0) < step]
    reference = metrics if step == 0 else next((row for row in before if row.get("step") == 0), None)
    found = {}
    if reference is not None:
        for ratio_key, key in ((PROBE_LENGTH_RATIO, PROBE_LENGTH), (PROBE_REF_PPL_RATIO, PROBE_REF_PPL)):
            ratio = _ratio(metrics.get(key), reference.get(key))
            if ratio is not None:
                found[ratio_key] = round(ratio, 6)
    if before and metrics.get(PROBE_KL) is not None:
        previous = before[-1]
        found[PROBE_KL_RATE] = round((float(metrics[PROBE_KL]) - float(previous[PROBE_KL]))
                                     / (step - previous.get("step", 0)), 6)
    return found


def _follow_drop(first: dict, last: dict) -> float | None:
    """How far the share that followed fell from ``first`` to ``last`` when that is "well below" the first value:
    at least :data:`FOLLOW_DROP`, a :data:`FOLLOW_DROP_SHARE` of it and beyond the 95% noise of the two shares;
    None otherwise."""
    start, end = first.get(PROBE_FOLLOW), last.get(PROBE_FOLLOW)
    if start is None or end is None or not start > 0:
        return None
    drop = start - end
    noise = Z_95 * math.sqrt(sum((row.get(se_key(PROBE_FOLLOW)) or 0.0) ** 2 for row in (first, last)))
    return drop if drop >= max(FOLLOW_DROP, FOLLOW_DROP_SHARE * start, noise) else None


def _ppl_ratio(first: dict, last: dict) -> float | None:
    return last.get(PROBE_REF_PPL_RATIO) or _ratio(last.get(PROBE_REF_PPL), first.get(PROBE_REF_PPL))


def _length_ratio(first: dict, last: dict) -> float | None:
    return last.get(PROBE_LENGTH_RATIO) or _ratio(last.get(PROBE_LENGTH), first.get(PROBE_LENGTH))


def _kl_per_token(last: dict) -> float | None:
    """The last probe's KL per completion token (its KL ÷ its mean length), or None without a length."""
    length = last.get(PROBE_LENGTH)
    return float(last[PROBE_KL]) / float(length) if length and float(length) > 0 else None


def _kl_cost(probes: list[dict]) -> tuple[float, float, float, float] | None:
    """``(first half's KL per unit reward, last half's, last half's reward gain, its KL)`` when the last half of the
    run bought its reward at :data:`COST_RISE` times the first half's KL price (both halves gaining reward), else
    None. Needs three probes."""
    if len(probes) < 3:
        return None
    first, middle, last = probes[0], probes[len(probes) // 2], probes[-1]
    gains = [float(b[PROBE_REWARD]) - float(a[PROBE_REWARD]) for a, b in ((first, middle), (middle, last))]
    kls = [float(b[PROBE_KL]) - float(a[PROBE_KL]) for a, b in ((first, middle), (middle, last))]
    if min(gains) <= 0 or min(kls) <= 0:
        return None
    early, late = kls[0] / gains[0], kls[1] / gains[1]
    return (early, late, gains[1], kls[1]) if late >= COST_RISE * early else None


def _steps(first: dict, last: dict) -> str:
    return f"step {first.get('step', 0)} → {last.get('step', 0)}"


def verdict(rows: list[dict]) -> Verdict | None:
    """One line on the run's drift from its probe rows, or None before the run has two probes.

    Alarms, most telling first (at most two are named): the share that followed the instruction fell well below
    its step-0 value (while reward rose: "trading the instruction for reward"); the reference finds the samples
    :data:`PPL_RISE` times as surprising as its own; completions grew (or shrank) :data:`LENGTH_OFF` times; the
    last half of the run paid :data:`COST_RISE` times the KL per unit of reward the first half did; the samples
    are :data:`KL_PER_TOKEN` nats per token or more from the reference. Without an alarm it says where each
    measure stands.

    >>> rows = [{"step": 0, "probe/reward": 0.05, "probe/kl": 0.0, "probe/follow": 0.31, "probe/follow_se": 0.08},
    ...         {"step": 12, "probe/reward": 0.92, "probe/kl": 27.1, "probe/follow": 0.0, "probe/follow_se": 0.0}]
    >>> print(verdict(rows).text)
    Trading the instruction for reward: instruction followed fell from 31% to 0% (step 0 → 12) while reward rose \
by +0.87.
    """
    probes = probe_rows(rows)
    if len(probes) < 2:
        return None
    first, last = probes[0], probes[-1]
    gain = float(last[PROBE_REWARD]) - float(first[PROBE_REWARD])
    alarms = []
    drop = _follow_drop(first, last)
    if drop is not None:
        fell = (f"instruction followed fell from {first[PROBE_FOLLOW]:.0%} to {last[PROBE_FOLLOW]:.0%} "
                f"({_steps(first, last)})")
        alarms.append(f"Trading the instruction for reward: {fell} while reward rose by {gain:+.2f}" if gain > 0
                      else f"The instruction is being dropped: {fell}, and reward did not rise ({gain:+.2f})")
    ppl = _ppl_ratio(first, last)
    if ppl is not None and ppl >= PPL_RISE:
        alarms.append(f"the reference finds the samples {ppl:.1f}× as surprising per token as its own (reference "
                      "perplexity): the text is leaving the reference's language")
    length = _length_ratio(first, last)
    if length is not None and (length >= LENGTH_OFF or length <= 1 / LENGTH_OFF):
        alarms.append(f"completions are {length:.2f}× the reference's length")
    cost = _kl_cost(probes)
    if cost is not None:
        early, late, late_gain, late_kl = cost
        alarms.append(f"diminishing returns: the last {late_gain:+.2f} reward cost {late_kl:.1f} nats of KL "
                      f"({late:.0f} nats per unit reward, against {early:.0f} in the first half)")
    per_token = _kl_per_token(last)
    if per_token is not None and per_token >= KL_PER_TOKEN:
        alarms.append(f"the samples are {per_token:.2f} nats per token from the reference ({float(last[PROBE_KL]):.0f} "
                      "nats a completion): far from it, whatever the reward says")
    if alarms:
        text = "; ".join(alarms[:2])
        return Verdict(True, text[0].upper() + text[1:] + ".")
    return Verdict(False, _steady(first, last, gain, ppl, length))


def _steady(first: dict, last: dict, gain: float, ppl: float | None, length: float | None) -> str:
    """The line of a run without an alarm: where each measure stands."""
    kl = f"{float(last[PROBE_KL]):.1f}".replace("-0.0", "0.0")  # an estimate a hair below 0 reads as none
    parts = [f"reward {gain:+.2f} for {kl} nats of KL"]
    if last.get(PROBE_KL_RATE) is not None:
        parts[0] += f" ({last[PROBE_KL_RATE]:+.2f}/step lately)"
    if last.get(PROBE_FOLLOW) is not None and first.get(PROBE_FOLLOW) is not None:
        parts.append(f"instruction followed {last[PROBE_FOLLOW]:.0%} ({first[PROBE_FOLLOW]:.0%} at step 0)")
    if ppl is not None:
        parts.append(f"reference perplexity {ppl:.2f}× its own")
    if length is not None:
        parts.append(f"length {length:.2f}× the reference's")
    return f"No sign of drift yet ({_steps(first, last)}): " + ", ".join(parts) + "."
