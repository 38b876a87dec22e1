"""One trainer per run: the process that starts or resumes a run holds the run directory's training lock (an
OS-level ``flock``) until the run ends, so a second resume, in another process or in this one, is refused at once
in one line and changes nothing; the steps are logged once.

Real tiny-random DPO runs (no mocked trainer).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from alignlab import cli, rundir, runner
from alignlab.config import RunConfig
from alignlab.errors import AlignLabError

pytestmark = pytest.mark.timeout(300)
REFUSED = "is being trained by another process"


def stopped_run(tiny, max_steps: int, stop_after: int) -> runner.RunHandle:
    """A DPO run of ``max_steps`` stopped after ``stop_after`` steps, with the checkpoint the stop saves."""
    handle = runner.start(RunConfig(**dict(tiny, max_steps=max_steps, probe_every=0, save_every=0)))
    handle.subscribe(lambda event: handle.stop() if "loss" in event["metrics"] and event["step"] >= stop_after - 1
                     else None)
    assert handle.wait(240) == "stopped", handle.error
    return handle


def loss_steps(run_dir: Path) -> list[int]:
    rows, _ = rundir.read_metrics(run_dir)
    return [row["step"] for row in rows if "loss" in row]


def run_files(run_dir: Path) -> dict[str, bytes]:
    return {name: (run_dir / name).read_bytes() for name in (rundir.STATUS, rundir.METRICS, rundir.CONFIG)}


def test_a_resume_while_another_process_holds_the_lock_fails_at_once_and_changes_nothing(tiny):
    """The test process holds the run's lock as a trainer does; ``alignlab train --resume`` in another process
    exits 2 with one line naming the run, and leaves its status and metrics as they were. Once the lock is
    released the same command resumes it, each step logged once."""
    handle = stopped_run(tiny, max_steps=3, stop_after=2)
    assert not rundir.is_locked(handle.run_dir)  # released when the run ended
    before = run_files(handle.run_dir)
    command = [sys.executable, "-m", "alignlab", "train", "--resume", str(handle.run_dir), "--quiet"]
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    lock = rundir.lock_training(handle.run_dir)
    try:
        assert rundir.is_locked(handle.run_dir) and rundir.is_training(handle.run_dir)
        refused = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=120)
    finally:
        lock.release()
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr == f"error: resume: run {handle.run_id} {REFUSED}; wait for it to end or stop it\n"
    assert run_files(handle.run_dir) == before
    assert rundir.read_status(handle.run_dir)["state"] == "stopped"

    resumed = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=240)
    assert resumed.returncode == 0, resumed.stderr
    assert rundir.read_status(handle.run_dir)["state"] == "finished"
    assert loss_steps(handle.run_dir) == [1, 2, 3]


def test_a_second_resume_of_a_run_being_resumed_is_refused_and_each_step_is_logged_once(tiny, capsys):
    """Two resumes of one stopped run: the first trains (its lock taken before ``resume`` returns); the second,
    through the Python API and through the CLI, is refused in one line, and the run ends with steps 1..6 once."""
    handle = stopped_run(tiny, max_steps=6, stop_after=2)
    first = runner.resume(handle.run_dir)
    try:
        with pytest.raises(AlignLabError, match=f"resume: run {handle.run_id} {REFUSED}"):
            runner.resume(handle.run_dir)
        started = time.monotonic()
        assert cli.main(["train", "--resume", str(handle.run_dir), "--quiet"]) == 2
        assert time.monotonic() - started < 5  # at once: nothing is loaded before the lock is tried
        error = capsys.readouterr().err
        assert error.startswith(f"error: resume: run {handle.run_id} {REFUSED}") and error.count("\n") == 1, error
        with pytest.raises(AlignLabError, match=f"run: {handle.run_id} is being trained by"):
            rundir.delete_run(handle.run_dir)
    finally:
        assert first.wait(240) == "finished", first.error
    assert loss_steps(handle.run_dir) == [1, 2, 3, 4, 5, 6]
    assert [event["step"] for event in first.history if "loss" in event["metrics"]] == [1, 2, 3, 4, 5, 6]
    assert not rundir.is_locked(handle.run_dir)  # the run ended: the lock is free
    with pytest.raises(AlignLabError, match="already finished"):
        runner.resume(handle.run_dir)


def test_the_lock_of_a_killed_trainer_is_free_again(tiny):
    """The OS drops the lock with the process that held it: a trainer killed with SIGKILL leaves no stale lock."""
    run_dir = Path(tiny["output_dir"]) / "r"
    rundir.create(run_dir, {"run_id": "r"})
    holder = subprocess.Popen([sys.executable, "-c", "import time; from alignlab import rundir; "
                               f"lock = rundir.lock_training({str(run_dir)!r}); print('locked', flush=True); "
                               "time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(AlignLabError, match=f"run: run r {REFUSED}"):
            rundir.lock_training(run_dir)
    finally:
        holder.kill()
        holder.wait()
    rundir.lock_training(run_dir).release()


def test_the_apps_resume_of_a_run_another_process_trains_is_refused_in_one_line(tiny):
    """The Runs tab's Resume while ``alignlab train`` (here: the test, holding the lock as it does) trains the run:
    refused before anything is queued, naming the run; the run's files stay as they were."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from alignlab.ui.gradio.app import create_app
    from alignlab.ui.gradio.server import serve

    run_dir = Path(tiny["output_dir"]) / "r"
    rundir.create(run_dir, {"run_id": "r", **RunConfig(**tiny).to_dict()})
    rundir.write_status(run_dir, {"run_id": "r", "state": "stopped", "step": 2})
    (run_dir / rundir.METRICS).write_text('{"step": 2, "time": 1.0, "loss": 0.5}\n')
    checkpoint = rundir.checkpoints_dir(run_dir) / f"{rundir.CHECKPOINT_PREFIX}2"
    checkpoint.mkdir(parents=True)
    (checkpoint / rundir.TRAINER_STATE).write_text("{}")
    before = run_files(run_dir)
    demo = create_app(tiny["output_dir"])
    demo.services.jobs.close()  # no worker: nothing may be queued anyway
    _, url, _ = serve(demo, port=None, block=False)
    lock = rundir.lock_training(run_dir)
    try:
        client = Client(url, verbose=False)
        client.predict(api_name="/list_runs")
        with pytest.raises(AppError, match=f"^resume: run r {REFUSED}; wait for it to end or stop it$"):
            client.predict("r", api_name="/resume_run")
        with pytest.raises(AppError, match=f"run: r {REFUSED}; stop it before deleting it"):
            client.predict("r", [], api_name="/delete_run")
    finally:
        lock.release()
        demo.close()
    assert demo.services.jobs.jobs == [] and run_files(run_dir) == before
