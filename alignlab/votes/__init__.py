"""Blind votes: people compare the reference and the aligned model's answers without knowing which is which.

A blind round shows the two answers to one prompt as A and B, in an order drawn from a seeded random
stream (:func:`blind_order`, :mod:`.rounds`); the seed is kept in the vote, so the order can be checked afterwards. The
voter picks A, B, ``tie`` or ``both-bad``, and only then learns which model wrote which answer.

Each vote is one JSON line (:mod:`.store`) appended to the run's votes file (``<runs>/_votes/<run id>.jsonl``, named by
:func:`alignlab.rundir.votes_path`). :func:`append_vote` writes the whole line with a single ``os.write``
while it holds an exclusive ``flock`` on the file, so twenty people voting at once never interleave or lose
a line. A votes file is a preference dataset as it is: ``prompt``, ``chosen`` and ``rejected`` columns
(conversational in chat mode), with ``chosen``/``rejected`` null for ties and both-bad votes, which
:func:`preference_rows` leaves out (:mod:`.pairs`). Every line also says which model each answer came from, the sampling
settings, the reward each answer got from the chat's reward source, the voter's name (when one was given)
and the time.

:func:`tally` (:mod:`.tally`) counts wins, losses, ties and both-bad votes of the aligned model against the reference,
with a 95% Wilson interval on the decisive votes (Wilson 1927, :func:`alignlab.stats.wilson_interval`), and
the agreement between people and the reward source: the share of decisive votes where the reward prefers
the reply people chose. :func:`reward_figure` is the reward's own win-rate on the run's held-out samples.

An AI annotator (:mod:`alignlab.annotate`) appends votes of the same form to the same file, its voter named
``ai:<reward source>`` and its record kept under ``annotator`` (:func:`is_ai_vote`). They train like people's
votes; the tallies keep them apart: :func:`run_votes` and :func:`summary` count people only (so the agreement
between people and the reward stays theirs), :func:`ai_summary` gives each annotator's win-rate, how it handled
position bias, and how often it agrees with people on the prompts both judged. :func:`run_summary` is both, as the
CLI, the two front ends and the report show it.

What votes say in words, for the CLI, the front ends and the report, is :mod:`.text`. Every name is imported here:
``from alignlab.votes import tally`` works whichever module holds it.

>>> votes = [{"outcome": "aligned", "reward": {"reference": 0.1, "aligned": 0.6}},
...          {"outcome": "reference", "reward": {"reference": 0.2, "aligned": 0.5}}, {"outcome": "tie"}]
>>> t = tally(votes)
>>> (t.wins, t.losses, t.ties, t.both_bad, t.agree, t.judged)
(1, 1, 1, 0, 1, 2)
"""

from alignlab.votes.pairs import preference_rows, votes_as_pairs
from alignlab.votes.rounds import (
    AI_VOTER_PREFIX,
    CHOICES,
    DECISIVE,
    MAX_VOTER,
    SIDES,
    Round,
    answer_text,
    blind_order,
    new_order_seed,
    reveal,
)
from alignlab.votes.store import append_vote, is_votes_file, read_votes, vote_problem
from alignlab.votes.tally import (
    RewardFigure,
    Tally,
    ai_votes,
    is_ai_vote,
    people_votes,
    prompt_agreement,
    reward_figure,
    run_votes,
    tally,
)
from alignlab.votes.text import NO_VOTES, ai_summary, plural, run_summary, short_figure, summary, win_rate_cell

__all__ = [
    "AI_VOTER_PREFIX", "CHOICES", "DECISIVE", "MAX_VOTER", "NO_VOTES", "RewardFigure", "Round", "SIDES", "Tally",
    "ai_summary", "ai_votes", "answer_text", "append_vote", "blind_order", "plural", "is_ai_vote",
    "is_votes_file", "new_order_seed", "people_votes", "preference_rows", "prompt_agreement", "read_votes",
    "reveal", "reward_figure", "run_summary", "run_votes", "short_figure", "summary", "tally", "vote_problem",
    "votes_as_pairs", "win_rate_cell",
]
