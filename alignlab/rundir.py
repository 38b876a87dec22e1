"""The run directory: its layout, and the one module that reads and writes the files in it.

Every run lives in ``<output_dir>/<run_id>/``::

    config.json          the RunConfig the run started with, plus its run_id (written once)
    status.json          state (running, finished, stopped or failed), step, total steps, elapsed
                         seconds, ETA, the error when it failed, and the pid and host of the process
                         training it (rewritten as the run goes)
    metrics.jsonl        one JSON object a line: step, time and the metric keys, TRL's names kept
                         plus the probe's probe/...; appended and flushed line by line
    probe_samples.jsonl  the probe's completions, one a line, each tagged with its step
    held_out.json        the prompts the run holds out (never trained on) and where they come from, chosen
                         when it starts (see :mod:`alignlab.held_out`); what samples, probe and eval read
    samples.jsonl        reference vs aligned completions on held-out prompts, with their rewards
                         (written when the run ends)
    eval.json            the run's last ``alignlab eval``: reward gain ± paired s.e., win-rate, fluency
    error.log            the traceback, when the run failed
    model/               the trained LoRA adapter (peft's adapter_config.json) or full model, the
                         tokenizer, and the model card README.md (see :mod:`alignlab.model_card`)
    model.partial/       the model while it is being saved; renamed to model/ once complete, so a
                         half-written model (a full disk, a crash) is never taken for one
    checkpoints/         TRL's output_dir: checkpoint-N/ folders (weights, optimizer, scheduler, RNG and
                         trainer state), saved every save_every steps and when the run is stopped, the
                         last keep_checkpoints kept; what ``train --resume`` continues from; removed
                         when the run finishes
    snapshots/step-N/    models saved along the way, by experiments that ask for them
    logs/                what the run's experiment tracker writes locally (report_to tensorboard: TensorBoard's
                         event files); kept when the checkpoints are removed
    training.lock        locked (fcntl.flock) by the process training the run, for as long as it trains: a
                         second start or resume of the run is refused at once (see :func:`lock_training`)

Where ``<output_dir>`` is when none is named (:func:`default_runs_dir`): the folder ``$ALIGNLAB_RUNS`` names, else
``runs/`` at the root of the project the lab is used from (the nearest folder at or above the working one that holds
a ``pyproject.toml``: a checkout's root, so a notebook in ``notebooks/`` and the app started at the root share one
run list), else ``runs/`` in the working folder. The CLI, the app and the notebook all ask it.

Beside the runs, ``<output_dir>/_votes/<name>.jsonl`` holds the blind votes people cast in the chats on
run ``<name>`` (one JSON line a vote, see :mod:`alignlab.votes`); ``_votes`` can never be a run id.

The engine writes these files; the CLI, the notebook widgets and the Gradio app read them, often
from another process or a later session. So each name is spelled once, here, together with the
rules that make reading a run that is still being written safe: JSON files are replaced atomically
(temp file + ``os.replace``), so a reader never sees half of one, and metrics are read from a byte
offset, a last line still being written being left for the next read. A file damaged anyway (by hand, a
full disk, a copy cut short) never breaks a listing: that run reads as state ``unreadable``, naming the file
(:func:`read_run`). Run ids and ``run_name`` labels are safe names, and a run directory is always inside its
output folder (:func:`run_path`).

This module knows files, not training: it imports nothing of alignlab but :mod:`alignlab.errors`
(:func:`alignlab.config.config_of` turns :func:`read_config` into a RunConfig).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alignlab.errors import AlignLabError
from alignlab.methods.base import headline_of
from alignlab.metrics import HEADLINE

CONFIG = "config.json"
STATUS = "status.json"
METRICS = "metrics.jsonl"
PROBE_SAMPLES = "probe_samples.jsonl"
SAMPLES = "samples.jsonl"
ERROR_LOG = "error.log"
MODEL = "model"
MODEL_PARTIAL = "model.partial"  # the model being saved (see saving_model)
MODEL_REPLACED = "model.replaced"  # an earlier model/ for the moment its successor takes its place
CHECKPOINTS = "checkpoints"
CHECKPOINT_PREFIX = "checkpoint-"  # transformers' name of each checkpoint folder: checkpoint-<global step>
TRAINER_STATE = "trainer_state.json"  # transformers writes it last: a checkpoint without it is incomplete
SNAPSHOTS = "snapshots"
LOGS = "logs"  # the experiment tracker's local files (see alignlab.tracking)
TRAINING_LOCK = "training.lock"  # locked by the process training the run (see lock_training); never removed
ADAPTER_CONFIG = "adapter_config.json"  # peft's file: the model folder holds an adapter, not a full model
MODEL_CARD = "README.md"  # the model card in a model folder (and in its exports), front matter first
TRAINING_ARGS = "training_args.bin"  # TRL's pickled trainer settings in a model folder: left out of exports
EVAL = "eval.json"
DATASET = "dataset"  # an in-memory datasets.Dataset a run was given, kept with save_to_disk
TRAINED_ON = "trained_on.json"  # what the run trained on: source, fingerprints, row count (see write_trained_on)
RUNS = "runs"  # the runs folder's name at the project's root (see default_runs_dir)
RUNS_ENV = "ALIGNLAB_RUNS"  # the environment variable that names the runs folder instead
PROJECT_MARKER = "pyproject.toml"  # the file at a project's root
RUNS_WHERE = f"{RUNS}/ at the project's root, or the folder ${RUNS_ENV} names"  # default_runs_dir, in a help text
HELD_OUT = "held_out.json"
VOTES = "_votes"  # beside the runs: one votes file per run, <run id>.jsonl (not a run id: it starts with "_")
VOTES_SUFFIX = ".jsonl"

MAX_RUN_ID = 128
MAX_RUN_NAME = 64  # a run_name label goes into the run id, with time, method and random digits
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
LOCK_PROBE_S = 0.3  # how long lock_training tries before it refuses (is_locked holds the lock for an instant)
UNREADABLE = "unreadable"  # the state a run lists with when one of its files cannot be read (see read_run)


# --- naming ------------------------------------------------------------------------------------
def new_run_id(method: str, label: str = "") -> str:
    """A fresh run id: time, method, optional label, 4 random hex digits (``20250101-120000-dpo-ab12``).

    >>> check_run_id(new_run_id("dpo", "my first run")).endswith(tuple("0123456789abcdef"))
    True
    """
    label = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-.")[:64]
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{method}{'-' + label if label else ''}-{secrets.token_hex(2)}"


def check_run_id(run_id: str, field: str = "run_id", max_length: int = MAX_RUN_ID) -> str:
    """``run_id`` if it is a safe directory name (letters, digits, ``_ . -``; starts with a letter or
    digit; at most ``max_length`` characters), else AlignLabError naming ``field`` in one line (a long
    value is shown cut short). RunConfig checks its ``run_name`` label with it too.

    >>> check_run_id("../etc")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    alignlab.errors.AlignLabError: run_id: got '../etc', expected letters, digits, '_', '.' or '-', starting with
        a letter or digit, at most 128 characters
    >>> check_run_id("a" * 300, "run_name", 64)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    alignlab.errors.AlignLabError: run_name: got 'aaaa...' (300 characters), expected letters, ...
    """
    if not isinstance(run_id, str) or len(run_id) > max_length or not RUN_ID.fullmatch(run_id):
        raise AlignLabError(f"{field}: got {_shown(run_id)}, expected letters, digits, '_', '.' or '-', starting "
                            f"with a letter or digit, at most {max_length} characters")
    return run_id


def _shown(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut short, so an error naming a 300-character value stays one readable line."""
    text = repr(value)
    if len(text) <= limit:
        return text
    if isinstance(value, str):
        return f"{text[:limit - 4]}...{text[0]} ({len(value)} characters)"
    return text[:limit - 3] + "..."


def run_path(output_dir: str | Path, run_id: str) -> Path:
    """The directory of run ``run_id`` in ``output_dir``: AlignLabError unless ``run_id`` is a safe name
    (:func:`check_run_id`) and the directory, resolved (symlinks followed), lies inside ``output_dir``."""
    root = Path(output_dir).expanduser()
    run_dir = root / check_run_id(run_id)
    try:
        inside = run_dir.resolve().parent == root.resolve()
    except (OSError, RuntimeError, ValueError) as error:
        raise AlignLabError(f"output_dir: cannot resolve {str(run_dir)!r} ({error})") from None
    if not inside:
        raise AlignLabError(f"run_id: {run_id!r} leads outside the output folder {str(root)!r} (a symlink?)")
    return run_dir


def check_output_dir(output_dir: str | Path, create: bool = False) -> Path:
    """``output_dir`` as a Path if it is, or can become, a folder this process can write in; else
    AlignLabError naming output_dir (a regular file, a read-only or pseudo file system such as /proc).

    Nothing is left behind unless ``create``, which makes the folder: the check writes and removes a
    temporary file in the folder, or in its nearest existing parent when the folder does not exist yet.
    """
    text = str(output_dir)
    if not text.strip() or "\x00" in text:
        raise AlignLabError(f"output_dir: got {_shown(text)}, expected a folder path")
    path = Path(output_dir).expanduser()
    existing = path
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        what = "is" if existing == path else f"cannot be made: {str(existing)!r} is"
        raise AlignLabError(f"output_dir: {text!r} {what} a file, not a folder")
    try:
        if create:
            path.mkdir(parents=True, exist_ok=True)
            existing = path
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as error:
        raise AlignLabError(f"output_dir: cannot write in {str(existing)!r} ({error.strerror or error})") from None
    return path


def is_run_dir(path: str | Path) -> bool:
    """True when ``path`` is a run directory (it holds a config file)."""
    return (Path(path) / CONFIG).is_file()


def enclosing_run_dir(path: str | Path) -> Path | None:
    """The run directory that ``path`` is, or lies inside (symlinks followed), or None when it is in no run."""
    for folder in (Path(path).expanduser().resolve(), *Path(path).expanduser().resolve().parents):
        if is_run_dir(folder):
            return folder
    return None


def model_dir(run_dir: str | Path) -> Path:
    """The folder a run saves its trained adapter or model (and tokenizer) in."""
    return Path(run_dir) / MODEL


def has_model(run_dir: str | Path) -> bool:
    """True once the run has saved a model (at its end, or when it was stopped)."""
    return model_dir(run_dir).is_dir()


def has_adapter(run_dir: str | Path) -> bool:
    """True when the saved model is a LoRA adapter (loaded on top of the base model), not a full model."""
    return (model_dir(run_dir) / ADAPTER_CONFIG).is_file()


@contextmanager
def saving_model(run_dir: str | Path, writer: bool = True) -> Iterator[Path]:
    """A fresh folder to save the trained model and tokenizer in, renamed to ``model/`` (replacing an earlier
    one) once the block completes and removed if it fails: a half-written model (a full disk, a read-only
    folder) is never presented as one, and the space it took is free for the status that says why.

    A failure raises AlignLabError in one line. ``writer=False`` (another process of a multi-process run,
    which only joins in gathering the weights) gets the same folder and changes nothing.
    """
    run_dir = Path(run_dir)
    partial, model, replaced = run_dir / MODEL_PARTIAL, model_dir(run_dir), run_dir / MODEL_REPLACED
    if not writer:
        yield partial
        return
    try:
        shutil.rmtree(partial, ignore_errors=True)  # left by a save that died
        partial.mkdir(exist_ok=True)
        yield partial
        if model.exists():
            shutil.rmtree(replaced, ignore_errors=True)
            os.replace(model, replaced)
        os.replace(partial, model)
        shutil.rmtree(replaced, ignore_errors=True)
    except Exception as error:  # tokenizers reports a full disk as a bare Exception
        shutil.rmtree(partial, ignore_errors=True)
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise AlignLabError(f"output_dir: cannot save the model in {str(partial)!r} ({reason})") from error
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def checkpoints_dir(run_dir: str | Path) -> Path:
    """TRL's ``output_dir`` for the run: the checkpoints a stopped, failed or killed run resumes from."""
    return Path(run_dir) / CHECKPOINTS


def latest_checkpoint(run_dir: str | Path) -> tuple[Path, int] | None:
    """The run's newest complete checkpoint and its step, or None when it has none.

    A checkpoint being written when the process died lacks its trainer state (written last) and is skipped.
    """
    found = []
    for path in checkpoints_dir(run_dir).glob(CHECKPOINT_PREFIX + "*"):
        step = path.name[len(CHECKPOINT_PREFIX):]
        if step.isdigit() and (path / TRAINER_STATE).is_file():
            found.append((int(step), path))
    if not found:
        return None
    step, path = max(found)
    return path, step


def damaged_checkpoint_file(checkpoint: str | Path) -> tuple[str, str] | None:
    """(name, what is wrong) of the first file of ``checkpoint`` that cannot be read as what it holds, or None when
    each one reads: JSON files parse, a ``.safetensors`` file is as long as its header says, a torch file
    (``.pt``, ``.pth``, ``.bin``) is a whole zip archive whose every member matches its checksum. Cheap next to
    loading them: nothing is deserialised."""
    for path in sorted(Path(checkpoint).iterdir()):
        try:
            problem = _file_problem(path)
        except OSError as error:
            problem = error.strerror or type(error).__name__
        if problem:
            return path.name, problem
    return None


def _file_problem(path: Path) -> str | None:
    """What is wrong with one checkpoint file (see :func:`damaged_checkpoint_file`), or None."""
    import zipfile

    if path.suffix == ".json":
        try:
            _decode(path.read_bytes())
        except ValueError as error:
            return str(error)
    elif path.suffix == ".safetensors":
        with open(path, "rb") as handle:
            size = int.from_bytes(handle.read(8), "little")
            try:
                header = _decode(handle.read(size)) if 0 < size <= path.stat().st_size else None
            except ValueError:
                header = None
        if not isinstance(header, dict):
            return "not a safetensors file (its header cannot be read; truncated or overwritten?)"
        ends = [entry["data_offsets"][1] for entry in header.values() if isinstance(entry, dict)
                and "data_offsets" in entry]
        if path.stat().st_size < 8 + size + max(ends, default=0):
            return "shorter than its header says (truncated?)"
    elif path.suffix in (".pt", ".pth", ".bin"):
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, EOFError, ValueError) as error:
            return f"not a whole torch file ({error})"
        if bad is not None:
            return f"its member {bad} fails its checksum"
    return None


def snapshot_dir(run_dir: str | Path, step: int) -> Path:
    """Where a model saved at ``step`` during the run goes."""
    return Path(run_dir) / SNAPSHOTS / f"step-{step}"


def logs_dir(run_dir: str | Path) -> Path:
    """Where the run's experiment tracker writes its local files (TensorBoard's event files)."""
    return Path(run_dir) / LOGS


def votes_path(output_dir: str | Path, name: str) -> Path:
    """The votes file ``name`` (a run id, or another safe name) of the runs folder ``output_dir``; AlignLabError
    for a name that is not a safe file name (:func:`check_run_id`)."""
    return Path(output_dir).expanduser() / VOTES / (check_run_id(name, "votes") + VOTES_SUFFIX)


def votes_names(output_dir: str | Path) -> list[str]:
    """The names of the votes files in the runs folder ``output_dir``, sorted ([] before the first vote)."""
    folder = Path(output_dir).expanduser() / VOTES
    return sorted(path.name[:-len(VOTES_SUFFIX)] for path in folder.glob("*" + VOTES_SUFFIX)) if folder.is_dir() \
        else []


# --- writing -----------------------------------------------------------------------------------
def check_free(run_dir: str | Path) -> None:
    """AlignLabError if ``run_dir`` already exists (a run never writes into another's directory)."""
    run_dir = Path(run_dir)
    if run_dir.exists():
        raise AlignLabError(f"run_id: {run_dir.name!r} already exists in {run_dir.parent}; choose another id")


def create(run_dir: str | Path, config: dict) -> Path:
    """Make the run directory and write its config; AlignLabError if the directory exists, or cannot be
    made or written (naming output_dir; nothing is left behind then)."""
    run_dir = Path(run_dir)
    try:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        run_dir.mkdir()
    except FileExistsError:
        check_free(run_dir)
        raise AlignLabError(f"output_dir: {str(run_dir.parent)!r} is not a folder") from None
    except OSError as error:
        raise AlignLabError(f"output_dir: cannot make {str(run_dir)!r} ({error.strerror or error})") from None
    try:
        _write_json(run_dir / CONFIG, config)
    except OSError as error:
        shutil.rmtree(run_dir, ignore_errors=True)
        raise AlignLabError(f"output_dir: cannot write in {str(run_dir)!r} ({error.strerror or error})") from None
    return run_dir


class TrainingLock:
    """The lock a process holds on a run directory while it trains the run (:func:`lock_training`).

    An OS-level lock (``fcntl.flock`` on the run's :data:`TRAINING_LOCK` file), not a pid in a file: the
    operating system releases it when the process ends however it ends (killed included), and two trainers of
    one run, in two processes or two threads of one, can never both hold it.
    """

    def __init__(self, run_dir: Path, handle) -> None:
        self.run_dir = run_dir
        self._handle = handle

    def release(self) -> None:
        """Let another process train the run (closing the file releases the lock); a second call does nothing."""
        if not self._handle.closed:
            self._handle.close()


def lock_training(run_dir: str | Path, field: str = "run") -> TrainingLock:
    """Take the run's training lock for this trainer, without waiting: AlignLabError in one line, naming ``field``,
    when another process (or another run handle of this one) trains the run now, or when the lock file cannot be
    written. The lock file is left in place when released: removing it would let two trainers lock two files."""
    run_dir = Path(run_dir)
    path = run_dir / TRAINING_LOCK
    try:
        handle = open(path, "ab")
    except OSError as error:
        raise _cannot_write(path, error) from error
    deadline = time.monotonic() + LOCK_PROBE_S
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return TrainingLock(run_dir, handle)
        except BlockingIOError:
            if time.monotonic() < deadline:  # perhaps only is_locked looking, for an instant
                time.sleep(LOCK_PROBE_S / 10)
                continue
            handle.close()
            raise AlignLabError(f"{field}: run {run_dir.name} is being trained by another process; wait for it to "
                                "end or stop it") from None
        except OSError as error:  # a file system without locks
            handle.close()
            raise AlignLabError(f"output_dir: cannot lock {str(path)!r} ({error.strerror or error})") from None


def is_locked(run_dir: str | Path) -> bool:
    """True while a process holds the run's training lock (:func:`lock_training`); the lock is not taken."""
    path = Path(run_dir) / TRAINING_LOCK
    try:
        with open(path, "rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:  # no lock file: never trained with one
        return False
    return False


def write_status(run_dir: str | Path, status: dict) -> None:
    """Replace the run's status atomically, stamping the time and this process's pid and host
    (see :func:`owner_is_gone`); AlignLabError in one line if it cannot be written (a full disk)."""
    path = Path(run_dir) / STATUS
    try:
        _write_json(path, {**status, "updated": time.time(), "pid": os.getpid(), "host": socket.gethostname()})
    except OSError as error:
        raise _cannot_write(path, error) from error


def write_error(run_dir: str | Path, text: str) -> None:
    """Keep the traceback of a failed run (none, rather than part of one, if it cannot be written)."""
    path = Path(run_dir) / ERROR_LOG
    try:
        path.write_text(text, encoding="utf-8")
    except OSError:
        path.unlink(missing_ok=True)
        raise


def write_samples(run_dir: str | Path, rows: Iterable[dict]) -> None:
    """Write the reference-vs-aligned samples (``prompt``, ``reference``, ``aligned``, ``reference_reward``,
    ``aligned_reward``), replacing any earlier ones; AlignLabError in one line if they cannot be written."""
    _write_lines(Path(run_dir) / SAMPLES, rows, mode="w")


def append_probe_samples(run_dir: str | Path, step: int, samples: Iterable[dict]) -> None:
    """Append the completions the probe scored at ``step``; AlignLabError in one line if they cannot be written."""
    _write_lines(Path(run_dir) / PROBE_SAMPLES, ({"step": step, **sample} for sample in samples), mode="a")


def rewind(run_dir: str | Path, step: int) -> list[dict]:
    """Make a run ready to continue after ``step`` (the step of the checkpoint it resumes from): drop the
    metric rows and probe samples of later steps, which the resumed run logs again, and the traceback of the
    failure it resumes from. Returns the metric rows kept. Each file is replaced atomically."""
    run_dir = Path(run_dir)
    _keep_rows_through(run_dir / PROBE_SAMPLES, step)
    (run_dir / ERROR_LOG).unlink(missing_ok=True)
    return _keep_rows_through(run_dir / METRICS, step)


def remove_checkpoints(run_dir: str | Path) -> None:
    """Delete the run's checkpoints (a finished run has nothing left to resume)."""
    shutil.rmtree(checkpoints_dir(run_dir), ignore_errors=True)


def _keep_rows_through(path: Path, step: int) -> list[dict]:
    """Keep the lines of a JSONL file whose ``step`` is at most ``step`` (unreadable ones and a last line cut
    short by a kill go too); returns the rows kept."""
    if not path.exists():
        return []
    rows, lines = [], []
    for line in path.read_bytes().splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), (int, float)) and row["step"] <= step:
            rows.append(row)
            lines.append(line + b"\n")
    temp = path.with_name(path.name + ".tmp")
    temp.write_bytes(b"".join(lines))
    os.replace(temp, path)
    return rows


class MetricsLog:
    """Appends metric events ``{"step", "time", "metrics"}`` to a run, one flushed JSON line each; a failed
    write (a full disk) raises AlignLabError in one line, naming the file."""

    def __init__(self, run_dir: str | Path) -> None:
        self._path = Path(run_dir) / METRICS
        try:
            self._handle = open(self._path, "a", encoding="utf-8")
        except OSError as error:
            raise _cannot_write(self._path, error) from error
        self._lock = threading.Lock()

    def write(self, event: dict) -> None:
        """Append one event as ``{"step", "time", <metric>: value, ...}``."""
        line = json.dumps({"step": event["step"], "time": event["time"], **event["metrics"]}, default=_jsonable)
        with self._lock:
            try:
                self._handle.write(line + "\n")
                self._handle.flush()
            except OSError as error:
                raise _cannot_write(self._path, error) from error

    def close(self) -> None:
        """Close the file (later writes fail)."""
        with self._lock:
            self._handle.close()


def _jsonable(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _write_json(path: Path, value: Any) -> None:
    """Write JSON atomically (temp file + rename) so a reader never sees half a file."""
    temp = path.with_name(path.name + ".tmp")
    try:
        temp.write_text(json.dumps(value, indent=1, default=_jsonable), encoding="utf-8")
        os.replace(temp, path)
    except OSError:
        temp.unlink(missing_ok=True)  # no litter, and on a full disk the space it took is free again
        raise


def _write_lines(path: Path, rows: Iterable[dict], mode: str) -> None:
    try:
        with open(path, mode, encoding="utf-8") as out:
            out.writelines(json.dumps(row, default=_jsonable) + "\n" for row in rows)
    except OSError as error:
        raise _cannot_write(path, error) from error


def _cannot_write(path: Path, error: OSError) -> AlignLabError:
    """The one-line error for a run file that could not be written (a full disk, a read-only folder)."""
    return AlignLabError(f"output_dir: cannot write {str(path)!r} ({error.strerror or error})")


# --- reading -----------------------------------------------------------------------------------
class UnreadableRunFile(AlignLabError):
    """A file of a run directory that cannot be read as what it should hold (truncated, empty, binary, or
    JSON of the wrong type); ``file`` is its name in the run directory (``status.json``)."""

    def __init__(self, run_dir: str | Path, file: str, problem: str):
        self.file = file
        self.problem = problem
        super().__init__(f"run: {Path(run_dir).name}/{file} is unreadable: {problem}")


# The types the readers rely on, of the fields a config or status may hold (absent is fine; None too
# where a field is optional). A file with another type in one of them is unreadable.
_CONFIG_TYPES = {"run_id": (str,), "method": (str,), "model": (str,), "dataset": (str,), "reward": (str,),
                 "output_dir": (str,), "method_args": (dict,), "trust_remote_code": (bool,)}
_STATUS_TYPES = {"state": (str,), "step": (int,), "total_steps": (int, type(None)), "error": (str, type(None)),
                 "pid": (int, type(None)), "host": (str, type(None)), "elapsed_s": (int, float, type(None)),
                 "eta_s": (int, float, type(None)), "updated": (int, float, type(None)), "world_size": (int,),
                 "global_batch_size": (int,)}


def _decode(data: bytes) -> Any:
    """JSON from bytes; ValueError with a short reason (not UTF-8, not JSON)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text (binary?)") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error.msg}: line {error.lineno} column {error.colno}; "
                         "truncated?)") from None


def _type_problem(value: Any, types: dict[str, tuple]) -> str | None:
    """What is wrong with the type of a JSON object read from a run file, or None."""
    if not isinstance(value, dict):
        return f"holds a JSON {type(value).__name__}, expected an object"
    for key, allowed in types.items():
        if key in value and (not isinstance(value[key], allowed) or (isinstance(value[key], bool)
                                                                     and bool not in allowed)):
            return f"{key} is a {type(value[key]).__name__}, expected {' or '.join(t.__name__ for t in allowed)}"
    return None


def _read_object(run_dir: str | Path, name: str, types: dict[str, tuple]) -> dict:
    """The JSON object in the run file ``name``; UnreadableRunFile when it cannot be read as one."""
    try:
        data = (Path(run_dir) / name).read_bytes()
    except OSError as error:
        raise UnreadableRunFile(run_dir, name, error.strerror or type(error).__name__) from None
    if not data.strip():
        raise UnreadableRunFile(run_dir, name, "empty")
    try:
        value = _decode(data)
    except ValueError as error:
        raise UnreadableRunFile(run_dir, name, str(error)) from None
    problem = _type_problem(value, types)
    if problem:
        raise UnreadableRunFile(run_dir, name, problem)
    return value


def read_config(run_dir: str | Path) -> dict:
    """The run's config as saved: the RunConfig fields and ``run_id``. UnreadableRunFile (an
    AlignLabError naming the file) when it is missing, truncated, binary or of the wrong type."""
    return _read_object(run_dir, CONFIG, _CONFIG_TYPES)


def read_status(run_dir: str | Path, strict: bool = False) -> dict:
    """The run's last status, or {} before the first one is written.

    A status that cannot be read reads as {} too, unless ``strict``: UnreadableRunFile then.
    """
    if not (Path(run_dir) / STATUS).exists():
        return {}
    try:
        return _read_object(run_dir, STATUS, _STATUS_TYPES)
    except UnreadableRunFile:
        if strict:
            raise
        return {}


def _metric_row(line: bytes) -> dict:
    """One metrics line as a row; ValueError saying what is wrong with it."""
    row = _decode(line)
    if not isinstance(row, dict):
        raise ValueError(f"holds a JSON {type(row).__name__}, expected an object")
    if isinstance(row.get("step"), bool) or not isinstance(row.get("step"), int):
        raise ValueError(f"step is {row.get('step')!r}, expected an integer")
    for key, value in row.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ValueError(f"{key} is a {type(value).__name__}, expected a number")
    return row


def read_metrics(run_dir: str | Path, offset: int = 0, strict: bool = False) -> tuple[list[dict], int]:
    """The run's metric rows from byte ``offset``; returns (rows, new offset) for the next call.

    A last line still being written (no newline yet) is left for the next call. A complete line that
    is not a metric row (not JSON, not an object, a value that is not a number) is skipped, unless
    ``strict``: UnreadableRunFile naming the line then.
    """
    path = Path(run_dir) / METRICS
    if not path.exists():
        return [], offset
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError as error:
        if strict:
            raise UnreadableRunFile(run_dir, METRICS, error.strerror or type(error).__name__) from None
        return [], offset
    end = data.rfind(b"\n") + 1
    rows = []
    for number, line in enumerate(data[:end].split(b"\n"), start=1):
        if line.strip():
            try:
                rows.append(_metric_row(line))
            except ValueError as error:
                if strict:
                    where = f"line {number}" if offset == 0 else f"a line after byte {offset}"
                    raise UnreadableRunFile(run_dir, METRICS, f"{where}: {error}") from None
    return rows, offset + end


def read_samples(run_dir: str | Path) -> list[dict]:
    """The run's reference-vs-aligned samples, [] until the run has written them."""
    return _read_lines(Path(run_dir) / SAMPLES)


def read_probe_samples(run_dir: str | Path) -> list[dict]:
    """Every completion the probe scored, each with its ``step``; [] without a probe."""
    return _read_lines(Path(run_dir) / PROBE_SAMPLES)


def samples_summary(run_dir: str | Path) -> dict | None:
    """Mean reward of the reference and the aligned samples and their count, or None without samples. Where samples
    record whether they followed their instruction (``reference_followed``, ``aligned_followed``, see
    :mod:`alignlab.follow`), the share of each that did, as ``reference_follow`` and ``aligned_follow`` (0-1), and
    how many were checked, ``checked``."""
    rows = read_samples(run_dir)
    if not rows:
        return None

    def mean(key: str) -> float | None:
        values = [row.get(key) for row in rows]
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in values):
            return None
        return sum(values) / len(values)

    reference, aligned = mean("reference_reward"), mean("aligned_reward")
    if reference is None or aligned is None:  # a damaged samples file: no summary rather than a wrong one
        return None
    summary = {"reference": reference, "aligned": aligned, "samples": len(rows)}
    checked = [row for row in rows if isinstance(row.get("reference_followed"), bool)
               and isinstance(row.get("aligned_followed"), bool)]
    if checked:
        summary.update(checked=len(checked),
                       reference_follow=sum(row["reference_followed"] for row in checked) / len(checked),
                       aligned_follow=sum(row["aligned_followed"] for row in checked) / len(checked))
    return summary


def _write_record(run_dir: str | Path, name: str, record: dict) -> None:
    """Write the JSON file ``name`` of the run atomically (replacing an earlier one); AlignLabError in one line if it
    cannot be written."""
    path = Path(run_dir) / name
    try:
        _write_json(path, record)
    except OSError as error:
        raise _cannot_write(path, error) from error


def _read_record(run_dir: str | Path, name: str, fields: dict) -> dict | None:
    """The JSON object ``name`` of the run with ``fields`` of the given types, or None when it is missing or
    damaged."""
    if not (Path(run_dir) / name).is_file():
        return None
    try:
        return _read_object(run_dir, name, fields)
    except UnreadableRunFile:
        return None


def write_eval(run_dir: str | Path, result: dict) -> None:
    """Keep the figures of the run's last evaluation (replacing earlier ones, atomically); AlignLabError in one
    line if they cannot be written."""
    _write_record(run_dir, EVAL, result)


def read_eval(run_dir: str | Path) -> dict | None:
    """The figures of the run's last evaluation (:func:`write_eval`), or None when it has none (or a damaged one)."""
    return _read_record(run_dir, EVAL, {"gain": (int, float), "gain_se": (int, float)})


def dataset_dir(run_dir: str | Path) -> Path:
    """Where a run keeps the in-memory dataset it was given (a ``save_to_disk`` folder)."""
    return Path(run_dir) / DATASET


def write_trained_on(run_dir: str | Path, record: dict) -> None:
    """Record what the run trained on (:func:`alignlab.data.trained_on`), atomically; AlignLabError in one line if
    it cannot be written."""
    _write_record(run_dir, TRAINED_ON, record)


def read_trained_on(run_dir: str | Path) -> dict | None:
    """What the run trained on (:func:`write_trained_on`), or None when it has no record (or a damaged one)."""
    return _read_record(run_dir, TRAINED_ON, {"rows": (int,), "sha256": (str,)})


def write_held_out(run_dir: str | Path, held_out: dict) -> None:
    """Record the run's held-out prompts (``prompts`` and where they come from), atomically; AlignLabError in one
    line if they cannot be written."""
    _write_record(run_dir, HELD_OUT, held_out)


def read_held_out(run_dir: str | Path) -> dict | None:
    """The run's recorded held-out prompts (:func:`write_held_out`), or None when it recorded none; UnreadableRunFile
    when the file is damaged (a run whose held-out prompts are unknown is never measured on guessed ones)."""
    if not (Path(run_dir) / HELD_OUT).is_file():
        return None
    recorded = _read_object(run_dir, HELD_OUT, {"prompts": (list,), "kind": (str,), "source": (str,)})
    missing = [key for key in ("prompts", "kind", "source") if not recorded.get(key)]
    if missing:
        raise UnreadableRunFile(run_dir, HELD_OUT, f"it lacks {', '.join(missing)}")
    return recorded


def read_error(run_dir: str | Path, max_bytes: int = 32_000) -> str:
    """The end of the run's traceback (its last ``max_bytes``), "" if it did not fail."""
    try:
        with open(Path(run_dir) / ERROR_LOG, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - max_bytes))
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _read_lines(path: Path) -> list[dict]:
    """The JSON objects of a JSONL file, one a line; lines that are not one (damaged) are left out."""
    try:
        data = path.read_bytes()
    except OSError:
        return []
    rows = []
    for line in data.splitlines():
        try:
            row = _decode(line) if line.strip() else None
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def owner_is_gone(status: dict) -> bool:
    """True when the status names a process on this host that no longer exists (killed mid-run)."""
    pid = status.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0 or status.get("host") != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return False
    return False


def settled_status(run_dir: str | Path, strict: bool = False) -> dict:
    """The run's status (see :func:`read_status`), corrected on disk first when it says running but the
    process training the run is gone (killed, see :func:`owner_is_gone`): the run failed, and status.json
    says so from then on. Listing or opening a run calls this; a status that cannot be rewritten (a
    read-only folder) is still reported as failed."""
    status = read_status(run_dir, strict=strict)
    if status.get("state") == "running" and owner_is_gone(status):
        status = {**status, "state": "failed", "eta_s": None, "updated": time.time(),
                  "error": f"the process training this run (pid {status['pid']}) ended without finishing it "
                           f"(killed?); the weights saved so far, if any, are in {MODEL}/"}
        try:
            _write_json(Path(run_dir) / STATUS, status)
        except OSError:
            pass
    return status


def is_training(run_dir: str | Path) -> bool:
    """True while some process may be training the run: it holds the run's training lock (:func:`is_locked`), or
    the status says running and names a process that still exists (on another host, which cannot be checked, it
    is taken to exist)."""
    if is_locked(run_dir):
        return True
    status = read_status(run_dir)
    return status.get("state") == "running" and bool(status.get("pid")) and not owner_is_gone(status)


def read_run(run_dir: str | Path) -> dict:
    """Summary of a run: id, path, method, model, state, error, steps, last loss, its headline metrics (reward and KL,
    see :func:`alignlab.methods.base.headline_of`), its config and every metric row (``history``).

    A run still marked running whose process has died (see :func:`owner_is_gone`) reads as failed, and
    its status.json is rewritten to say so (:func:`settled_status`). A run with a file that cannot be
    read (a truncated, empty, binary or wrong-typed config.json or status.json, a bad metrics.jsonl line)
    reads as state ``unreadable``, its ``error`` naming the file and ``file`` holding its name; it never
    raises for what is in the files.
    """
    run_dir = Path(run_dir)
    config: dict = {}
    try:
        config = read_config(run_dir)
        status = settled_status(run_dir, strict=True) or {"state": "unknown"}
        rows, _ = read_metrics(run_dir, strict=True)
    except UnreadableRunFile as error:
        return unreadable_run(run_dir, error.file, str(error), config)
    last: dict[str, Any] = {}
    for row in rows:
        last.update({k: v for k, v in row.items() if v is not None})
    return {"run_id": run_dir.name, "path": str(run_dir), "method": config.get("method"), "model": config.get("model"),
            "state": status.get("state"), "error": status.get("error"), "steps": last.get("step", 0),
            "loss": last.get("loss"), **headline_of(config.get("method"), last), "elapsed_s": status.get("elapsed_s"),
            "config": config, "history": rows}


def default_runs_dir(working_dir: str | Path | None = None) -> Path:
    """The runs folder when none is named: ``$ALIGNLAB_RUNS`` when set, else ``runs/`` at the project's root, the
    nearest folder at or above ``working_dir`` (the current one by default) that holds a ``pyproject.toml``, else
    ``runs/`` in ``working_dir``. Relative (``runs``) when that root is the working folder itself, so messages stay
    short where they always were.
    """
    chosen = os.environ.get(RUNS_ENV, "").strip()
    if chosen:
        return Path(chosen).expanduser()
    here = Path.cwd() if working_dir is None else Path(working_dir).absolute()
    for folder in (here, *here.parents):
        if (folder / PROJECT_MARKER).is_file():
            return Path(RUNS) if working_dir is None and folder == here else folder / RUNS
    return Path(RUNS) if working_dir is None else here / RUNS


def list_runs(output_dir: str | Path | None = None) -> list[dict]:
    """Every run under ``output_dir`` (:func:`default_runs_dir` when None; see :func:`read_run`), newest first."""
    root = default_runs_dir() if output_dir is None else Path(output_dir)
    if not root.is_dir():
        return []
    try:
        paths = [path for path in root.iterdir() if is_run_dir(path)]
    except OSError as error:
        raise AlignLabError(f"output_dir: cannot list {str(root)!r} ({error.strerror or error})") from None
    runs = []
    for path in paths:
        try:
            runs.append(read_run(path))
        except (OSError, ValueError) as error:  # one damaged run never hides the others
            runs.append(unreadable_run(path, "", f"run: {path.name} is unreadable: {type(error).__name__}: {error}"))
    return sorted(runs, key=lambda run: run["run_id"], reverse=True)


def unreadable_run(run_dir: str | Path, file: str, error: str, config: dict | None = None) -> dict:
    """:func:`read_run`'s summary of a run that cannot be read: state ``unreadable``, ``error`` saying which
    file and why, ``file`` its name, no metrics (method and model still shown when the config was read)."""
    run_dir = Path(run_dir)
    config = config or {}
    return {"run_id": run_dir.name, "path": str(run_dir), "method": config.get("method"), "model": config.get("model"),
            "state": UNREADABLE, "error": error, "file": file, "steps": 0, "loss": None, **dict.fromkeys(HEADLINE),
            "config": config, "history": []}


def find_run(runs_dir: str | Path, run_id: str) -> Path:
    """The directory of the run ``run_id`` in ``runs_dir``; AlignLabError for anything else.

    Only the names of the run directories in ``runs_dir`` match, so an id from an untrusted client
    (a browser) can never reach a path (``../x``, ``/etc``) of its choosing.
    """
    runs_dir = Path(runs_dir)
    names = {path.name for path in runs_dir.iterdir() if is_run_dir(path)} if runs_dir.is_dir() else set()
    if run_id not in names:
        raise AlignLabError(f"run: no run {run_id!r} in {runs_dir}")
    return runs_dir / run_id


def find(run: str | Path, runs_dir: str | Path | None = None) -> Path:
    """The run directory ``run`` names: a path to a run directory, else the id of a run in ``runs_dir``
    (:func:`default_runs_dir` when None).

    For trusted callers (the CLI, a notebook); ids from a browser go through :func:`find_run`.
    """
    path = Path(run).expanduser()
    if is_run_dir(path):
        return path
    runs_dir = default_runs_dir() if runs_dir is None else runs_dir
    try:
        return find_run(runs_dir, str(run))
    except AlignLabError:
        raise AlignLabError(f"run: no run {str(run)!r} (looked for a run directory at {path} and "
                            f"{Path(runs_dir) / str(run)})") from None


def delete_run(run_dir: str | Path) -> None:
    """Remove a run directory and everything in it; refuses a path that is not a run directory and a run
    that a process is training (see :func:`is_training`)."""
    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        raise AlignLabError(f"run: {str(run_dir)!r} is not a run directory")
    if is_training(run_dir):
        status = read_status(run_dir)
        named = status.get("state") == "running" and status.get("pid")
        who = f"process {status['pid']} on {status.get('host') or 'an unknown host'}" if named else "another process"
        raise AlignLabError(f"run: {run_dir.name} is being trained by {who}; stop it before deleting it")
    shutil.rmtree(run_dir)
