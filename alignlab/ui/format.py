"""Numbers, times and chat answers as both front ends print them: durations, a run's pace and ETA, table cells,
where the chats' sliders start and how a finished answer ends.

Pure text, no UI package, so the notebook's progress line and the app's progress card say the same
thing for the same run (the pace itself comes from :func:`alignlab.eta.pace`), and both chats show an answer
the same way.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from alignlab.eta import pace
from alignlab.generation import SamplingSettings
from alignlab.metrics import HEADLINE_LABELS

MISSING = "–"  # what a table cell or a time shows when there is no value
# Where both chats' "max new tokens" starts: room for the two sentences the built-in task asks for (the lab's
# 48 cut 3 of 8 answers of the default model mid-sentence, 4 held-out requests × 2 seeds); an answer that still
# runs on is shown to its last full sentence (alignlab.chat.ChatPair cuts it).
CHAT_MAX_NEW_TOKENS = 96


def chat_settings(**sampling: Any) -> SamplingSettings:
    """Where a chat's sampling sliders start: the lab's defaults (:class:`~alignlab.generation.SamplingSettings`)
    with :data:`CHAT_MAX_NEW_TOKENS`, then ``sampling`` (``max_new_tokens``, ``temperature``, ``top_p``, ``seed``).

    >>> chat_settings().max_new_tokens, chat_settings(seed=3).seed
    (96, 3)
    >>> chat_settings(max_new_tokens=4).max_new_tokens
    4
    """
    return dataclasses.replace(SamplingSettings(), **{"max_new_tokens": CHAT_MAX_NEW_TOKENS, **sampling})


def duration(seconds: float | None) -> str:
    """Seconds as people read them, rounded to the second.

    >>> duration(75.4), duration(9.6), duration(None)
    ('1 min 15 s', '10 s', '–')
    """
    if seconds is None:
        return MISSING
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def number(value: float | None) -> str:
    """A metric in a runs table: four significant digits, or ``–`` when the run has not logged it.

    >>> number(0.693147), number(1234567.0), number(None)
    ('0.6931', '1.235e+06', '–')
    """
    return MISSING if value is None else f"{value:.4g}"


FOLLOWED = HEADLINE_LABELS["follow"]  # "instruction followed": a table's column
FOLLOWED_CHANGE = f"{FOLLOWED}: reference → aligned"  # the column of a samples table


def share(value: float | None) -> str:
    """A share (0-1) in a table, such as the instruction followed: a whole percentage, or ``–`` without one.

    >>> share(0.3125), share(None)
    ('31%', '–')
    """
    return MISSING if value is None else f"{value:.0%}"


def followed_change(row: dict) -> str:
    """Whether a sample row's reference and aligned answers followed the instruction (``reference_followed``,
    ``aligned_followed``, see :mod:`alignlab.follow`): ``yes → no``; "" for a row the check could not tell.

    >>> followed_change({"reference_followed": True, "aligned_followed": False}), followed_change({})
    ('yes → no', '')
    """
    answers = [row.get("reference_followed"), row.get("aligned_followed")]
    if not all(isinstance(answer, bool) for answer in answers):
        return ""
    return " → ".join("yes" if answer else "no" for answer in answers)


def samples_followed(summary: dict | None) -> str:
    """The share of a run's samples that followed the instruction, reference → aligned (``31% → 0%``), from
    :func:`alignlab.rundir.samples_summary`; "" where none was checked.

    >>> samples_followed({"checked": 16, "reference_follow": 0.25, "aligned_follow": 0.0}), samples_followed(None)
    ('25% → 0%', '')
    """
    if not summary or not summary.get("checked"):
        return ""
    return f"{share(summary['reference_follow'])} → {share(summary['aligned_follow'])}"


def pace_text(rows: list[dict], total_steps: int | None) -> str:
    """Time per step and the ETA of a run from its timed metric rows ('' until two steps are logged).

    >>> pace_text([{"step": 1, "time": 0.0}, {"step": 3, "time": 1.5}], total_steps=83)
    '0.75 s/step · ETA 1 min 00 s'
    """
    per_step, left = pace(rows, total_steps)
    if per_step is None:
        return ""
    return f"{per_step:.2f} s/step" + ("" if left is None else f" · ETA {duration(left)}")
