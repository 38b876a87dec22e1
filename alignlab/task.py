"""The built-in task ``positive-reviews``: the DPO paper's IMDb experiment in miniature.

The instruct model is asked, through its chat template, for a short review that starts with a given opening
(:data:`TASK_INSTRUCTION`); VADER sentiment is the ground-truth reward. Its files live in ``assets/positive-reviews/``
(:func:`task_dir`): ``prompts.jsonl`` (the openings, split into ``train`` and the held-out ``eval``) and
``prefs.jsonl``, a pre-made preference set (with its card, ``prefs.card.md``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from alignlab.data_readers import read_jsonl
from alignlab.errors import AlignLabError

BUILTIN_TASK = "positive-reviews"
# The built-in task asks the instruct model, through its chat template, for a short review that starts
# with a given opening: it then writes sentences about a film that end, instead of continuing raw text
# off topic. Openings of mixed tone keep the base model's reward spread wide (the data card reports it).
TASK_INSTRUCTION = 'Write a short movie review (two sentences) that begins with: "{opening}"'


def assets_dir() -> Path:
    """The project's ``assets/`` folder (``$ALIGNLAB_ASSETS`` overrides).

    In a checkout (and an editable install) that is the repository's ``assets/``; a wheel installs the same files
    as data under ``<prefix>/share/alignlab/assets`` (``[tool.setuptools.data-files]`` in pyproject.toml).
    """
    if "ALIGNLAB_ASSETS" in os.environ:
        return Path(os.environ["ALIGNLAB_ASSETS"])
    checkout = Path(__file__).resolve().parent.parent / "assets"
    installed = Path(sys.prefix) / "share" / "alignlab" / "assets"
    return checkout if (checkout / BUILTIN_TASK).is_dir() or not installed.is_dir() else installed


def task_dir() -> Path:
    """The built-in task's folder of :func:`assets_dir`: its prompts and its pre-made pairs."""
    return assets_dir() / BUILTIN_TASK


def task_openings(split: str = "train") -> list[str]:
    """Review openings of the built-in task; ``split`` is ``train`` or ``eval`` (held out)."""
    rows = read_jsonl(task_dir() / "prompts.jsonl")
    openings = [row["prompt"] for row in rows if row["split"] == split]
    if not openings:
        raise AlignLabError(f"split: got {split!r}, expected train or eval")
    return openings


def task_instruction(opening: str) -> str:
    """The user message of the built-in task for one review opening."""
    return TASK_INSTRUCTION.format(opening=opening)


def task_prompts(split: str = "train") -> list[list[dict]]:
    """The built-in task's prompts: one chat message per review opening (see :data:`TASK_INSTRUCTION`)."""
    return [[{"role": "user", "content": task_instruction(opening)}] for opening in task_openings(split)]


def builtin_names() -> list[str]:
    """The names of the built-in datasets (the dataset field's suggestions)."""
    return [BUILTIN_TASK]
