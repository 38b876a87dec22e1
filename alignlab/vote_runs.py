"""A new run trained on a run's votes: what **Train on these votes** starts, in the app and in the notebook.

The votes file of a run (:mod:`alignlab.votes`, people's blind votes and an AI annotator's alike) is a preference
dataset, ``votes:<run id>``. :func:`votes_run_config` makes the config of a run like the voted one (model, steps,
LoRA and the other settings) that trains on those votes with a preference method (DPO, Rafailov et al. 2023; KTO,
Ethayarajh et al. 2024, which splits each pair into a good and a bad answer; ORPO, Hong et al. 2024), alone or
mixed with the built-in pairs. Both front ends call it, so they start the same run.
"""

from __future__ import annotations

from pathlib import Path

from alignlab.config import RunConfig, config_of
from alignlab.data import MIX, VOTES_PREFIX, load_rows
from alignlab.errors import AlignLabError
from alignlab.rundir import find_run
from alignlab.task import BUILTIN_TASK

VOTE_METHODS = ("dpo", "kto", "orpo")  # preference methods that learn from pairs (KTO: split into good and bad)
VOTES_RUN_NAME = "votes"  # the run_name of such a run: its id says it trained on votes


def votes_run_config(runs_dir: str | Path, run_id: str, method: str, mix: bool = False) -> RunConfig:
    """A run like ``run_id`` of the runs folder ``runs_dir`` trained with ``method`` on its votes, mixed with the
    built-in pairs when ``mix``; AlignLabError for an unknown run or method, or votes that hold no pair to learn
    from (checked now: a worker would fail later)."""
    base = config_of(find_run(runs_dir, run_id))
    if method not in VOTE_METHODS:
        raise AlignLabError(f"method: got {method!r}, expected one of {', '.join(VOTE_METHODS)}")
    values = {key: value for key, value in base.to_dict().items() if key not in ("method", "method_args",
                                                                                  "run_name", "dataset")}
    dataset = VOTES_PREFIX + run_id + (MIX + BUILTIN_TASK if mix else "")
    config = RunConfig(**{**values, "output_dir": str(runs_dir)}, method=method, dataset=dataset,
                       run_name=VOTES_RUN_NAME)
    load_rows(config.dataset, config.spec.data_format, config.method)
    return config
