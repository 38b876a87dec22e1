"""Runs: start training in a background thread, follow it, stop it, list past runs.

``start(config)`` validates everything it can (config, dataset format, reward, model name)
*before* it creates the run directory, so bad input never leaves a half-made run behind. The
run directory ``<output_dir>/<run_id>/`` then holds ``config.json``, ``status.json`` (state:
running, finished, stopped or failed), ``metrics.jsonl``, the adapter or model in ``model/`` and
``samples.jsonl`` (reference vs aligned completions on held-out prompts).

Stopping sets a flag that a TrainerCallback honours at the next step; the run then saves what it
has and marks itself ``stopped``. Threads are never killed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import socket
import shutil
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from alignlab.config import RunConfig
from alignlab.errors import AlignLabError
from alignlab.metrics import MetricBus, RunLog, clean_metrics, read_metrics, write_json

STATES = ("running", "finished", "stopped", "failed")


@dataclass
class RunContext:
    """What a method's ``trainer_kwargs`` hook may use to build extra trainer arguments."""

    config: RunConfig
    run_dir: Path
    model: Any = None
    tokenizer: Any = None
    dataset: Any = None
    reward: Any = None
    extras: dict = field(default_factory=dict)


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
            write_json(self.run_dir / "status.json", {**self.status, **extra, "updated": time.time(),
                                                      "pid": os.getpid(), "host": socket.gethostname()})

    def _finish(self, state: str, error: str | None = None) -> None:
        self.state = state
        self.error = error
        self._write_status()
        self._done.set()


def new_run_id(config: RunConfig) -> str:
    label = f"-{config.run_name}" if config.run_name else ""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{config.method}{label}-{secrets.token_hex(2)}"


def preflight(config: RunConfig) -> None:
    """Check data format, reward source and model name before anything is written."""
    from alignlab.data import load_rows
    from alignlab.models import resolve_model
    from alignlab.rewards import reward_for

    load_rows(config.dataset, config.spec.data_format, config.method)
    reward_for(config)
    resolve_model(config.model)


def start(config: RunConfig, background: bool = True, run_id: str | None = None,
          is_writer: bool = True) -> RunHandle:
    """Validate, create the run directory and train (in a background thread by default).

    Raises AlignLabError for bad input before any run directory exists.
    """
    if not isinstance(config, RunConfig):
        raise AlignLabError(f"config: got {type(config).__name__}, expected RunConfig")
    preflight(config)
    run_id = run_id or new_run_id(config)
    run_dir = Path(config.output_dir) / run_id
    handle = RunHandle(config, run_id, run_dir, is_writer=is_writer)
    if is_writer:
        run_dir.mkdir(parents=True, exist_ok=False)
        write_json(run_dir / "config.json", {"run_id": run_id, **config.to_dict()})
        handle._write_status()
    if background:
        handle.thread = threading.Thread(target=_run, args=(handle,), name=f"alignlab-{run_id}", daemon=True)
        handle.thread.start()
    else:
        _run(handle)
    return handle


def _run(handle: RunHandle) -> None:
    from alignlab.training import train

    log = RunLog(handle.run_dir / "metrics.jsonl") if handle.is_writer else None
    unsubscribe = handle.bus.subscribe(log.write) if log else None
    try:
        train(handle)
        handle._finish("stopped" if handle.stop_requested else "finished")
    except BaseException as error:  # noqa: BLE001 - every failure must be recorded
        message = str(error) if isinstance(error, AlignLabError) else f"{type(error).__name__}: {error}"
        if handle.is_writer:
            (handle.run_dir / "error.log").write_text(traceback.format_exc())
        handle._finish("failed", message)
    finally:
        if unsubscribe:
            unsubscribe()
        if log:
            log.close()


# --- past runs ------------------------------------------------------------------------------
def read_run(run_dir: str | Path) -> dict:
    """Summary of a run directory: config, status and last metrics."""
    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    status_path = run_dir / "status.json"
    status = json.loads(status_path.read_text()) if status_path.exists() else {"state": "unknown"}
    if status.get("state") == "running" and _owner_is_gone(status):
        status.update(state="failed", error=f"the process training this run (pid {status['pid']}) ended without "
                      "finishing it (killed?); the weights saved so far, if any, are in model/")
    rows, _ = read_metrics(run_dir / "metrics.jsonl")
    last: dict[str, Any] = {}
    for row in rows:
        last.update({k: v for k, v in row.items() if v is not None})
    return {"run_id": run_dir.name, "path": str(run_dir), "method": config.get("method"), "model": config.get("model"),
            "state": status.get("state"), "error": status.get("error"), "steps": last.get("step", 0),
            "loss": last.get("loss"), "reward": _first(last, ("probe/reward", "reward", "rewards/margins")),
            "kl": _first(last, ("probe/kl", "objective/kl", "kl")), "config": config, "history": rows}


def _owner_is_gone(status: dict) -> bool:
    """True when the status names a process on this host that no longer exists."""
    pid = status.get("pid")
    if not pid or status.get("host") != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _first(values: dict, keys: tuple[str, ...]):
    for key in keys:
        if values.get(key) is not None:
            return values[key]
    return None


def list_runs(output_dir: str | Path = "runs") -> list[dict]:
    """Every run under ``output_dir``, newest first."""
    root = Path(output_dir)
    if not root.exists():
        return []
    runs = [read_run(d) for d in root.iterdir() if (d / "config.json").exists()]
    return sorted(runs, key=lambda r: r["run_id"], reverse=True)


def delete_run(run_dir: str | Path) -> None:
    """Remove a run directory (refuses paths that are not run directories)."""
    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise AlignLabError(f"run: {str(run_dir)!r} is not a run directory")
    shutil.rmtree(run_dir)


def config_of(run_dir: str | Path) -> RunConfig:
    """The RunConfig a run was started with."""
    values = json.loads((Path(run_dir) / "config.json").read_text())
    values.pop("run_id", None)
    names = {f.name for f in dataclasses.fields(RunConfig)}
    return RunConfig(**{k: v for k, v in values.items() if k in names})
