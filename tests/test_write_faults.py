"""A failed write is loud and never hangs (issue 11, items 10 and 2): the training callback writes the metrics
file itself, a bus subscriber's error is reported once, and a full or read-only disk fails the run (or the app's
job) saying why, with no half-written model, while the queue moves on."""

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import flags_of, one_error_line, wait_for
from fault_helpers import cli_train, first_step, make_run

from alignlab import cli, rundir
from alignlab.config import RunConfig
from alignlab.metrics import MetricBus
from alignlab.runner import start


# --- 10: the training callback writes the metrics file itself; a subscriber's error is reported once --------
class FullDisk:
    """A metrics file on a full disk."""

    def write(self, event: dict) -> None:
        raise OSError(28, "No space left on device")

    def close(self) -> None:
        pass


def test_the_training_callback_writes_the_metrics_file_and_a_failed_write_is_raised(tiny, tmp_path):
    from alignlab.runner import RunHandle
    from alignlab.training import EventCallback

    run_dir = make_run(tmp_path, "r")
    (run_dir / rundir.METRICS).unlink()
    handle = RunHandle(RunConfig(**tiny), "r", run_dir)
    handle.metrics_log = rundir.MetricsLog(run_dir)
    state = SimpleNamespace(is_world_process_zero=True, global_step=3)
    EventCallback(handle).on_log(None, state, None, logs={"loss": 0.5})
    handle.metrics_log.close()
    assert [(row["step"], row["loss"]) for row in rundir.read_metrics(run_dir)[0]] == [(3, 0.5)]
    assert handle.bus._subscribers == []  # the file is written by the callback, not by a bus subscriber
    handle.metrics_log = FullDisk()
    with pytest.raises(OSError, match="No space left on device"):
        EventCallback(handle).on_log(None, SimpleNamespace(is_world_process_zero=True, global_step=4), None,
                                     logs={"loss": 0.4})
    assert [event["step"] for event in handle.history] == [3]  # a row not written is not shown either


def test_a_run_whose_metrics_cannot_be_written_fails_and_says_why(tiny, monkeypatch):
    monkeypatch.setattr(rundir.MetricsLog, "write", FullDisk.write)
    handle = start(RunConfig(**{**tiny, "probe_every": 0}), background=False)
    assert handle.state == "failed" and "No space left on device" in handle.error
    assert rundir.read_run(handle.run_dir)["state"] == "failed"


def test_a_bus_subscriber_that_raises_is_reported_once_and_the_others_still_hear():
    bus, heard = MetricBus(), []

    def broken(event):
        raise KeyError("plot")

    bus.subscribe(broken)
    bus.subscribe(heard.append)
    with pytest.warns(RuntimeWarning, match=r"metric subscriber .*broken raised KeyError: 'plot' \(at step 1\)"):
        bus.publish({"step": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second error of the same subscriber is not reported again
        bus.publish({"step": 2})
    assert [event["step"] for event in heard] == [1, 2]


# --- 2: a write error never hangs and never leaves a run that looks finished or running ----------------------
# A small tmpfs is a full disk; a read-only mount or an immutable folder (chattr +i) is one nobody may write in,
# root included. Mounting needs root (and a kernel that lets this process mount): the tests skip cleanly without.
@pytest.fixture
def small_disk(tmp_path):
    """``small_disk(size, options)`` mounts a tmpfs of ``size`` under tmp_path and returns its path."""
    mounts = []

    def mount(size: str = "200k", options: str = "") -> Path:
        if os.geteuid() != 0 or not shutil.which("mount"):
            pytest.skip("mounting a small tmpfs needs root")
        path = tmp_path / f"disk{len(mounts)}"
        path.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(filter(None, [f"size={size}", options])),
                                 "tmpfs", str(path)], capture_output=True, text=True)
        if result.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounts.append(path)
        return path

    yield mount
    for path in mounts:
        subprocess.run(["chattr", "-R", "-i", str(path)], capture_output=True)
        subprocess.run(["umount", "--lazy", str(path)], capture_output=True)


def fill(disk: Path) -> None:
    """Write a file on ``disk`` until it is full."""
    handle = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(handle, b"x" * 65536)
    except OSError:
        pass
    finally:
        os.close(handle)


def can_make_immutable(disk: Path) -> bool:
    """True when ``chattr +i`` works on ``disk``: a folder nobody, root included, may create files in."""
    if shutil.which("chattr") is None:
        return False
    folder = disk / "immutable-probe"
    folder.mkdir()
    works = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
    folder.rmdir()
    return works


def test_a_full_or_read_only_output_dir_before_the_run_is_refused_in_one_line(small_disk, tiny, capsys):
    full = small_disk("64k")
    fill(full)
    for folder in (full, small_disk("1m", "ro"), small_disk("4k")):  # 4 KB: room for the config, not the status
        assert cli.main(["train", *flags_of({**tiny, "output_dir": folder / "runs"})]) == 2
        assert one_error_line(capsys).startswith("error: output_dir: ")
        assert rundir.list_runs(folder / "runs") == []  # nothing half-made left behind


def test_a_full_disk_while_saving_the_model_fails_the_run_and_leaves_no_half_written_model(small_disk, tiny):
    """200 KB holds the run's files and its adapter, not its tokenizer (3.5 MB): the save fails half-way."""
    disk = small_disk("200k")
    handle = start(RunConfig(**{**tiny, "output_dir": str(disk / "runs"), "probe_every": 0}), background=False)
    assert handle.state == "failed"
    assert handle.error.startswith("output_dir: cannot save the model in ") and "No space left" in handle.error
    status = rundir.read_status(handle.run_dir)  # the half-written model removed, the status had room to say why
    assert (status["state"], status["error"]) == ("failed", handle.error)
    assert not any(path.name.startswith(rundir.MODEL) for path in handle.run_dir.iterdir())  # no model, whole or half


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_write_fault_mid_run_ends_the_cli_in_seconds_and_the_run_reads_failed(fault, small_disk, pairs_file):
    disk = small_disk("8m")
    if fault == "read-only" and not can_make_immutable(disk):
        pytest.skip("chattr +i does not work here (a mount busy with open files cannot turn read-only)")
    process = cli_train(pairs_file, disk / "runs")
    try:
        run_dir, _ = first_step(process, disk / "runs")
        if fault == "full":
            fill(disk)
        else:
            subprocess.run(["chattr", "+i", str(run_dir)], check=True)
        _, stderr = process.communicate(timeout=60)  # before: the run thread died unrecorded and this waited forever
    finally:
        process.kill()
    assert process.returncode == 1 and "Traceback" not in stderr
    # one error line, the last; a library may have printed a warning of its own before it (under load, once)
    errors = [line for line in stderr.strip().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and stderr.strip().splitlines()[-1] == errors[0], stderr
    line = errors[0]
    assert line.startswith("error: output_dir: cannot ") and (
        "No space left on device" if fault == "full" else "Operation not permitted") in line
    (run,) = rundir.list_runs(disk / "runs")  # its status, if it could not be written, names a process now gone
    assert run["state"] == "failed" and not rundir.has_model(run_dir)


def test_the_app_queue_moves_on_after_a_job_fails_on_a_full_disk(small_disk, tiny, tmp_path):
    from alignlab.ui.gradio.jobs import JobQueue

    disk = small_disk("200k")  # the first job's model does not fit
    queue = JobQueue(disk / "runs", tmp_path / "jobs")
    try:
        first, second = (queue.submit(RunConfig(**{**tiny, "probe_every": 0})) for _ in range(2))
        wait_for(lambda: first.state not in ("queued", "starting", "running"), 240, what="the first job ending")
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)  # room for the second
        wait_for(lambda: second.state not in ("queued", "starting", "running"), 240, what="the queue moving on")
    finally:
        queue.close()
    assert first.state == "failed" and "cannot save the model" in first.error and "No space left" in first.error
    assert second.state == "finished", second.log_tail()
    assert rundir.has_model(second.run_dir) and not rundir.has_model(first.run_dir)


def test_a_job_whose_worker_cannot_start_fails_and_the_queue_goes_on(tmp_path, tiny, monkeypatch):
    from alignlab.ui.gradio.jobs import JobQueue

    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))  # a worker that cannot be started
    queue = JobQueue(tmp_path / "runs", tmp_path / "jobs")
    try:
        jobs = [queue.submit(RunConfig(**tiny)) for _ in range(2)]
        wait_for(lambda: not any(job.state in ("queued", "starting") for job in jobs), 30, every=0.05,
                 what="both jobs leaving the queue")
    finally:
        queue.close()
    assert [job.state for job in jobs] == ["failed", "failed"]
    assert all("FileNotFoundError" in job.error and "no-python" in job.error for job in jobs)
