"""The run directory: its layout, and the one module that reads and writes the files in it.

Every run lives in ``<output_dir>/<run_id>/``::

    config.json          the RunConfig the run started with, plus its run_id (written once)
    status.json          state (running, finished, stopped or failed), step, total steps, elapsed
                         seconds, ETA, the error when it failed, and the pid and host of the process
                         training it (rewritten as the run goes)
    metrics.jsonl        one JSON object a line: step, time and the metric keys, TRL's names kept
                         plus the probe's probe/...; appended and flushed line by line
    probe_samples.jsonl  the probe's completions, one a line, each tagged with its step
    samples.jsonl        reference vs aligned completions on held-out prompts, with their rewards
                         (written when the run ends)
    error.log            the traceback, when the run failed
    model/               the trained LoRA adapter (peft's adapter_config.json) or full model, and
                         the tokenizer
    trainer/             TRL's scratch folder while training; removed when the run ends
    snapshots/step-N/    models saved along the way, by experiments that ask for them

The engine writes these files; the CLI, the notebook widgets and the Gradio app read them, often
from another process or a later session. So each name is spelled once, here, together with the
rules that make reading a run that is still being written safe: JSON files are replaced atomically
(temp file + ``os.replace``), so a reader never sees half of one, and metrics are read from a byte
offset, a last line still being written being left for the next read.

This module knows files, not training: it imports nothing of alignlab but :mod:`alignlab.errors`
(:func:`alignlab.config.config_of` turns :func:`read_config` into a RunConfig).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from alignlab.errors import AlignLabError

CONFIG = "config.json"
STATUS = "status.json"
METRICS = "metrics.jsonl"
PROBE_SAMPLES = "probe_samples.jsonl"
SAMPLES = "samples.jsonl"
ERROR_LOG = "error.log"
MODEL = "model"
TRAINER = "trainer"
SNAPSHOTS = "snapshots"
ADAPTER_CONFIG = "adapter_config.json"  # peft's file: the model folder holds an adapter, not a full model

MAX_RUN_ID = 128
RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


# --- naming ------------------------------------------------------------------------------------
def new_run_id(method: str, label: str = "") -> str:
    """A fresh run id: time, method, optional label, 4 random hex digits (``20250101-120000-dpo-ab12``).

    >>> check_run_id(new_run_id("dpo", "my first run")).endswith(tuple("0123456789abcdef"))
    True
    """
    label = re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-.")[:64]
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{method}{'-' + label if label else ''}-{secrets.token_hex(2)}"


def check_run_id(run_id: str) -> str:
    """``run_id`` if it is a safe directory name (letters, digits, ``_ . -``; starts with a letter or
    digit; at most 128 characters), else AlignLabError.

    >>> check_run_id("../etc")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    alignlab.errors.AlignLabError: run_id: got '../etc', expected letters, digits, '_', '.' or '-', starting with
        a letter or digit, at most 128 characters
    """
    if not isinstance(run_id, str) or len(run_id) > MAX_RUN_ID or not RUN_ID.fullmatch(run_id):
        raise AlignLabError(f"run_id: got {run_id!r}, expected letters, digits, '_', '.' or '-', starting with "
                            f"a letter or digit, at most {MAX_RUN_ID} characters")
    return run_id


def is_run_dir(path: str | Path) -> bool:
    """True when ``path`` is a run directory (it holds a config file)."""
    return (Path(path) / CONFIG).is_file()


def model_dir(run_dir: str | Path) -> Path:
    """The folder a run saves its trained adapter or model (and tokenizer) in."""
    return Path(run_dir) / MODEL


def has_model(run_dir: str | Path) -> bool:
    """True once the run has saved a model (at its end, or when it was stopped)."""
    return model_dir(run_dir).is_dir()


def has_adapter(run_dir: str | Path) -> bool:
    """True when the saved model is a LoRA adapter (loaded on top of the base model), not a full model."""
    return (model_dir(run_dir) / ADAPTER_CONFIG).is_file()


def trainer_dir(run_dir: str | Path) -> Path:
    """TRL's scratch ``output_dir`` for the run (removed when the run ends)."""
    return Path(run_dir) / TRAINER


def snapshot_dir(run_dir: str | Path, step: int) -> Path:
    """Where a model saved at ``step`` during the run goes."""
    return Path(run_dir) / SNAPSHOTS / f"step-{step}"


# --- writing -----------------------------------------------------------------------------------
def check_free(run_dir: str | Path) -> None:
    """AlignLabError if ``run_dir`` already exists (a run never writes into another's directory)."""
    run_dir = Path(run_dir)
    if run_dir.exists():
        raise AlignLabError(f"run_id: {run_dir.name!r} already exists in {run_dir.parent}; choose another id")


def create(run_dir: str | Path, config: dict) -> Path:
    """Make the run directory and write its config; AlignLabError if the directory exists."""
    run_dir = Path(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        run_dir.mkdir()
    except FileExistsError:
        check_free(run_dir)
    _write_json(run_dir / CONFIG, config)
    return run_dir


def write_status(run_dir: str | Path, status: dict) -> None:
    """Replace the run's status atomically, stamping the time and this process's pid and host
    (see :func:`owner_is_gone`)."""
    _write_json(Path(run_dir) / STATUS, {**status, "updated": time.time(), "pid": os.getpid(),
                                         "host": socket.gethostname()})


def write_error(run_dir: str | Path, text: str) -> None:
    """Keep the traceback of a failed run."""
    (Path(run_dir) / ERROR_LOG).write_text(text, encoding="utf-8")


def write_samples(run_dir: str | Path, rows: Iterable[dict]) -> None:
    """Write the reference-vs-aligned samples (``prompt``, ``reference``, ``aligned``, ``reference_reward``,
    ``aligned_reward``), replacing any earlier ones."""
    _write_lines(Path(run_dir) / SAMPLES, rows, mode="w")


def append_probe_samples(run_dir: str | Path, step: int, samples: Iterable[dict]) -> None:
    """Append the completions the probe scored at ``step``."""
    _write_lines(Path(run_dir) / PROBE_SAMPLES, ({"step": step, **sample} for sample in samples), mode="a")


class MetricsLog:
    """Appends metric events ``{"step", "time", "metrics"}`` to a run, one flushed JSON line each."""

    def __init__(self, run_dir: str | Path) -> None:
        self._handle = open(Path(run_dir) / METRICS, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, event: dict) -> None:
        """Append one event as ``{"step", "time", <metric>: value, ...}``."""
        line = json.dumps({"step": event["step"], "time": event["time"], **event["metrics"]}, default=_jsonable)
        with self._lock:
            self._handle.write(line + "\n")
            self._handle.flush()

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
    temp.write_text(json.dumps(value, indent=1, default=_jsonable), encoding="utf-8")
    os.replace(temp, path)


def _write_lines(path: Path, rows: Iterable[dict], mode: str) -> None:
    with open(path, mode, encoding="utf-8") as out:
        out.writelines(json.dumps(row, default=_jsonable) + "\n" for row in rows)


# --- reading -----------------------------------------------------------------------------------
def read_config(run_dir: str | Path) -> dict:
    """The run's config as saved: the RunConfig fields and ``run_id``."""
    return json.loads((Path(run_dir) / CONFIG).read_text(encoding="utf-8"))


def read_status(run_dir: str | Path) -> dict:
    """The run's last status, or {} before the first one is written."""
    try:
        return json.loads((Path(run_dir) / STATUS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def read_metrics(run_dir: str | Path, offset: int = 0) -> tuple[list[dict], int]:
    """The run's metric rows from byte ``offset``; returns (rows, new offset) for the next call.

    A last line still being written (no newline yet) is left for the next call.
    """
    path = Path(run_dir) / METRICS
    if not path.exists():
        return [], offset
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read()
    end = data.rfind(b"\n") + 1
    rows = []
    for line in data[:end].splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows, offset + end


def read_samples(run_dir: str | Path) -> list[dict]:
    """The run's reference-vs-aligned samples, [] until the run has written them."""
    return _read_lines(Path(run_dir) / SAMPLES)


def read_probe_samples(run_dir: str | Path) -> list[dict]:
    """Every completion the probe scored, each with its ``step``; [] without a probe."""
    return _read_lines(Path(run_dir) / PROBE_SAMPLES)


def samples_summary(run_dir: str | Path) -> dict | None:
    """Mean reward of the reference and the aligned samples and their count, or None without samples."""
    rows = read_samples(run_dir)
    if not rows:
        return None

    def mean(key: str) -> float:
        return sum(row[key] for row in rows) / len(rows)

    return {"reference": mean("reference_reward"), "aligned": mean("aligned_reward"), "samples": len(rows)}


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
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def owner_is_gone(status: dict) -> bool:
    """True when the status names a process on this host that no longer exists (killed mid-run)."""
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


def read_run(run_dir: str | Path) -> dict:
    """Summary of a run: id, path, method, model, state, error, steps, last loss, reward and KL, its
    config and every metric row (``history``).

    A run still marked running whose process has died (see :func:`owner_is_gone`) reads as failed.
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    status = read_status(run_dir) or {"state": "unknown"}
    if status.get("state") == "running" and owner_is_gone(status):
        status.update(state="failed", error=f"the process training this run (pid {status['pid']}) ended without "
                      f"finishing it (killed?); the weights saved so far, if any, are in {MODEL}/")
    rows, _ = read_metrics(run_dir)
    last: dict[str, Any] = {}
    for row in rows:
        last.update({k: v for k, v in row.items() if v is not None})
    return {"run_id": run_dir.name, "path": str(run_dir), "method": config.get("method"), "model": config.get("model"),
            "state": status.get("state"), "error": status.get("error"), "steps": last.get("step", 0),
            "loss": last.get("loss"), "reward": _first(last, ("probe/reward", "reward", "rewards/margins")),
            "kl": _first(last, ("probe/kl", "objective/kl", "kl")), "config": config, "history": rows}


def _first(values: dict, keys: tuple[str, ...]):
    for key in keys:
        if values.get(key) is not None:
            return values[key]
    return None


def list_runs(output_dir: str | Path = "runs") -> list[dict]:
    """Every run under ``output_dir`` (see :func:`read_run`), newest first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    runs = [read_run(path) for path in root.iterdir() if is_run_dir(path)]
    return sorted(runs, key=lambda run: run["run_id"], reverse=True)


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


def find(run: str | Path, runs_dir: str | Path = "runs") -> Path:
    """The run directory ``run`` names: a path to a run directory, else the id of a run in ``runs_dir``.

    For trusted callers (the CLI, a notebook); ids from a browser go through :func:`find_run`.
    """
    path = Path(run).expanduser()
    if is_run_dir(path):
        return path
    try:
        return find_run(runs_dir, str(run))
    except AlignLabError:
        raise AlignLabError(f"run: no run {str(run)!r} (looked for a run directory at {path} and "
                            f"{Path(runs_dir) / str(run)})") from None


def delete_run(run_dir: str | Path) -> None:
    """Remove a run directory and everything in it (refuses a path that is not a run directory)."""
    run_dir = Path(run_dir)
    if not is_run_dir(run_dir):
        raise AlignLabError(f"run: {str(run_dir)!r} is not a run directory")
    shutil.rmtree(run_dir)
