"""Experiment trackers: where a run's trainer logs go besides its metrics file (``RunConfig.report_to``).

TRL's trainers report through transformers' integrations; the lab offers the ones below. The run passes the
choice on as ``report_to`` (with the run id as the tracker's run name and ``alignlab`` as its project), after
:func:`check_tracker` has made sure, before the run directory exists, that each tracker's package is
installed. A run may report to several trackers at once, as transformers' ``report_to`` does:
``--report-to tensorboard,trackio`` or the flag repeated (:func:`tracker_names` reads either).

TensorBoard writes its event files into the run's ``logs/`` folder (:func:`alignlab.rundir.logs_dir`), which
stays when a finished run's checkpoints are removed; trackio, wandb and mlflow store runs where their own
settings say (trackio's local database, wandb's account, mlflow's tracking URI). The trackers get what the
trainer logs, under transformers' names (``train/loss`` for ``loss``), and the probe's reward and KL too
(:func:`report_probe`: ``train/probe/reward``, ``train/probe/kl``, their standard errors, length and cost), at
the step they were measured.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
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


def tracker_names(value: str | Sequence[str]) -> list[str]:
    """The trackers a ``report_to`` value names: comma-separated and/or a list (a repeated flag, a YAML list), in
    order, each once; ``none`` alone stands for no tracker (an empty list). AlignLabError in one line for a name
    that is not a tracker, or ``none`` beside one.

    >>> tracker_names("tensorboard, trackio"), tracker_names(["wandb", "tensorboard,wandb"]), tracker_names("none")
    (['tensorboard', 'trackio'], ['wandb', 'tensorboard'], [])
    """
    parts = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else None
    if parts is None or not all(isinstance(part, str) for part in parts):
        raise AlignLabError(f"report_to: got {value!r}, expected tracker names (comma-separated, or a list)")
    names = list(dict.fromkeys(name.strip() for part in parts for name in part.split(",") if name.strip()))
    for name in names:
        if name not in TRACKERS:
            raise AlignLabError(f"report_to: got {name!r}, expected one of {', '.join(TRACKERS)} (several: "
                                "comma-separated)")
    if "none" in names and len(names) > 1:
        raise AlignLabError(f"report_to: got {', '.join(names)}, expected none alone or tracker names without it")
    return [name for name in names if name != "none"]


def report_to_value(value: str | Sequence[str]) -> str:
    """A ``report_to`` value as a run records it: the trackers comma-separated, or ``none`` (see
    :func:`tracker_names`).

    >>> report_to_value(["tensorboard", "trackio"]), report_to_value("")
    ('tensorboard,trackio', 'none')
    """
    return ",".join(tracker_names(value)) or "none"


def check_tracker(value: str | Sequence[str]) -> None:
    """AlignLabError in one line unless every tracker ``value`` names (:func:`tracker_names`) can be used here:
    a known name whose package is installed.

    >>> check_tracker("none")
    """
    for name in tracker_names(value):
        package, install = TRACKERS[name]
        if importlib.util.find_spec(package) is None:
            raise AlignLabError(f"report_to: {name} needs the {package} package, which is not installed ({install})")


def trainer_arguments(value: str | Sequence[str], run_dir: Path) -> dict:
    """The TrainingArguments that send a run's logs to the trackers ``value`` names (none: to no tracker, and the
    trainer's arguments stay TRL's own, so a run without a tracker is the plain TRL run)."""
    names = tracker_names(value)
    named = {"report_to": names or "none", "run_name": Path(run_dir).name}
    return {**named, "project": PROJECT} if names else named


def tracker_callbacks(trainer) -> list:
    """The trainer's experiment-tracker callbacks (the transformers integrations its ``report_to`` added)."""
    from transformers.integrations import INTEGRATION_TO_CALLBACK

    kinds = tuple(INTEGRATION_TO_CALLBACK[name] for name in TRACKERS if name in INTEGRATION_TO_CALLBACK)
    handler = getattr(trainer, "callback_handler", None)
    return [callback for callback in getattr(handler, "callbacks", []) if isinstance(callback, kinds)]


def trackers_last(trainer) -> None:
    """Move the trainer's tracker callbacks behind its other callbacks (the lab's among them), so what those report
    at the end of training (the probe's last point, :func:`report_probe` from ``on_train_end``) reaches each tracker
    before the tracker closes its run. Every tracker transformers offers here opens its run on the first log it
    gets, so what is reported before its ``on_train_begin`` is kept as well."""
    trackers = tracker_callbacks(trainer)
    if not trackers:
        return
    callbacks = trainer.callback_handler.callbacks
    callbacks[:] = [callback for callback in callbacks if callback not in trackers] + trackers


def report_probe(trackers: Sequence, args, state, control, metrics: dict) -> None:
    """Give the probe's ``metrics`` (``probe/reward``, ``probe/kl``, ...) to each tracker callback as a log of
    ``state.global_step``, the way the trainer's own logs reach it (only numbers: a tracker takes scalars)."""
    numbers = {key: value for key, value in metrics.items()
               if isinstance(value, (int, float)) and not isinstance(value, bool)}
    for tracker in trackers if numbers else ():
        tracker.on_log(args, state, control, logs=dict(numbers))


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
