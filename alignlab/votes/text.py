"""Votes in words: the lines and table cells the CLI, both front ends and the report show for a run's votes."""

from __future__ import annotations

from pathlib import Path

from alignlab.errors import AlignLabError
from alignlab.rundir import votes_path
from alignlab.votes.store import read_votes
from alignlab.votes.tally import RewardFigure, Tally, ai_votes, is_ai_vote, people_votes, prompt_agreement, tally

NO_VOTES = "No blind votes from people yet."


def _percent(value: float) -> str:
    return f"{value:.0%}"


def plural(number: int, noun: str) -> str:
    """``3 votes``, ``1 vote``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def summary(counted: Tally, figure: RewardFigure | None = None) -> list[str]:
    """What people and the reward say, a line each: the blind win-rate with its interval and count, ties and
    both-bad separately; the reward's win-rate on the held-out samples (``figure``); their agreement."""
    if not counted.votes:
        lines = [NO_VOTES]
    elif not counted.decisive:
        lines = [f"People: no decisive vote yet ({plural(counted.ties, 'tie')}, {counted.both_bad} both bad)."]
    else:
        lines = [f"People: {_preferred(counted)}"]
    if figure is not None:
        lines.append(f"Reward ({figure.source}) on {figure.prompts} held-out prompts: aligned better on "
                     f"{_percent(figure.win_rate)} [95% CI {_percent(figure.low)}–{_percent(figure.high)}].")
    if counted.judged:
        lines.append(f"Agreement: the reward ({counted.reward_source}) prefers the reply people chose in "
                     f"{counted.agree} of {plural(counted.judged, 'decisive vote')} ({_percent(counted.agreement)}).")
    return lines


def _preferred(counted: Tally) -> str:
    """The win-rate of a tally with decisive votes, its interval and counts, as :func:`summary` says it."""
    low, high = counted.interval()
    decisive = plural(counted.decisive, "decisive vote")
    return (f"aligned preferred in {_percent(counted.win_rate)} of {decisive} [95% CI {_percent(low)}–"
            f"{_percent(high)}] ({counted.wins} aligned, {counted.losses} reference); {plural(counted.ties, 'tie')}, "
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
                                    f"no decisive vote yet ({plural(counted.ties, 'tie')}).")
        both = [vote["annotator"] for vote in cast if vote["annotator"].get("kind") == "pairwise"]
        if both:
            same = sum(bool(record.get("orders_agree")) for record in both)
            line += (f" Judged in both orders: the two orders chose the same answer in {same} of "
                     f"{plural(len(both), 'pair')} ({_percent(same / len(both))}); the other "
                     f"{plural(len(both) - same, 'pair')} tied (position bias).")
        else:
            line += " Pointwise: each answer scored alone, so the order cannot matter."
        lines.append(line)
        agree, shared = prompt_agreement(people, cast)
        if shared:
            lines.append(f"People and {voter} agree on the better model on {agree} of {plural(shared, 'prompt')} "
                         f"both judged ({_percent(agree / shared)}).")
    return lines


def short_figure(counted: Tally) -> str:
    """A table cell: win-rate, interval and number of votes ("62% [41–79%] · 16 votes"), "" without votes."""
    if not counted.votes:
        return ""
    if not counted.decisive:
        return f"– · {plural(counted.votes, 'vote')}"
    low, high = counted.interval()
    return f"{_percent(counted.win_rate)} [{_percent(low)}–{_percent(high)}] · {plural(counted.votes, 'vote')}"


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
