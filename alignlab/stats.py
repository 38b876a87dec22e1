"""Small statistics for honest comparisons: paired differences and binomial intervals.

The lab compares an aligned model with its reference on the same prompts and the same random
stream, so the right error bar is the *paired* one: the standard error of per-prompt differences
(samples of one prompt are averaged first, since they share the prompt). Win-rates get a Wilson
score interval (Wilson 1927), which stays inside [0, 1] and behaves at small counts.

>>> paired_difference([1.0, 0.5, 0.8, 0.2], [0.0, 0.5, 0.1, 0.0], groups=[0, 0, 1, 1]).mean
0.475
>>> [round(x, 3) for x in wilson_interval(8, 10)]
[0.49, 0.943]
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Hashable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PairedDifference:
    """Mean of ``a - b`` over groups, its standard error, and per-group wins/losses/ties of a over b."""

    mean: float
    se: float
    groups: int
    wins: int
    losses: int
    ties: int

    @property
    def win_rate(self) -> float:
        """Share of groups where a beats b, ties counted as half a win."""
        return (self.wins + 0.5 * self.ties) / self.groups if self.groups else float("nan")

    def win_interval(self, z: float = 1.96) -> tuple[float, float]:
        """Wilson interval of :attr:`win_rate` (ties as half wins)."""
        return wilson_interval(self.wins + 0.5 * self.ties, self.groups, z)


def group_means(values: Sequence[float], groups: Sequence[Hashable]) -> dict[Hashable, float]:
    """Mean of ``values`` within each group, in first-seen group order."""
    collected: dict[Hashable, list[float]] = {}
    for value, group in zip(values, groups, strict=True):
        collected.setdefault(group, []).append(value)
    return {group: statistics.fmean(members) for group, members in collected.items()}


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (0 for a single value)."""
    if not values:
        return float("nan"), float("nan")
    se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return statistics.fmean(values), se


def paired_difference(a: Sequence[float], b: Sequence[float], groups: Sequence[Hashable],
                      tie: float = 1e-9) -> PairedDifference:
    """Paired comparison of ``a`` and ``b`` (same length, row i of each paired), clustered by ``groups``.

    Rows are averaged within their group first (e.g. the samples of one prompt), so the standard
    error counts groups, not rows. A group is a tie when its two means differ by at most ``tie``.
    """
    if len(a) != len(b):
        raise ValueError(f"paired values: got {len(a)} and {len(b)}, expected the same length")
    a_means, b_means = group_means(a, groups), group_means(b, groups)
    differences = [a_means[g] - b_means[g] for g in a_means]
    mean, se = mean_se(differences)
    wins = sum(d > tie for d in differences)
    losses = sum(d < -tie for d in differences)
    return PairedDifference(mean, se, len(differences), wins, losses, len(differences) - wins - losses)


def wilson_interval(successes: float, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% for z = 1.96)."""
    if trials <= 0:
        return float("nan"), float("nan")
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)
