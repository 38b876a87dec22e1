"""Blind votes: people compare the reference and the aligned model's answers without knowing which is which.

A blind round shows the two answers to one prompt as A and B, in an order drawn from a seeded random
stream (:func:`blind_order`); the seed is kept in the vote, so the order can be checked afterwards. The
voter picks A, B, ``tie`` or ``both-bad``, and only then learns which model wrote which answer.

Each vote is one JSON line appended to the run's votes file (``<runs>/_votes/<run id>.jsonl``, named by
:func:`alignlab.rundir.votes_path`). :func:`append_vote` writes the whole line with a single ``os.write``
while it holds an exclusive ``flock`` on the file, so twenty people voting at once never interleave or lose
a line. A votes file is a preference dataset as it is: ``prompt``, ``chosen`` and ``rejected`` columns
(conversational in chat mode), with ``chosen``/``rejected`` null for ties and both-bad votes, which
:func:`preference_rows` leaves out. Every line also says which model each answer came from, the sampling
settings, the reward each answer got from the chat's reward source, the voter's name (when one was given)
and the time.

:func:`tally` counts wins, losses, ties and both-bad votes of the aligned model against the reference,
with a 95% Wilson interval on the decisive votes (Wilson 1927, :func:`alignlab.stats.wilson_interval`), and
the agreement between people and the reward source: the share of decisive votes where the reward prefers
the reply people chose. :func:`reward_figure` is the reward's own win-rate on the run's held-out samples.

An AI annotator (:mod:`alignlab.annotate`) appends votes of the same form to the same file, its voter named
``ai:<reward source>`` and its record kept under ``annotator`` (:func:`is_ai_vote`). They train like people's
votes; the tallies keep them apart: :func:`run_votes` and :func:`summary` count people only (so the agreement
between people and the reward stays theirs), :func:`ai_summary` gives each annotator's win-rate, how it handled
position bias, and how often it agrees with people on the prompts both judged. :func:`run_summary` is both, as the
CLI, the two front ends and the report show it.

>>> votes = [{"outcome": "aligned", "reward": {"reference": 0.1, "aligned": 0.6}},
...          {"outcome": "reference", "reward": {"reference": 0.2, "aligned": 0.5}}, {"outcome": "tie"}]
>>> t = tally(votes)
>>> (t.wins, t.losses, t.ties, t.both_bad, t.agree, t.judged)
(1, 1, 1, 0, 1, 2)
"""

from __future__ import annotations

import errno
import fcntl
import json
import math
import os
import random
import secrets
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alignlab.errors import AlignLabError, AlignLabWarning
from alignlab.rundir import UnreadableRunFile, read_config, read_samples, votes_path
from alignlab.stats import paired_difference, wilson_interval

SIDES = ("reference", "aligned")
CHOICES = ("A", "B", "tie", "both-bad")  # what a voter can say
DECISIVE = ("aligned", "reference")  # outcomes with a chosen and a rejected answer
MAX_VOTER = 64  # characters of a voter's name kept
NO_VOTES = "No blind votes from people yet."
AI_VOTER_PREFIX = "ai:"  # an AI annotator votes as ai:<reward source> (alignlab.annotate)


def new_order_seed() -> int:
    """A fresh seed for one blind round's order (kept in the vote)."""
    return secrets.randbits(32)


def blind_order(seed: int) -> tuple[str, str]:
    """Which model's answer is shown as A and which as B in a round seeded ``seed``: (side of A, side of B).

    >>> blind_order(7) == blind_order(7) and sorted(blind_order(7)) == ["aligned", "reference"]
    True
    """
    return SIDES if random.Random(seed).random() < 0.5 else SIDES[::-1]


@dataclass
class Round:
    """One blind comparison waiting for its vote: a prompt, both answers and the seed of their A/B order.

    ``name`` is the votes file (the run id); ``message`` the user's message, in ``mode`` chat (rendered with
    the chat template, recorded as a one-message conversation) or continue (raw text).
    """

    name: str
    message: str
    mode: str
    reference: str
    aligned: str
    reference_model: str
    aligned_model: str
    sampling: dict
    reward_source: str | None = None
    reference_reward: float | None = None
    aligned_reward: float | None = None
    order_seed: int = field(default_factory=new_order_seed)

    @property
    def order(self) -> tuple[str, str]:
        """(side shown as A, side shown as B)."""
        return blind_order(self.order_seed)

    def shown(self) -> tuple[str, str]:
        """The answers as A and B."""
        return getattr(self, self.order[0]), getattr(self, self.order[1])

    def record(self, choice: str, voter: str | None = None, when: float | None = None) -> dict:
        """The vote ``choice`` (A, B, tie or both-bad) on this round as one votes-file row."""
        if choice not in CHOICES:
            raise AlignLabError(f"vote: got {choice!r}, expected one of {', '.join(CHOICES)}")
        outcome = self.order[CHOICES.index(choice)] if choice in ("A", "B") else choice
        chosen = rejected = None
        if outcome in DECISIVE:
            other = SIDES[1 - SIDES.index(outcome)]
            chosen, rejected = self._completion(getattr(self, outcome)), self._completion(getattr(self, other))
        rewards = None
        if self.reference_reward is not None and self.aligned_reward is not None:
            rewards = {"source": self.reward_source, "reference": self.reference_reward, "aligned": self.aligned_reward}
        name = " ".join(str(voter or "").split())[:MAX_VOTER] or None
        return {"time": time.time() if when is None else when, "name": self.name, "voter": name, "vote": choice,
                "outcome": outcome, "order": list(self.order), "order_seed": self.order_seed, "mode": self.mode,
                "prompt": [{"role": "user", "content": self.message}] if self.mode == "chat" else self.message,
                "chosen": chosen, "rejected": rejected,
                "chosen_model": outcome if outcome in DECISIVE else None,
                "rejected_model": SIDES[1 - SIDES.index(outcome)] if outcome in DECISIVE else None,
                "reference": self.reference, "aligned": self.aligned, "reference_model": self.reference_model,
                "aligned_model": self.aligned_model, "reward": rewards, "sampling": dict(self.sampling)}

    def _completion(self, text: str) -> Any:
        return [{"role": "assistant", "content": text}] if self.mode == "chat" else text


def reveal(vote: dict) -> str:
    """One line, after a vote: which model wrote A and which B, and what the vote chose.

    >>> reveal({"vote": "A", "outcome": "aligned", "order": ["aligned", "reference"], "aligned_model": "r1"})
    'A was the aligned model (r1), B the reference. Your vote: the aligned model.'
    """
    first, second = vote["order"]
    described = {"aligned": f"the aligned model ({vote.get('aligned_model')})", "reference": "the reference"}
    said = {"aligned": "the aligned model", "reference": "the reference", "tie": "a tie",
            "both-bad": "both bad"}[vote["outcome"]]
    line = f"A was {described[first]}, B {described[second]}. Your vote: {said}."
    rewards = vote.get("reward")
    if rewards:
        line += (f" Reward ({rewards['source']}): A {rewards[first]:+.3f}, B {rewards[second]:+.3f}.")
    return line


# --- the votes file ------------------------------------------------------------------------------
def append_vote(path: str | Path, vote: dict) -> None:
    """Append ``vote`` to the votes file as one JSON line, whole or not at all.

    The line is written by one ``os.write`` under an exclusive ``flock`` (other writers and readers wait), so
    concurrent votes never interleave; a write that fails part-way (a full disk) is cut off again, and a file
    whose last line lacks its newline (edited by hand) gets one first. AlignLabError in one line on failure.
    """
    path = Path(path)
    line = (json.dumps(vote, ensure_ascii=False) + "\n").encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as error:
        raise AlignLabError(f"votes: cannot write {str(path)!r} ({error.strerror or error})") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        size = os.fstat(handle).st_size
        if size and os.pread(handle, 1, size - 1) != b"\n":
            line = b"\n" + line
        try:
            if os.write(handle, line) != len(line):
                raise OSError(errno.ENOSPC, "the disk took part of the line")
        except OSError as error:
            os.ftruncate(handle, size)
            raise AlignLabError(f"votes: cannot write {str(path)!r} ({error.strerror or error})") from None
    finally:
        os.close(handle)  # and the lock with it


def _vote_problem(row: Any) -> str | None:
    if not isinstance(row, dict):
        return f"holds a JSON {type(row).__name__}, expected an object"
    if row.get("vote") not in CHOICES:
        return f"vote is {row.get('vote')!r}, expected one of {', '.join(CHOICES)}"
    if row.get("outcome") not in (*DECISIVE, "tie", "both-bad"):
        return f"outcome is {row.get('outcome')!r}, expected aligned, reference, tie or both-bad"
    return None


def read_votes(path: str | Path) -> tuple[list[dict], list[str]]:
    """The votes in a votes file and its damaged lines: ``(votes, problems)``, each problem naming its line
    ("line 3: not valid JSON"). A missing file has no votes. Read under a shared lock: never half a line."""
    try:
        with open(path, "rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH)
            data = handle.read()
    except FileNotFoundError:
        return [], []
    except OSError as error:
        raise AlignLabError(f"votes: cannot read {str(path)!r} ({error.strerror or error})") from None
    votes, problems = [], []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            problems.append(f"line {number}: not valid JSON (cut short or edited?)")
            continue
        problem = _vote_problem(row)
        if problem:
            problems.append(f"line {number}: {problem}")
        else:
            votes.append(row)
    return votes, problems


def is_votes_file(path: str | Path) -> bool:
    """True when ``path``'s first readable line is a vote (how :mod:`alignlab.data` tells a votes file)."""
    try:
        with open(path, "rb") as handle:
            for line in handle:
                if line.strip():
                    try:
                        return _vote_problem(json.loads(line)) is None
                    except ValueError:
                        continue
    except OSError:
        return False
    return False


def preference_rows(votes: Iterable[dict]) -> list[dict]:
    """The decisive votes as ``prompt``/``chosen``/``rejected`` rows; ties, both-bad votes and votes on an
    empty answer (a model that stopped at once) are left out."""
    rows = []
    for vote in votes:
        if vote["outcome"] not in DECISIVE:
            continue
        if all(_text(vote.get(column)).strip() for column in ("chosen", "rejected")) and vote.get("prompt"):
            rows.append({"prompt": vote["prompt"], "chosen": vote["chosen"], "rejected": vote["rejected"]})
    return rows


def _text(value: Any) -> str:
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        return str(value[-1].get("content") or "")
    return value if isinstance(value, str) else ""


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
            counts.setdefault(_text(vote.get("prompt")).strip(), [0, 0])[SIDES.index(vote["outcome"])] += 1
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


def votes_as_pairs(path: str | Path) -> list[dict]:
    """A votes file as preference rows (:func:`preference_rows`), for :func:`alignlab.data.load_rows`: damaged
    lines are skipped with an AlignLabWarning naming them; AlignLabError when no vote is decisive."""
    votes, problems = read_votes(path)
    if problems:
        warnings.warn(f"votes: {path}: skipped {len(problems)} damaged line(s): {'; '.join(problems[:3])}"
                      + ("; ..." if len(problems) > 3 else ""), AlignLabWarning, stacklevel=2)
    rows = preference_rows(votes)
    if not rows:
        counted = tally(votes)
        raise AlignLabError(f"dataset: votes file {path} has no decisive vote to train on "
                            f"({_count(counted.votes, 'vote')}: {_count(counted.ties, 'tie')}, {counted.both_bad} both "
                            "bad, or answers left empty), expected votes for A or B on two non-empty answers")
    return rows


# --- tallies -------------------------------------------------------------------------------------
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


def _percent(value: float) -> str:
    return f"{value:.0%}"


def _count(number: int, noun: str) -> str:
    """``3 votes``, ``1 vote``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def summary(counted: Tally, figure: RewardFigure | None = None) -> list[str]:
    """What people and the reward say, a line each: the blind win-rate with its interval and count, ties and
    both-bad separately; the reward's win-rate on the held-out samples (``figure``); their agreement."""
    if not counted.votes:
        lines = [NO_VOTES]
    elif not counted.decisive:
        lines = [f"People: no decisive vote yet ({_count(counted.ties, 'tie')}, {counted.both_bad} both bad)."]
    else:
        lines = [f"People: {_preferred(counted)}"]
    if figure is not None:
        lines.append(f"Reward ({figure.source}) on {figure.prompts} held-out prompts: aligned better on "
                     f"{_percent(figure.win_rate)} [95% CI {_percent(figure.low)}–{_percent(figure.high)}].")
    if counted.judged:
        lines.append(f"Agreement: the reward ({counted.reward_source}) prefers the reply people chose in "
                     f"{counted.agree} of {_count(counted.judged, 'decisive vote')} ({_percent(counted.agreement)}).")
    return lines


def _preferred(counted: Tally) -> str:
    """The win-rate of a tally with decisive votes, its interval and counts, as :func:`summary` says it."""
    low, high = counted.interval()
    decisive = _count(counted.decisive, "decisive vote")
    return (f"aligned preferred in {_percent(counted.win_rate)} of {decisive} [95% CI {_percent(low)}–"
            f"{_percent(high)}] ({counted.wins} aligned, {counted.losses} reference); {_count(counted.ties, 'tie')}, "
            f"{counted.both_bad} both bad.")


def ai_summary(votes: list[dict]) -> list[str]:
    """What each AI annotator of a votes file says, a line each: its win-rate as :func:`summary` gives people's, how
    it met position bias (a pairwise judge asked in both orders, with how often the two orders chose the same
    answer; a pointwise reward, for which the order cannot matter), then its agreement with people on the prompts
    both judged (:func:`prompt_agreement`), when there are any."""
    people, lines = people_votes(votes), []
    for voter, cast in ai_votes(votes).items():
        counted = tally(cast)
        line = f"AI ({voter}): " + (_preferred(counted) if counted.decisive else
                                    f"no decisive vote yet ({_count(counted.ties, 'tie')}).")
        both = [vote["annotator"] for vote in cast if vote["annotator"].get("kind") == "pairwise"]
        if both:
            same = sum(bool(record.get("orders_agree")) for record in both)
            line += (f" Judged in both orders: the two orders chose the same answer in {same} of "
                     f"{_count(len(both), 'pair')} ({_percent(same / len(both))}); the other "
                     f"{_count(len(both) - same, 'pair')} tied (position bias).")
        else:
            line += " Pointwise: each answer scored alone, so the order cannot matter."
        lines.append(line)
        agree, shared = prompt_agreement(people, cast)
        if shared:
            lines.append(f"People and {voter} agree on the better model on {agree} of {_count(shared, 'prompt')} "
                         f"both judged ({_percent(agree / shared)}).")
    return lines


def short_figure(counted: Tally) -> str:
    """A table cell: win-rate, interval and number of votes ("62% [41–79%] · 16 votes"), "" without votes."""
    if not counted.votes:
        return ""
    if not counted.decisive:
        return f"– · {_count(counted.votes, 'vote')}"
    low, high = counted.interval()
    return f"{_percent(counted.win_rate)} [{_percent(low)}–{_percent(high)}] · {_count(counted.votes, 'vote')}"


def run_votes(output_dir: str | Path, name: str) -> tuple[Tally, list[str]]:
    """The tally of the people's votes in the votes file ``name`` of the runs folder ``output_dir`` (an AI
    annotator's are left out: see :func:`ai_summary`) and the file's damaged lines."""
    votes, problems = read_votes(votes_path(output_dir, name))
    return tally(people_votes(votes)), problems


def run_summary(output_dir: str | Path, name: str, figure: RewardFigure | None = None) -> tuple[list[str], list[str]]:
    """The lines of the votes file ``name`` in the runs folder ``output_dir``: people's (:func:`summary`, with the
    reward's ``figure``), then each AI annotator's (:func:`ai_summary`); and the file's damaged lines."""
    votes, problems = read_votes(votes_path(output_dir, name))
    return summary(tally(people_votes(votes)), figure) + ai_summary(votes), problems


def win_rate_cell(output_dir: str | Path, name: str) -> str:
    """A runs-table cell for the votes file ``name``: the people's win-rate, interval and votes (:func:`short_figure`),
    then the AI annotators' after "AI" when they voted; "" without votes or for a file that cannot be read.
    Both front ends' Runs tables show it."""
    try:
        votes, _ = read_votes(votes_path(output_dir, name))
    except AlignLabError:
        return ""
    machine = [vote for vote in votes if is_ai_vote(vote)]
    cells = [short_figure(tally(people_votes(votes))), f"AI {short_figure(tally(machine))}" if machine else ""]
    return "; ".join(cell for cell in cells if cell)
