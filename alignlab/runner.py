"""Runs: start training in a background thread, follow it, stop it.

``start(config)`` validates everything it can (config, dataset format, reward, model name)
*before* it creates the run directory, so bad input never leaves a half-made run behind. The
run directory ``<output_dir>/<run_id>/`` then holds the config, the status (state: running,
finished, stopped or failed), the metrics, the adapter or model and reference-vs-aligned samples
on held-out prompts: :mod:`alignlab.rundir` owns its layout and reads past runs.

Stopping sets a flag that a TrainerCallback honours at the next step; the run then saves what it
has and marks itself ``stopped``. Threads are never killed.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alignlab.config import RunConfig
from alignlab.data import load_rows
from alignlab.errors import AlignLabError
from alignlab.metrics import MetricBus
from alignlab.models import resolve_model
from alignlab.rewards import reward_for
from alignlab.rundir import MetricsLog, check_free, check_run_id, create, new_run_id, write_error, write_status


class RunHandle:
    """A run in progress (or done): status, history, live subscription and stop."""

    def __init__(self, config: RunConfig, run_id: str, run_dir: Path, is_writer: bool = True):
        self.config = config
        self.run_id = run_id
        self.run_dir = run_dir
        self.bus = MetricBus()
        self.is_writer = is_writer
        self.state = "running"
        self.error: str | None = None
        self.total_steps: int | None = None
        self.started = time.time()
        self._stop = threading.Event()
        self._done = threading.Event()
        self.thread: threading.Thread | None = None
        self.model = None  # the model being trained, once loaded (PeftModel with LoRA)
        self.tokenizer = None

    # --- following the run -------------------------------------------------------------
    @property
    def status(self) -> dict:
        """State, steps done of total, seconds elapsed, ETA and the error if it failed."""
        step = self.history[-1]["step"] if self.history else 0
        elapsed = time.time() - self.started
        eta = None
        if self.total_steps and step:
            eta = max(0.0, elapsed / step * (self.total_steps - step)) if self.state == "running" else 0.0
        return {"run_id": self.run_id, "state": self.state, "step": step, "total_steps": self.total_steps,
                "elapsed_s": round(elapsed, 1), "eta_s": None if eta is None else round(eta, 1), "error": self.error}

    @property
    def history(self) -> list[dict]:
        """Events so far: ``{"run_id", "step", "time", "metrics"}``."""
        return list(self.bus.history)

    def subscribe(self, callback: Callable[[dict], None], replay: bool = True) -> Callable[[], None]:
        """Call ``callback(event)`` for each logged step (past ones first); returns unsubscribe."""
        return self.bus.subscribe(callback, replay=replay)

    def stop(self) -> None:
        """Ask the run to stop at the next step; it saves what it has and becomes ``stopped``."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    def wait(self, timeout: float | None = None) -> str:
        """Block until the run ends (or ``timeout``); returns the state.

        Once the run has ended this also joins its thread (within ``timeout``): a process that exits
        right after must not finalise Python while that thread still frees tensors, which aborts it.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._done.wait(timeout) and self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return self.state

    @property
    def done(self) -> bool:
        return self._done.is_set()

    # --- internal ------------------------------------------------------------------------
    def _write_status(self, **extra: Any) -> None:
        if self.is_writer:
            write_status(self.run_dir, {**self.status, **extra})

    def _finish(self, state: str, error: str | None = None) -> None:
        self.state = state
        self.error = error
        self._write_status()
        self._done.set()


def preflight(config: RunConfig) -> None:
    """Check data format, reward source and model name before anything is written."""

    load_rows(config.dataset, config.spec.data_format, config.method)
    reward_for(config)
    resolve_model(config.model)


def start(config: RunConfig, background: bool = True, run_id: str | None = None,
          is_writer: bool = True) -> RunHandle:
    """Validate, create the run directory and train (in a background thread by default).

    ``run_id`` names the run directory (a safe label, see :func:`alignlab.rundir.check_run_id`; by
    default time, method and ``run_name``). Raises AlignLabError for bad input, or an id already
    taken, before any run directory exists.
    """
    if not isinstance(config, RunConfig):
        raise AlignLabError(f"config: got {type(config).__name__}, expected RunConfig")
    run_id = check_run_id(run_id) if run_id is not None else new_run_id(config.method, config.run_name)
    run_dir = Path(config.output_dir) / run_id
    if is_writer:
        check_free(run_dir)
    preflight(config)
    handle = RunHandle(config, run_id, run_dir, is_writer=is_writer)
    if is_writer:
        create(run_dir, {"run_id": run_id, **config.to_dict()})
        handle._write_status()
    if background:
        handle.thread = threading.Thread(target=_run, args=(handle,), name=f"alignlab-{run_id}", daemon=True)
        handle.thread.start()
    else:
        _run(handle)
    return handle


def _run(handle: RunHandle) -> None:
    from alignlab.training import train

    log = MetricsLog(handle.run_dir) if handle.is_writer else None
    unsubscribe = handle.bus.subscribe(log.write) if log else None
    try:
        train(handle)
        handle._finish("stopped" if handle.stop_requested else "finished")
    except BaseException as error:  # noqa: BLE001 - every failure must be recorded
        message = str(error) if isinstance(error, AlignLabError) else f"{type(error).__name__}: {error}"
        if handle.is_writer:
            write_error(handle.run_dir, traceback.format_exc())
        handle._finish("failed", message)
    finally:
        if unsubscribe:
            unsubscribe()
        if log:
            log.close()

