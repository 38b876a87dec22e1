"""Instruction-following: did a completion do what its prompt asked? Measured wherever the reward is.

A reward can rise while the model stops doing what it was asked (the built-in task's aligned model writes stock
praise and drops the requested opening), so the probe, the end-of-run samples and ``alignlab eval`` record, beside
the reward, the share of completions that followed the instruction, reference vs aligned where both are sampled.

A *check* is a callable ``(prompts, completions) -> list[bool | None]``: per completion, whether it followed its
prompt's instruction, or None when the prompt asks for nothing the check can tell. A task declares its own with
:func:`register_check` (by its dataset name, as :func:`alignlab.rewards.register_reward` declares a reward source);
:func:`check_for` picks the check of a run's dataset. Without one, :func:`opening_followed` applies: it checks the
prompts written in the built-in task's instruction format (:data:`alignlab.task.TASK_INSTRUCTION`, "... begins with:
"<opening>"") and answers None for any other prompt, so a dataset of other prompts records no figure rather than a
wrong one.

The built-in check, and its normalisation: a completion begins with the requested opening when, after both are
normalised, the completion's text starts with the opening's. Normalising folds Unicode compatibility forms (NFKC),
turns curly quotes and apostrophes straight, drops what a model puts before the text (leading whitespace, quote
marks, Markdown emphasis ``*`` and ``_``), collapses runs of whitespace to one space and ignores case. So
``"  “the pacing changes noticeably after…``" begins with ``The pacing changes noticeably after``; a paraphrase, a
dropped word or a different first word does not.

>>> opening_followed([task_instruction("The pacing changes")], ['"the Pacing  changes, and not for the better.'])
[True]
>>> opening_followed([task_instruction("The pacing changes"), "Say hi"], ["A fine film.", "Hi!"])
[False, None]
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence

from alignlab.data import dataset_parts
from alignlab.errors import AlignLabError
from alignlab.generation import prompt_text
from alignlab.stats import mean_se
from alignlab.task import (
    BUILTIN_TASK,
    TASK_INSTRUCTION,
    task_instruction,  # noqa: F401 - the doctests' prompts
)

FollowCheck = Callable[[Sequence, Sequence[str]], list]
OPENING_CHECK = "begins with the requested opening"  # what the built-in check measures, for a reader
_BEFORE, _, _AFTER = TASK_INSTRUCTION.partition("{opening}")
_OPENING = re.compile(re.escape(_BEFORE) + r"(.+?)" + re.escape(_AFTER) + r"\s*$", re.DOTALL)
_STRAIGHT = str.maketrans({"“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "‘": "'", "’": "'", "‚": "'",
                           "`": "'"})
_LEADING = " \t\r\n\"'*_"  # what may stand before a completion's text: whitespace, quotes, Markdown emphasis


def normalise(text: str) -> str:
    """``text`` as the built-in check compares it (see the module's docstring).

    >>> normalise('  **“The  Film’s  ')
    "the film's"
    """
    text = unicodedata.normalize("NFKC", text).translate(_STRAIGHT).lstrip(_LEADING)
    return " ".join(text.split()).casefold()


def requested_opening(prompt) -> str | None:
    """The opening a prompt in the built-in task's format asks the review to begin with, or None for another prompt
    (a message list is read by its last user message).

    >>> requested_opening([{"role": "user", "content": task_instruction("I went in with low expectations and")}])
    'I went in with low expectations and'
    """
    match = _OPENING.search(prompt_text(prompt))
    return match.group(1) if match else None


def begins_with(completion: str, opening: str) -> bool:
    """Whether ``completion`` begins with ``opening``, both normalised (:func:`normalise`).

    >>> begins_with("By the time the credits rolled, I was in tears.", "By the time the credits rolled, I")
    True
    """
    wanted = normalise(opening)
    return bool(wanted) and normalise(completion).startswith(wanted)


def opening_followed(prompts: Sequence, completions: Sequence[str]) -> list[bool | None]:
    """The built-in task's check: per completion, whether it begins with the opening its prompt requests (None for
    a prompt that requests none)."""
    openings = [requested_opening(prompt) for prompt in prompts]
    return [None if opening is None else begins_with(str(text), opening)
            for opening, text in zip(openings, completions)]


_CHECKS: dict[str, FollowCheck] = {BUILTIN_TASK: opening_followed}


def register_check(task: str, check: FollowCheck) -> None:
    """Declare ``check`` as how a run on dataset ``task`` (a name as ``--dataset`` takes it) is checked for following
    its instructions (replacing an earlier one for that name)."""
    if not callable(check):
        raise AlignLabError(f"follow check: got {check!r} for {task!r}, expected a function (prompts, completions) "
                            "-> a list of True, False or None")
    _CHECKS[task] = check


def check_for(dataset) -> FollowCheck:
    """The check of a run's ``dataset``: the first registered one among the sources it mixes, else
    :func:`opening_followed`."""
    for part in dataset_parts(dataset):
        if isinstance(part, str) and part in _CHECKS:
            return _CHECKS[part]
    return opening_followed


def followed(check: FollowCheck | None, prompts: Sequence, completions: Sequence[str]) -> list[bool | None]:
    """``check``'s answers for the completions (all None without a check), checked: one per completion, each True,
    False or None; AlignLabError otherwise."""
    if check is None:
        return [None] * len(completions)
    answers = list(check(prompts, completions))
    if len(answers) != len(completions) or any(answer not in (True, False, None) for answer in answers):
        raise AlignLabError(f"follow check {getattr(check, '__name__', check)!r}: expected True, False or None for "
                            f"each of {len(completions)} completions, got {answers[:5]!r}")
    return [None if answer is None else bool(answer) for answer in answers]


def share(answers: Sequence[bool | None]) -> tuple[float, float] | None:
    """The share of the checked completions that followed their instruction (0-1) and its standard error, or None
    when no completion could be checked.

    >>> share([True, False, None, True, True])
    (0.75, 0.25)
    """
    checked = [float(answer) for answer in answers if answer is not None]
    return mean_se(checked) if checked else None

