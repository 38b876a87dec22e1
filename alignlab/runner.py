"""Runs: start training in a background thread, follow it, stop it.

``start(config)`` validates everything it can (config, dataset format, reward, model name)
*before* it creates the run directory, so bad input never leaves a half-made run behind. The
run directory ``<output_dir>/<run_id>/`` then holds the config, the status (state: running,
finished, stopped or failed), the metrics, the adapter or model and reference-vs-aligned samples
on held-out prompts: :mod:`alignlab.rundir` owns its layout and reads past runs.

Stopping sets a flag that a TrainerCallback honours at the next step; the run then saves what it
has and marks itself ``stopped``. Threads are never killed.

``resume(run_dir)`` continues a stopped, failed or killed run from the last checkpoint it saved (every
``save_every`` steps, and when it was stopped), in the same run directory.

Training code sees a run only through :class:`alignlab.run_contract.TrainingRun`, which :class:`RunHandle`
implements, and gets what :func:`preflight` loaded (a :class:`~alignlab.run_contract.Preflight`) instead of loading
it again. :func:`train_distributed` is the same for one process of a multi-process launch.

A run is trained by one trainer at a time: the process that starts or resumes it holds the run directory's
training lock (:func:`alignlab.rundir.lock_training`, an OS-level lock) until the run ends, so a second resume
of it (another ``train --resume``, the app's Resume, a notebook) is refused at once and changes nothing.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alignlab import devices
from alignlab.config import RunConfig, config_of
from alignlab.data import dataset_label, load_rows
from alignlab.data_readers import is_dataset_object, keep_in_run
from alignlab.errors import AlignLabError
from alignlab.eta import pace
from alignlab.held_out import HeldOut, choose_held_out, held_out_of_run, record_held_out, training_rows
from alignlab.metrics import MetricBus
from alignlab.models import check_lora_targets, load_tokenizer, resolve_model
from alignlab.panels import rows_from_events
from alignlab.prompt_lengths import check_prompt_lengths
from alignlab.rewards import reward_for
from alignlab.run_contract import Preflight
from alignlab.rundir import (
    MetricsLog,
    TrainingLock,
    check_free,
    check_output_dir,
    check_run_id,
    create,
    damaged_checkpoint_file,
    dataset_dir,
    delete_run,
    find,
    is_locked,
    latest_checkpoint,
    lock_training,
    new_run_id,
    owner_is_gone,
    read_status,
    rewind,
    run_path,
    write_error,
    write_status,
)
from alignlab.tracking import check_tracker


class RunHandle:
    """A run in progress (or done): status, history, live subscription and stop; to the training code, a
    :class:`~alignlab.run_contract.TrainingRun`."""

    def __init__(self, config: RunConfig, run_id: str, run_dir: Path, is_writer: bool = True):
        self.config = config
        self.run_id = run_id
        self.run_dir = run_dir
        self.bus = MetricBus()
        self.is_writer = is_writer
        self.state = "running"
        self.error: str | None = None
        self.total_steps: int | None = None
        self.batch_layout: dict = {}  # world_size and global_batch_size, once training starts
        self.started = time.time()
        self._stop = threading.Event()
        self._done = threading.Event()
        self.thread: threading.Thread | None = None
        self.model = None  # the model being trained, once loaded (PeftModel with LoRA)
        self.tokenizer = None
        self.checkpoint: str | None = None  # the checkpoint a resumed run continues from
        self.metrics_log: MetricsLog | None = None  # the run's metrics file while it trains (the writer only)
        self.lock: TrainingLock | None = None  # the run directory's training lock, held until the run ends (writer)
        self.held_out: HeldOut | None = None  # the prompts it never trains on (samples, probe), once checked
        self.preflight: Preflight | None = None  # what checking the run loaded, for training to use
        self.phase: str | None = "loading the model and data"  # what it is doing now, besides training steps

    # --- following the run -------------------------------------------------------------
    @property
    def status(self) -> dict:
        """State, steps done of total, seconds elapsed, ETA and the error if it failed; once training has
        started, ``world_size`` (processes training together) and ``global_batch_size`` (examples per step).
        ``phase`` names what a running run is doing besides its training steps (:meth:`set_phase`), else None.

        The ETA is :func:`alignlab.eta.pace`'s, the one both UIs show: the pace between the first and the
        last logged step (model loading not counted) times the steps still to go.
        """
        history = self.history
        step = history[-1]["step"] if history else 0
        elapsed = time.time() - self.started
        eta = pace(rows_from_events(history), self.total_steps)[1] if self.state == "running" else 0.0
        return {"run_id": self.run_id, "state": self.state, "step": step, "total_steps": self.total_steps,
                "elapsed_s": round(elapsed, 1), "eta_s": None if eta is None else round(eta, 1), "error": self.error,
                "phase": self.phase if self.state == "running" else None, **self.batch_layout}

    @property
    def history(self) -> list[dict]:
        """Events so far: ``{"run_id", "step", "time", "metrics"}``."""
        return list(self.bus.history)

    def record(self, step: int, metrics: dict) -> dict:
        """Log one step's metrics: append them to the run's metrics file, then publish the event on the bus.

        The training callbacks call this themselves (:class:`alignlab.training.EventCallback`, the probe),
        so the file is written in the training loop, not by a bus subscriber: a failed write (a full disk,
        a removed folder) raises there and the run fails, saying why. Returns the event.
        """
        event = {"run_id": self.run_id, "step": step, "time": round(time.time(), 3), "metrics": metrics}
        if self.metrics_log is not None:
            self.metrics_log.write(event)
        self.bus.publish(event)
        return event

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

    # --- what training reports (see alignlab.run_contract.TrainingRun) -----------------------------------
    def training_started(self, total_steps: int, batch_layout: dict) -> None:
        """The trainer starts: how many steps, and the batch layout (world_size, global_batch_size) that the
        status shows from now on; the status is saved."""
        self.total_steps, self.batch_layout = total_steps, dict(batch_layout)
        self.save_status()

    def save_status(self) -> None:
        """Write :attr:`status` to the run directory (only the process that writes it does)."""
        if self.is_writer:
            write_status(self.run_dir, self.status)

    def set_phase(self, phase: str | None) -> None:
        """Name what the run is doing now besides training steps (None: training steps); the status is saved."""
        self.phase = phase
        self.save_status()

    def live_model(self, model: Any, tokenizer: Any) -> None:
        """Offer the model being trained and its tokenizer to a chat during training (:mod:`alignlab.chat`)."""
        self.model, self.tokenizer = model, tokenizer

    # --- internal ------------------------------------------------------------------------

    def _finish(self, state: str, error: str | None = None, details: str = "") -> None:
        """Record how the run ended (its traceback in ``details``) and mark it done, whatever cannot be written:
        a status that cannot be saved (a full disk, a read-only folder) fails the run here, and the status
        file, still saying running, reads as failed once this process has exited (see rundir.read_run)."""
        self.state, self.error, self.details = state, error, details
        try:
            self.save_status()
        except Exception as write_failure:  # noqa: BLE001 - whatever happens, nobody may wait forever
            self.state = "failed"
            self.error = f"{error}; then {write_failure}" if error and error != str(write_failure) else (
                error or str(write_failure))
        try:
            if details and self.is_writer:
                write_error(self.run_dir, details)
        except OSError:
            pass  # the status above says what failed; the traceback is a bonus
        finally:
            self._done.set()


def preflight(config: RunConfig, held_out: HeldOut | None = None) -> Preflight:
    """Check the experiment tracker's package, every data row, the held-out prompts (``held_out``, the ones a
    resumed run recorded; else chosen now, see :mod:`alignlab.held_out`) and that rows are left to train on
    without them, the reward source and the model name before anything is written; then, with the model's
    tokenizer, that the prompts leave room in max_length (online methods' rows are prompts only). Returns what it
    loaded (held-out prompts, the rows left to train on, the reward source, the tokenizer), which training uses
    instead of loading it again. The tracker is checked here, not in RunConfig: a run that reported to one still
    opens (chat, eval) where its package is not installed."""

    check_tracker(config.report_to)
    rows = load_rows(config.dataset, config.spec.data_format, config.method)
    held_out = held_out or choose_held_out(config)
    kept = training_rows(rows, held_out)
    held_out.left_out_rows = len(rows) - len(kept)
    checked = Preflight(held_out=held_out, rows=kept, reward=reward_for(config))
    resolve_model(config.model)
    devices.of_run(config)  # a dtype, attention or 4-bit choice this machine cannot run is refused now
    if config.lora:  # a layer name peft would not find fails here, before a run folder exists
        check_lora_targets(config.model, config.lora_target_modules, config.spec.model_kind, config.trust_remote_code)
    if config.spec.data_format != "prompt":
        checked.tokenizer = _tokenizer(config)
        check_prompt_lengths(dataset_label(config.dataset), kept, checked.tokenizer, config.max_length)
    return checked


def _tokenizer(config: RunConfig):
    try:
        return load_tokenizer(config.model, config.trust_remote_code)
    except Exception as error:  # noqa: BLE001 - a model folder without a usable tokenizer is bad input
        reason = (str(error).splitlines() or [""])[0]
        raise AlignLabError(f"model: cannot load the tokenizer of {config.model!r} ({type(error).__name__}: "
                            f"{reason}), expected a model with a tokenizer") from None


def start(config: RunConfig, background: bool = True, run_id: str | None = None,
          is_writer: bool = True) -> RunHandle:
    """Validate, create the run directory and train (in a background thread by default).

    ``run_id`` names the run directory (a safe label, see :func:`alignlab.rundir.check_run_id`; by
    default time, method and ``run_name``). Raises AlignLabError for bad input, or an id already
    taken, before any run directory exists.
    """
    if not isinstance(config, RunConfig):
        raise AlignLabError(f"config: got {type(config).__name__}, expected RunConfig")
    config.revalidate()  # a field may have been changed since the config was made (and checked)
    run_id = check_run_id(run_id) if run_id is not None else new_run_id(config.method, config.run_name)
    run_dir = run_path(config.output_dir, run_id)  # inside output_dir, whatever the id (or a symlink) says
    if is_writer:
        check_output_dir(config.output_dir)
        check_free(run_dir)
    checked = preflight(config)  # every process of a multi-process run chooses the same held-out prompts (seeded)
    handle = RunHandle(config, run_id, run_dir, is_writer=is_writer)
    handle.held_out, handle.preflight = checked.held_out, checked
    if is_writer:
        dataset = config.dataset
        if is_dataset_object(dataset):  # the run keeps a copy, and its config names that folder
            config.dataset = str(dataset_dir(run_dir))
        create(run_dir, {"run_id": run_id, **config.to_dict()})
        try:
            handle.lock = lock_training(run_dir)
            if is_dataset_object(dataset):
                keep_in_run(dataset, run_dir)
            record_held_out(run_dir, checked.held_out)
            handle.save_status()
        except (AlignLabError, OSError):  # a full disk: no run that never started is left behind
            if handle.lock is not None:
                handle.lock.release()
            delete_run(run_dir)
            config.dataset = dataset
            raise
    _launch(handle, background)
    return handle


def resume_point(run_dir: str | Path, check_state: bool = True, locked: bool = False) -> tuple[RunConfig, Path, int]:
    """The config a run started with, and the checkpoint it would resume from with that checkpoint's step.

    Raises AlignLabError in one line when it cannot be resumed: its method cannot resume, it has no
    checkpoint yet, or (``check_state``) it is still training (another process holds its training lock, or its
    status names a live process) or has finished. ``locked``: the caller holds the training lock itself.
    """
    run_dir = Path(run_dir)
    config = config_of(run_dir)
    if not config.spec.resumable:
        raise AlignLabError(f"resume: {run_dir.name} is a {config.method} run, and {config.spec.title} cannot resume "
                            "from a checkpoint (TRL's trainer for it has a training loop of its own); start a new run")
    if check_state and not locked and is_locked(run_dir):
        raise AlignLabError(f"resume: run {run_dir.name} is being trained by another process; wait for it to end or "
                            "stop it")
    status = read_status(run_dir)
    if check_state and status.get("state") == "running" and not owner_is_gone(status):
        raise AlignLabError(f"resume: {run_dir.name} is still training (pid {status.get('pid')} on "
                            f"{status.get('host')}); stop it first")
    if check_state and status.get("state") == "finished":
        raise AlignLabError(f"resume: {run_dir.name} already finished all its steps; start a new run to train more")
    found = latest_checkpoint(run_dir)
    if found is None:
        raise AlignLabError(f"resume: {run_dir.name} has no checkpoint to continue from (a run saves one every "
                            "save_every steps and when it is stopped); start a new run")
    damaged = damaged_checkpoint_file(found[0])
    if damaged is not None:  # refused before the run changes: a stopped run stays stopped
        raise AlignLabError(f"resume: {run_dir.name}'s checkpoint file {found[0].name}/{damaged[0]} is damaged "
                            f"({damaged[1]}); the run is left as it was; delete {found[0]} to resume from an "
                            "earlier checkpoint, or start a new run")
    return config, *found


def resume(run: str | Path, runs_dir: str | Path | None = None, background: bool = True,
           is_writer: bool = True) -> RunHandle:
    """Continue a stopped, failed or killed run from its last checkpoint, in its own run directory.

    ``run`` is a run directory or the id of a run in ``runs_dir`` (the lab's runs folder when None:
    :func:`alignlab.rundir.default_runs_dir`). The run keeps its config, its step
    count and its optimizer, scheduler and data position (TRL's Trainer restores them from the
    checkpoint). Metric rows and probe samples of steps after the checkpoint are dropped first, so each
    step is logged once; the rows kept are the handle's history from the start. Raises AlignLabError
    (see :func:`resume_point`) before anything in the run directory changes, also when another process (or
    another handle here) trains the run now: it holds the run's training lock.
    """
    run_dir = find(run, runs_dir)
    resume_point(run_dir, check_state=is_writer)  # what cannot resume is refused before the lock file is made
    lock = lock_training(run_dir, "resume") if is_writer else None
    try:
        config, checkpoint, step = resume_point(run_dir, check_state=is_writer, locked=True)  # again, now locked
        checked = preflight(config, held_out_of_run(run_dir, config))  # the prompts it held out from the start
        handle = RunHandle(config, run_dir.name, run_dir, is_writer=is_writer)
        handle.held_out, handle.preflight = checked.held_out, checked
        handle.checkpoint = str(checkpoint)
        handle.lock = lock
        if is_writer:
            handle.bus.history.extend({"run_id": handle.run_id, "step": row["step"], "time": row.get("time"),
                                       "metrics": {k: v for k, v in row.items() if k not in ("step", "time")}}
                                      for row in rewind(run_dir, step))
            handle.save_status()
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    _launch(handle, background)
    return handle


def launched_processes() -> tuple[int, int]:
    """How many processes a launcher (``accelerate launch``, ``torchrun``) started to train together, and this one's
    rank: ``(1, 0)`` outside such a launch."""
    return int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))


def train_distributed(config: RunConfig | None = None, run_id: str | None = None, resume_run: str | Path | None = None,
                      runs_dir: str | Path | None = None) -> RunHandle:
    """Train here, until the run ends, as one process of a multi-process launch (see :func:`launched_processes`):
    every process trains; process 0 picks the run id (``run_id`` or a new one, sent to the others) and is the only
    one that writes the run directory. ``resume_run``: continue that run (an id in ``runs_dir`` or a run directory)
    instead of starting ``config``. Every process returns its own handle: one whose run failed says why in its
    ``error``, the same in each process."""
    from accelerate import PartialState
    from accelerate.utils import broadcast_object_list

    state = PartialState()  # joins the launch's process group
    _, rank = launched_processes()
    try:
        if resume_run is not None:
            return resume(resume_run, runs_dir, background=False, is_writer=rank == 0)
        if config is None:
            raise AlignLabError("config: got None, expected a RunConfig (or a run to resume)")
        holder = [(run_id or new_run_id(config.method, config.run_name)) if rank == 0 else None]
        broadcast_object_list(holder, from_process=0)
        return start(config, background=False, run_id=holder[0], is_writer=rank == 0)
    finally:
        # Leave the group while the interpreter is whole: a gloo group left to the interpreter's exit can abort
        # the process (SIGABRT) when its worker threads free their tensors after Python is gone. Leaving it needs
        # no other process, so one that ends first (the others, while process 0 samples) does not wait.
        state.destroy_process_group()


def _launch(handle: RunHandle, background: bool) -> None:
    """Train the run in a background thread, or here until it ends."""
    if background:
        handle.thread = threading.Thread(target=_run, args=(handle,), name=f"alignlab-{handle.run_id}", daemon=True)
        handle.thread.start()
    else:
        _run(handle)


def _run(handle: RunHandle) -> None:
    from alignlab.training import train

    try:
        if handle.is_writer:  # written by the training callbacks through handle.record, never by a subscriber
            handle.metrics_log = MetricsLog(handle.run_dir)
        train(handle)
        handle._finish("stopped" if handle.stop_requested else "finished")
    except BaseException as error:  # noqa: BLE001 - every failure must be recorded
        message = str(error) if isinstance(error, AlignLabError) else f"{type(error).__name__}: {error}"
        handle._finish("failed", message, details=traceback.format_exc())
    finally:
        if handle.metrics_log is not None:
            try:
                handle.metrics_log.close()
            except OSError:
                pass  # its last line could not be flushed (a full disk): the run has already failed saying so
        if handle.lock is not None:
            handle.lock.release()

