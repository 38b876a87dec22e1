"""Helpers of the fault tests (issue 11): a run directory made without training, output folders nobody can write
to, and a long CLI training run in a child process with a wait for its first logged step."""

import os
import subprocess
import sys
from pathlib import Path

from conftest import wait_for

from alignlab import rundir
from alignlab.config import RunConfig


def make_run(output_dir: Path, run_id: str) -> Path:
    """A finished run directory with one metric row, as the runner leaves it (without training)."""
    run_dir = rundir.create(output_dir / run_id, {"run_id": run_id, **RunConfig(model="tiny-random").to_dict()})
    rundir.write_status(run_dir, {"run_id": run_id, "state": "finished", "step": 1})
    (run_dir / rundir.METRICS).write_text('{"step": 1, "time": 1.0, "loss": 0.5}\n')
    return run_dir


def unusable_folders(tmp_path: Path) -> dict[str, Path]:
    """Output folders no run can be written to: a regular file, a path under one, /proc, a read-only folder."""
    regular = tmp_path / "a-file"
    regular.write_text("x")
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o555)
    return {"file": regular, "under-file": regular / "runs", "proc": Path("/proc"), "read-only": read_only / "runs"}


def cli_train(pairs_file, output_dir, *extra: str, **popen) -> subprocess.Popen:
    """``python -m alignlab train`` of a long DPO run on tiny-random in a child process (probe off)."""
    command = [sys.executable, "-m", "alignlab", "train", "--method", "dpo", "--model", "tiny-random", "--dataset",
               str(pairs_file), "--max-steps", "1000", "--batch-size", "2", "--max-length", "48",
               "--max-completion-length", "8", "--probe-every", "0", "--output-dir", str(output_dir), "--quiet",
               *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, **popen)


def first_step(process: subprocess.Popen, runs: Path, timeout: float = 180) -> tuple[Path, int]:
    """Wait until the child has logged a training step; returns its run directory and the step logged last."""

    def logged() -> tuple[Path, int] | None:
        for run_dir in runs.glob("*/"):
            rows = rundir.read_metrics(run_dir)[0] if rundir.is_run_dir(run_dir) else []
            if rows:
                return run_dir, rows[-1]["step"]
        assert process.poll() is None, process.communicate()
        return None

    return wait_for(logged, timeout, every=0.05, what="a logged training step")
