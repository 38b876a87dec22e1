"""Votes as a preference dataset: the decisive votes' ``prompt``/``chosen``/``rejected`` rows, what
:func:`alignlab.data.load_rows` trains on when a dataset is a votes file."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

from alignlab.errors import AlignLabError, AlignLabWarning
from alignlab.votes.rounds import DECISIVE, answer_text
from alignlab.votes.store import read_votes
from alignlab.votes.tally import tally
from alignlab.votes.text import plural


def preference_rows(votes: Iterable[dict]) -> list[dict]:
    """The decisive votes as ``prompt``/``chosen``/``rejected`` rows; ties, both-bad votes and votes on an
    empty answer (a model that stopped at once) are left out."""
    rows = []
    for vote in votes:
        if vote["outcome"] not in DECISIVE:
            continue
        if all(answer_text(vote.get(column)).strip() for column in ("chosen", "rejected")) and vote.get("prompt"):
            rows.append({"prompt": vote["prompt"], "chosen": vote["chosen"], "rejected": vote["rejected"]})
    return rows


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
                            f"({plural(counted.votes, 'vote')}: {plural(counted.ties, 'tie')}, {counted.both_bad} both "
                            "bad, or answers left empty), expected votes for A or B on two non-empty answers")
    return rows
