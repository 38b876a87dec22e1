"""Held-out prompts: the prompts a run never trains on, chosen when it starts and recorded in its run directory.

Whatever the lab reports as held out (the run's samples, the probe, ``alignlab eval``, ``data annotate``, what
changed, the report and the model card) is measured on these prompts, and the trainer never sees a row whose
prompt is one of them. Which prompts (:func:`choose_held_out`):

- ``eval_dataset`` set: the prompts of that dataset (the built-in task's name there means its held-out split);
- else a dataset that is, or mixes in, the built-in task: the task's own held-out split (100 review openings;
  its pairs and training prompts come from the other 300);
- else a user's dataset: :data:`HELD_OUT_SHARE` of its distinct prompts (at most :data:`HELD_OUT_PROMPTS`, at
  least one, and at least one left to train on), drawn with the run's seed.

Training rows whose prompt is held out are left out in every case (:func:`alignlab.data.without_prompts`): an eval
dataset that repeats training prompts, or votes cast on the task's held-out openings, cannot leak into training.
The choice is written once, when the run starts, to ``held_out.json`` (:data:`alignlab.rundir.HELD_OUT`); a
resumed run and every later reader take the prompts from there (:func:`held_out_of_run`), so a dataset file changed
afterwards changes nothing.
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from alignlab import rundir
from alignlab.config import config_of
from alignlab.data import dataset_parts, load_rows, prompt_key, without_prompts
from alignlab.errors import AlignLabError
from alignlab.task import BUILTIN_TASK, task_prompts

HELD_OUT_PROMPTS = 64  # at most this many of a user dataset's distinct prompts are held out
HELD_OUT_SHARE = 0.2  # and at most this share of them (rounded up), so most of a small dataset is trained on
KINDS = ("task", "eval_dataset", "split")  # where the held-out prompts come from (see the module docstring)


@dataclass
class HeldOut:
    """A run's held-out prompts and where they come from: ``kind`` (one of :data:`KINDS`), ``source`` (the dataset
    they were taken from), ``seed`` (of a split), ``of`` (distinct prompts a split drew from) and
    ``left_out_rows`` (training rows left out because their prompt is held out, counted when the run started)."""

    prompts: list
    kind: str
    source: str
    seed: int | None = None
    of: int = 0
    left_out_rows: int = 0

    def describe(self) -> str:
        """One sentence for the model card, the report and the docs."""
        count = len(self.prompts)
        if self.kind == "task":
            what = f"the built-in task's {count} held-out review openings (training uses the task's other prompts)"
        elif self.kind == "eval_dataset":
            what = f"the {count} prompts of the eval dataset `{_shown(self.source)}`"
        else:
            what = (f"{count} of the dataset's {self.of} distinct prompts, drawn with seed {self.seed} when the run "
                    "started")
        left = f"; {self.left_out_rows} training row(s) with these prompts were left out" if self.left_out_rows else ""
        return f"{what}, recorded in `{rundir.HELD_OUT}` and never trained on{left}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _shown(source: str) -> str:
    """A dataset source as the card shows it: a file by its name, anything else as given."""
    return "+".join(Path(part).name if Path(part).expanduser().is_file() else part for part in dataset_parts(source))


def _distinct(prompts: list) -> list:
    """``prompts`` without repeats, in the order first seen."""
    seen: dict[str, Any] = {}
    for prompt in prompts:
        seen.setdefault(prompt_key(prompt), prompt)
    return list(seen.values())


def _prompts_of(source: str) -> list:
    """The distinct prompts of a dataset source; a built-in task part gives its held-out split."""
    prompts = []
    for part in dataset_parts(source):
        if part == BUILTIN_TASK:
            prompts += task_prompts("eval")
        else:
            prompts += [row["prompt"] for row in load_rows(part, "prompt")]
    return _distinct(prompts)


def choose_held_out(config) -> HeldOut:
    """The held-out prompts of a run of ``config`` (a RunConfig), as the module's docstring says; AlignLabError
    for a dataset of fewer than two distinct prompts and no ``eval_dataset`` (nothing could be held out)."""
    if config.eval_dataset:
        try:
            prompts = _prompts_of(config.eval_dataset)
        except AlignLabError as error:  # the loader's errors name the dataset field
            raise AlignLabError(f"eval_dataset: {str(error).removeprefix('dataset: ')}") from None
        return HeldOut(prompts, "eval_dataset", config.eval_dataset)
    if BUILTIN_TASK in dataset_parts(config.dataset):
        return HeldOut(task_prompts("eval"), "task", BUILTIN_TASK)
    prompts = _prompts_of(config.dataset)
    if len(prompts) < 2:
        raise AlignLabError(f"dataset: {_shown(config.dataset)!r} has {len(prompts)} distinct prompt(s), expected at "
                            "least 2 so that some are held out for the samples, the probe and eval (or set "
                            "eval_dataset to a dataset of held-out prompts)")
    count = min(HELD_OUT_PROMPTS, math.ceil(len(prompts) * HELD_OUT_SHARE))
    picked = sorted(random.Random(config.seed).sample(range(len(prompts)), count))
    return HeldOut([prompts[index] for index in picked], "split", config.dataset, config.seed, len(prompts))


def record_held_out(run_dir: str | Path, held_out: HeldOut) -> None:
    """Write the run's held-out prompts (once, when it starts); AlignLabError in one line if they cannot be."""
    rundir.write_held_out(run_dir, held_out.as_dict())


def held_out_of_run(run_dir: str | Path, config=None) -> HeldOut:
    """The held-out prompts the run recorded (``config``: its RunConfig, read from the run when not given).

    A run made before runs recorded them has none: its built-in task's held-out split is still its held-out set
    (nothing else was ever trained on), but of a user's dataset every prompt may have been trained on, and
    AlignLabError says so.
    """
    recorded = rundir.read_held_out(run_dir)
    if recorded is not None:
        fields = {key: recorded[key] for key in ("prompts", "kind", "source", "seed", "of", "left_out_rows")
                  if key in recorded}
        return HeldOut(**fields)
    config = config or config_of(run_dir)
    if not config.eval_dataset and BUILTIN_TASK in dataset_parts(config.dataset):
        return choose_held_out(config)
    raise AlignLabError(f"run: {Path(run_dir).name} has no {rundir.HELD_OUT} (it was trained before alignlab "
                        "recorded held-out prompts), so every prompt of its dataset may have been trained on; "
                        "expected a run that recorded them (train it again)")


def training_rows(rows: list[dict], held_out: HeldOut) -> list[dict]:
    """``rows`` without those whose prompt is held out; AlignLabError when none would be left to train on."""
    kept = without_prompts(rows, held_out.prompts)
    if rows and not kept:
        field = "eval_dataset" if held_out.kind == "eval_dataset" else "dataset"
        raise AlignLabError(f"{field}: every training row's prompt is among the {len(held_out.prompts)} held-out "
                            f"prompts ({held_out.describe().split(',')[0]}), so no row is left to train on; expected "
                            "held-out prompts that are not all of the training data")
    return kept
