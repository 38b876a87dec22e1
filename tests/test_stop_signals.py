"""Signals stop a CLI run gracefully (issue 11, item 3): SIGINT, SIGTERM or SIGHUP stops it after the current
step; it saves the adapter and a checkpoint of that step, ends stopped, and prints no traceback."""

import signal
import time

import pytest
from fault_helpers import cli_train, first_step

from alignlab import rundir


# --- 3: signals stop a CLI run gracefully: saved, stopped, no traceback ---------------------------------------
@pytest.mark.parametrize("name, background", [("SIGINT", True), ("SIGTERM", False), ("SIGHUP", False)])
def test_a_signal_stops_a_cli_run_after_the_current_step_and_it_saves(name, background, pairs_file, tmp_path):
    """SIGINT goes to a run started in the background (a shell starts it with SIGINT ignored), again and again
    until it exits: the first stops it, the others land during the save and must not interrupt it."""
    runs = tmp_path / "runs"
    ignore_sigint = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if background else None
    process = cli_train(pairs_file, runs, preexec_fn=ignore_sigint)
    try:
        run_dir, step = first_step(process, runs)
        process.send_signal(getattr(signal, name))
        while name == "SIGINT" and process.poll() is None:
            time.sleep(0.05)
            process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 0 and "Traceback" not in stderr, stderr
    assert f"{name}: stopping at the next step" in stderr and "stopped after" in stdout
    if name == "SIGINT":
        assert "SIGINT: already stopping" in stderr
    status = rundir.read_status(run_dir)
    assert status["state"] == "stopped" and step <= status["step"] < 1000
    assert rundir.has_adapter(run_dir)  # the adapter so far, and a checkpoint of the very step it stopped at
    assert rundir.latest_checkpoint(run_dir)[1] == status["step"] == rundir.read_metrics(run_dir)[0][-1]["step"]
