"""Stopping ``alignlab app`` (SIGTERM, or SIGINT as Ctrl-C sends) stops its training job as the Stop button does:
the worker saves the adapter, the run ends ``stopped``, and only then does the app exit; no worker is left behind.

The real command in a subprocess, on a free port, training a tiny-random DPO job queued through gradio_client.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import wait_for
from gradio_client import Client

from alignlab import rundir

pytestmark = pytest.mark.timeout(420)
QUICK = dict(model="tiny-random", batch_size=2, max_length=64, max_completion_length=16, probe_every=0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def connect(url: str, app: subprocess.Popen, timeout: float = 180) -> Client:
    """A client of the app once it answers (AssertionError if the app exits or never answers)."""

    def answering() -> Client | None:
        assert app.poll() is None, f"the app exited with {app.returncode}"
        try:
            return Client(url, verbose=False)
        except Exception:  # noqa: BLE001 - not serving yet
            return None

    return wait_for(answering, timeout, every=0.2, what="the app answering")


def is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopping_the_app_stops_its_training_job_saved_before_it_exits(tmp_path, sent):
    runs, port = tmp_path / "runs", free_port()
    log = open(tmp_path / "app.log", "w+", encoding="utf-8")
    app = subprocess.Popen([sys.executable, "-m", "alignlab", "app", "--port", str(port), "--output-dir", str(runs)],
                           stdout=log, stderr=subprocess.STDOUT, text=True,
                           env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    try:
        client = connect(f"http://127.0.0.1:{port}/", app)
        assert client.predict(method="dpo", max_steps=500, api_name="/start_run", **QUICK).startswith("Queued job 1")
        deadline = time.time() + 240
        while True:  # training: the worker has logged a step
            status = client.predict(api_name="/job_status")
            if status["state"] == "running" and any("loss" in row for row in status["rows"]):
                break
            assert status["state"] in ("queued", "starting", "running") and time.time() < deadline, status
            time.sleep(0.3)
        run_dir = runs / status["run_id"]
        worker = rundir.read_status(run_dir)["pid"]
        assert worker != app.pid and is_alive(worker) and rundir.is_locked(run_dir)

        app.send_signal(sent)
        assert app.wait(240) == 0
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
    log.seek(0)
    output = log.read()
    assert f"{sent.name}: stopping the training job" in output, output
    final = rundir.read_status(run_dir)
    assert final["state"] == "stopped" and 1 <= final["step"] < 500, final
    assert rundir.has_adapter(run_dir)
    assert not is_alive(worker) and not rundir.is_locked(run_dir)  # no worker left training
