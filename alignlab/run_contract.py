"""The contract between the runner and the training code: what one holds for the other.

The runner (:mod:`alignlab.runner`) checks a run before anything is written (:func:`alignlab.runner.preflight`) and
keeps what that check loaded in a :class:`Preflight`, so training does not load it again. Training code
(:mod:`alignlab.training`, :mod:`alignlab.probe`) then sees the run only as a :class:`TrainingRun`: the settings and
where the run lives, a way to log a step, to say that training started, to save the status, to learn that a stop
was requested, and to offer the live model to a chat. The runner's :class:`~alignlab.runner.RunHandle` implements it;
a test can train through anything else that does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from alignlab.config import RunConfig
    from alignlab.held_out import HeldOut
    from alignlab.rewards import RewardSource


@dataclass
class Preflight:
    """What checking a run loaded, handed on to its training.

    ``held_out``: the prompts it never trains on; ``rows``: the data rows left to train on, in the method's
    format (held-out prompts removed); ``reward``: the run's reward source; ``tokenizer``: the model's tokenizer
    when the check needed it (to see that prompts fit ``max_length``), else None.
    """

    held_out: HeldOut
    rows: list[dict]
    reward: RewardSource
    tokenizer: Any = None


@runtime_checkable
class TrainingRun(Protocol):
    """A run as training code sees it (implemented by :class:`alignlab.runner.RunHandle`).

    ``checkpoint`` is the checkpoint a resumed run continues from (None for a new run); ``is_writer`` says whether
    this process writes the run directory (one process of a multi-process run does); ``model`` is the model being
    trained once :meth:`live_model` offered it.
    """

    config: RunConfig
    run_id: str
    run_dir: Path
    is_writer: bool
    checkpoint: str | None
    held_out: HeldOut | None
    preflight: Preflight | None
    model: Any

    @property
    def history(self) -> list[dict]:
        """The events logged so far: ``{"run_id", "step", "time", "metrics"}``."""

    @property
    def stop_requested(self) -> bool:
        """Whether someone asked the run to stop (it stops at the next step and saves)."""

    def record(self, step: int, metrics: dict) -> dict:
        """Log one step's metrics (the metrics file first, then the live bus); returns the event."""

    def training_started(self, total_steps: int, batch_layout: dict) -> None:
        """The trainer starts: ``total_steps`` steps, ``batch_layout`` (world_size, global_batch_size) for the
        status, which is saved."""

    def save_status(self) -> None:
        """Write the run's status (state, step, ETA, ...) to its run directory, if this process writes it."""

    def set_phase(self, phase: str | None) -> None:
        """Name what the run is doing now, in a few words ("computing the reference log-probs", "probe at step
        0", ...; None while it trains steps): the status says it and both UIs show it. The status is saved."""

    def live_model(self, model: Any, tokenizer: Any) -> None:
        """Offer the model being trained (and its tokenizer) to a chat during training."""
