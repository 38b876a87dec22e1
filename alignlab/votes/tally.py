"""Tallies of votes: wins, losses, ties and both-bad of the aligned model against the reference with a Wilson
interval, the agreement between people and the reward source, the reward's own win-rate on a run's held-out samples,
and AI annotators' votes kept apart from people's."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from alignlab.rundir import UnreadableRunFile, read_config, read_samples, votes_path
from alignlab.stats import paired_difference, wilson_interval
from alignlab.votes.rounds import AI_VOTER_PREFIX, DECISIVE, SIDES, answer_text
from alignlab.votes.store import read_votes


def is_ai_vote(vote: dict) -> bool:
    """True for a vote an AI annotator cast (:mod:`alignlab.annotate`): its voter is ``ai:<reward source>`` and
    it keeps the annotator's record under ``annotator`` (a person who types a name starting ``ai:`` stays a person).

    >>> is_ai_vote({"voter": "ai:sentiment", "annotator": {"kind": "pointwise"}}), is_ai_vote({"voter": "ai:me"})
    (True, False)
    """
    return isinstance(vote.get("annotator"), dict) and str(vote.get("voter") or "").startswith(AI_VOTER_PREFIX)


def people_votes(votes: Iterable[dict]) -> list[dict]:
    """The votes people cast: every vote but an AI annotator's."""
    return [vote for vote in votes if not is_ai_vote(vote)]


def ai_votes(votes: Iterable[dict]) -> dict[str, list[dict]]:
    """The AI annotators' votes by voter (``ai:<reward source>``), in the order they first voted."""
    by_voter: dict[str, list[dict]] = {}
    for vote in votes:
        if is_ai_vote(vote):
            by_voter.setdefault(vote["voter"], []).append(vote)
    return by_voter


def _verdicts(votes: Iterable[dict]) -> dict[str, str]:
    """Prompt text -> the model its decisive votes chose more often (prompts split evenly are left out)."""
    counts: dict[str, list[int]] = {}
    for vote in votes:
        if vote["outcome"] in DECISIVE:
            counts.setdefault(answer_text(vote.get("prompt")).strip(), [0, 0])[SIDES.index(vote["outcome"])] += 1
    return {prompt: SIDES[int(won[1] > won[0])] for prompt, won in counts.items() if won[0] != won[1]}


def prompt_agreement(people: Iterable[dict], annotator: Iterable[dict]) -> tuple[int, int]:
    """``(agree, shared)``: of the ``shared`` prompts that both people and the annotator decided (by the majority of
    their decisive votes on each), those where both chose the same model.

    >>> person = {"prompt": "Hi", "outcome": "aligned"}
    >>> prompt_agreement([person], [{**person, "voter": "ai:x"}, {"prompt": "Yo", "outcome": "reference"}])
    (1, 1)
    """
    ours, theirs = _verdicts(people), _verdicts(annotator)
    shared = ours.keys() & theirs.keys()
    return sum(ours[prompt] == theirs[prompt] for prompt in shared), len(shared)


@dataclass(frozen=True)
class Tally:
    """Votes on aligned vs reference: ``wins`` (aligned chosen), ``losses`` (reference chosen), ``ties``,
    ``both_bad``; and of the ``judged`` decisive votes with both rewards recorded, ``agree``: those where
    the reward source scored the chosen answer higher."""

    wins: int = 0
    losses: int = 0
    ties: int = 0
    both_bad: int = 0
    agree: int = 0
    judged: int = 0
    reward_source: str | None = None

    @property
    def votes(self) -> int:
        return self.wins + self.losses + self.ties + self.both_bad

    @property
    def decisive(self) -> int:
        return self.wins + self.losses

    @property
    def win_rate(self) -> float:
        """Share of decisive votes that chose the aligned model (nan without one)."""
        return self.wins / self.decisive if self.decisive else math.nan

    def interval(self, z: float = 1.96) -> tuple[float, float]:
        """Wilson interval of :attr:`win_rate` (95% by default)."""
        return wilson_interval(self.wins, self.decisive, z)

    @property
    def agreement(self) -> float:
        """Share of judged decisive votes where the reward prefers the reply people chose (nan without one)."""
        return self.agree / self.judged if self.judged else math.nan


def tally(votes: Iterable[dict]) -> Tally:
    """Count votes (rows of a votes file) into a :class:`Tally`."""
    counts = {"aligned": 0, "reference": 0, "tie": 0, "both-bad": 0}
    agree = judged = 0
    source = None
    for vote in votes:
        counts[vote["outcome"]] += 1
        rewards = vote.get("reward") or {}
        scores = [rewards.get(side) for side in SIDES]
        if vote["outcome"] in DECISIVE and all(isinstance(s, (int, float)) and not isinstance(s, bool)
                                               for s in scores):
            other = SIDES[1 - SIDES.index(vote["outcome"])]
            judged += 1
            agree += rewards[vote["outcome"]] > rewards[other]
            source = rewards.get("source") or source
    return Tally(counts["aligned"], counts["reference"], counts["tie"], counts["both-bad"], agree, judged, source)


@dataclass(frozen=True)
class RewardFigure:
    """The reward source's win-rate of aligned over reference on a run's held-out samples (ties count half)."""

    source: str
    win_rate: float
    low: float
    high: float
    prompts: int


def reward_figure(run_dir: str | Path) -> RewardFigure | None:
    """The reward's win-rate with its Wilson interval from the run's samples (:func:`~alignlab.rundir.read_samples`:
    the same held-out prompts, seed and settings for both models), paired by prompt; None before the run wrote
    them."""
    rows = [row for row in read_samples(run_dir) if all(isinstance(row.get(key), (int, float))
                                                        for key in ("reference_reward", "aligned_reward"))]
    if not rows:
        return None
    paired = paired_difference([row["aligned_reward"] for row in rows], [row["reference_reward"] for row in rows],
                               groups=[json.dumps(row.get("prompt")) for row in rows])
    try:
        source = read_config(run_dir).get("reward") or "reward"
    except UnreadableRunFile:
        source = "reward"
    low, high = paired.win_interval()
    return RewardFigure(source, paired.win_rate, low, high, paired.groups)


def run_votes(output_dir: str | Path, name: str) -> tuple[Tally, list[str]]:
    """The tally of the people's votes in the votes file ``name`` of the runs folder ``output_dir`` (an AI
    annotator's are left out: see :func:`ai_summary`) and the file's damaged lines."""
    votes, problems = read_votes(votes_path(output_dir, name))
    return tally(people_votes(votes)), problems
