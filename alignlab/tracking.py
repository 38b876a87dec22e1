"""Experiment trackers: where a run's trainer logs go besides its metrics file (``RunConfig.report_to``).

TRL's trainers report through transformers' integrations; the lab offers the ones below. The run passes the
choice on as ``report_to`` (with the run id as the tracker's run name and ``alignlab`` as its project), after
:func:`check_tracker` has made sure, before the run directory exists, that the tracker's package is
installed. TensorBoard writes its event files into the run's ``logs/`` folder
(:func:`alignlab.rundir.logs_dir`), which stays when a finished run's checkpoints are removed; trackio, wandb
and mlflow store runs where their own settings say (trackio's local database, wandb's account, mlflow's
tracking URI). The trackers get what the trainer logs, under transformers' names (``train/loss`` for
``loss``); the probe's ``probe/...`` values are in the metrics file only.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alignlab import rundir
from alignlab.errors import AlignLabError

TRACK_EXTRA = "pip install 'alignlab[track]'"
# report_to value -> (the package it needs, how to install it); "none" needs nothing.
TRACKERS: dict[str, tuple[str, str] | None] = {
    "none": None,
    "tensorboard": ("tensorboard", TRACK_EXTRA),
    "trackio": ("trackio", TRACK_EXTRA),
    "wandb": ("wandb", "pip install wandb"),
    "mlflow": ("mlflow", "pip install mlflow"),
}
PROJECT = "alignlab"  # the project trackers that group runs (trackio) file the lab's runs under


def check_tracker(name: str) -> None:
    """AlignLabError in one line unless the tracker ``name`` can be used here: a known name whose package is
    installed.

    >>> check_tracker("none")
    >>> check_tracker("nope")
    Traceback (most recent call last):
    ...
    alignlab.errors.AlignLabError: report_to: got 'nope', expected one of none, tensorboard, trackio, wandb, mlflow
    """
    if name not in TRACKERS:
        raise AlignLabError(f"report_to: got {name!r}, expected one of {', '.join(TRACKERS)}")
    needs = TRACKERS[name]
    if needs is not None and importlib.util.find_spec(needs[0]) is None:
        package, install = needs
        raise AlignLabError(f"report_to: {name} needs the {package} package, which is not installed ({install})")


def trainer_arguments(name: str, run_dir: Path) -> dict:
    """The TrainingArguments that send a run's logs to the tracker ``name`` (none: to no tracker, and the
    trainer's arguments stay TRL's own, so a run without a tracker is the plain TRL run)."""
    named = {"report_to": name, "run_name": Path(run_dir).name}
    return named if name == "none" else {**named, "project": PROJECT}


def keep_logs_in_run_dir(trainer, run_dir: Path) -> None:
    """Point the trainer's TensorBoard writer, if it has one, at the run's ``logs/`` folder (transformers would
    write under its output folder, the checkpoints, which a finished run removes)."""
    handler = getattr(trainer, "callback_handler", None)
    if handler is None:
        return
    from transformers.integrations import TensorBoardCallback

    for callback in handler.callbacks:
        if isinstance(callback, TensorBoardCallback):
            callback.logging_dir = str(rundir.logs_dir(run_dir))
