"""Resume: checkpoints every save_every steps and on a stop; a stopped, failed or killed run continues from its
last checkpoint in the same run directory (step count, optimizer and scheduler state), each step logged once.

Real tiny-random runs throughout (no mocked trainer): DPO and RLOO through the Python API, a DPO run killed
with SIGKILL and resumed through the CLI, and the Resume buttons of the Gradio app and the notebook Lab.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import threads_ended, wait_for

from alignlab import cli, rundir, runner
from alignlab.config import RunConfig
from alignlab.errors import AlignLabError
from alignlab.methods import get_method, method_names

pytestmark = pytest.mark.timeout(300)


def stopped_run(config: RunConfig, step: int) -> runner.RunHandle:
    """Start ``config`` and press Stop so that it stops after ``step`` optimizer steps.

    The stop flag is read at the end of a step, and a step's log comes after that, so the request goes in
    when step ``step - 1`` is logged.
    """
    handle = runner.start(config)
    handle.subscribe(lambda event: handle.stop() if "loss" in event["metrics"] and event["step"] >= step - 1 else None)
    assert handle.wait(240) == "stopped", handle.error
    assert handle.status["step"] == step
    return handle


def logged_steps(run_dir: Path, key: str = "loss") -> list[int]:
    """The steps of the metric rows that carry ``key``, in file order."""
    rows, _ = rundir.read_metrics(run_dir)
    return [row["step"] for row in rows if key in row]


def checkpoints(run_dir: Path) -> list[str]:
    folder = rundir.checkpoints_dir(run_dir)
    return sorted(path.name for path in folder.iterdir() if path.is_dir()) if folder.exists() else []


def losses(rows_or_events) -> dict[int, float]:
    return {e["step"]: e["metrics"]["loss"] for e in rows_or_events if "loss" in e["metrics"]}


# --- the engine ---------------------------------------------------------------------------------------
def test_a_stopped_dpo_run_resumes_exactly_where_it_stopped(tiny):
    """Stop after 2 of 4 steps, resume: the same run directory ends finished with steps 1..4 once each, and with
    the losses of an uninterrupted run (so the weights, the optimizer and the linear schedule were restored)."""
    config = dict(tiny, method="dpo", max_steps=4, probe_every=0, lr_schedule="linear", save_every=0)
    uninterrupted = runner.start(RunConfig(**config), background=False)
    assert uninterrupted.state == "finished", uninterrupted.error

    stopped = stopped_run(RunConfig(**config), 2)
    assert checkpoints(stopped.run_dir) == ["checkpoint-2"]  # save_every 0: the stop alone leaves one
    assert rundir.read_status(stopped.run_dir)["state"] == "stopped"

    resumed = runner.resume(stopped.run_dir)
    assert resumed.run_dir == stopped.run_dir and resumed.wait(240) == "finished", resumed.error
    assert logged_steps(stopped.run_dir) == [1, 2, 3, 4]
    assert [e["step"] for e in resumed.history if "loss" in e["metrics"]] == [1, 2, 3, 4]  # history kept
    status = rundir.read_status(stopped.run_dir)
    assert status["state"] == "finished" and status["step"] == 4 and status["total_steps"] == 4
    expected = losses(uninterrupted.history)
    assert losses(resumed.history) == pytest.approx(expected, rel=1e-5)  # steps 3 and 4 need Adam's moments
    assert not rundir.checkpoints_dir(stopped.run_dir).exists()  # finished: nothing left to resume
    assert rundir.has_adapter(stopped.run_dir) and rundir.read_samples(stopped.run_dir)
    with pytest.raises(AlignLabError, match="already finished"):
        runner.resume(stopped.run_dir)


def test_a_stopped_rloo_run_resumes_with_each_step_and_probe_logged_once(tiny):
    spec = get_method("rloo")
    config = RunConfig.from_dict(dict(tiny, method="rloo", max_steps=4, probe_every=2, save_every=0,
                                      **spec.tiny_settings))
    stopped = stopped_run(config, 2)
    assert logged_steps(stopped.run_dir, "probe/reward") == [0, 2]
    resumed = runner.resume(stopped.run_dir)
    assert resumed.wait(240) == "finished", resumed.error
    assert logged_steps(stopped.run_dir) == [1, 2, 3, 4]
    assert logged_steps(stopped.run_dir, "probe/reward") == [0, 2, 4]  # not probed again at step 2 on resuming
    probe_steps = [row["step"] for row in rundir.read_probe_samples(stopped.run_dir)]
    assert sorted(set(probe_steps)) == [0, 2, 4] and probe_steps.count(2) == probe_steps.count(0)
    assert rundir.read_status(stopped.run_dir)["state"] == "finished"


def test_a_damaged_checkpoint_file_is_named_and_the_run_stays_stopped(tiny, capsys):
    """Each damaged file is named in one line, before the run changes (still stopped, its rows kept); once the
    files are whole again the same checkpoint resumes."""
    stopped = stopped_run(RunConfig(**dict(tiny, max_steps=3, probe_every=0, save_every=0)), 2)
    run_dir, (checkpoint, _) = stopped.run_dir, rundir.latest_checkpoint(stopped.run_dir)
    metrics = (run_dir / rundir.METRICS).read_bytes()
    capsys.readouterr()  # the run's own progress bars
    for name in ("optimizer.pt", "adapter_model.safetensors", rundir.TRAINER_STATE):
        whole = (checkpoint / name).read_bytes()
        (checkpoint / name).write_bytes(whole[: len(whole) // 2])  # a copy cut short
        assert cli.main(["train", "--resume", str(run_dir), "--quiet"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"checkpoint file checkpoint-2/{name} is damaged (" in err, err
        assert rundir.read_status(run_dir)["state"] == "stopped"
        assert (run_dir / rundir.METRICS).read_bytes() == metrics
        (checkpoint / name).write_bytes(whole)
    resumed = runner.resume(run_dir)
    assert resumed.wait(240) == "finished", resumed.error
    assert logged_steps(run_dir) == [1, 2, 3]


def test_checkpoints_are_saved_every_save_every_steps_and_only_the_newest_kept(tiny):
    stopped = stopped_run(RunConfig(**dict(tiny, max_steps=6, probe_every=0, save_every=1, keep_checkpoints=2)), 3)
    assert checkpoints(stopped.run_dir) == ["checkpoint-2", "checkpoint-3"]
    state = json.loads((rundir.latest_checkpoint(stopped.run_dir)[0] / rundir.TRAINER_STATE).read_text())
    assert state["global_step"] == 3 and state["max_steps"] == 6


def test_a_finished_run_saves_no_checkpoint_of_its_last_step_and_removes_the_others(tiny):
    """A run that finishes saves its model, not a checkpoint it will never resume from."""
    handle = runner.start(RunConfig(**dict(tiny, max_steps=3, probe_every=0, save_every=2)))
    seen: set[str] = set()
    while not handle.done:  # watch the checkpoints folder while it trains
        try:
            seen.update(checkpoints(handle.run_dir))
        except OSError:  # removed while listed
            pass
        time.sleep(0.002)
    assert handle.wait(240) == "finished", handle.error
    assert seen == {"checkpoint-2"}
    assert not rundir.checkpoints_dir(handle.run_dir).exists()


def test_a_killed_run_resumes_from_its_last_checkpoint_through_the_cli(tmp_path, pairs_file, capsys):
    """kill -9 mid-run, after rows beyond the last checkpoint were logged; ``train --resume`` drops those rows,
    continues from the checkpoint and ends with every step logged once."""
    steps, run_dir = 16, tmp_path / "runs" / "killed"
    command = [sys.executable, "-m", "alignlab", "train", "--method", "dpo", "--model", "tiny-random",
               "--dataset", str(pairs_file), "--max-steps", str(steps), "--batch-size", "2", "--max-length", "48",
               "--max-completion-length", "8", "--probe-every", "0", "--save-every", "2", "--keep-checkpoints", "2",
               "--output-dir", str(tmp_path / "runs"), "--run-id", "killed", "--quiet"]
    worker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and worker.poll() is None:
            found = rundir.latest_checkpoint(run_dir) if run_dir.exists() else None
            if found and max(logged_steps(run_dir), default=0) > found[1]:
                break
            time.sleep(0.02)
        assert worker.poll() is None, "the run ended before it could be killed"
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
    finally:
        if worker.poll() is None:
            worker.kill()
    checkpoint_step = rundir.latest_checkpoint(run_dir)[1]
    assert rundir.read_status(run_dir)["state"] == "running"  # as the killed process left it
    assert checkpoint_step < steps

    assert cli.main(["train", "--resume", str(run_dir), "--quiet"]) == 0
    assert "finished after 16 steps" in capsys.readouterr().out
    assert logged_steps(run_dir) == list(range(1, steps + 1))
    assert rundir.read_status(run_dir)["state"] == "finished"
    assert not rundir.checkpoints_dir(run_dir).exists()


# --- what cannot resume says why, in one line, and changes nothing ------------------------------------------
def fake_run(tiny, name: str, method: str = "dpo", state: str = "stopped", checkpoint: int | None = 2,
             pid: int | None = None) -> Path:
    """A run directory as a run leaves it, without training: config, status, one metric row, a checkpoint."""
    config = RunConfig.from_dict({**tiny, "method": method})
    run_dir = rundir.create(Path(tiny["output_dir"]) / name, {"run_id": name, **config.to_dict()})
    rundir.write_status(run_dir, {"state": state, "step": 2})
    if pid is not None:
        status = json.loads((run_dir / rundir.STATUS).read_text())
        (run_dir / rundir.STATUS).write_text(json.dumps({**status, "pid": pid}))
    (run_dir / rundir.METRICS).write_text("".join(f'{{"step": {step}, "loss": 0.5}}\n' for step in (1, 2, 3)))
    if checkpoint is not None:
        folder = rundir.checkpoints_dir(run_dir) / f"{rundir.CHECKPOINT_PREFIX}{checkpoint}"
        folder.mkdir(parents=True)
        (folder / rundir.TRAINER_STATE).write_text("{}")
    return run_dir


def test_every_method_can_resume():
    """PPO too, since it runs on the lab's own trainer (tests/test_ppo_trainer.py stops and resumes one)."""
    assert [name for name in method_names() if not get_method(name).resumable] == []


def test_a_method_that_cannot_resume_is_refused_in_one_line(tiny, monkeypatch):
    from dataclasses import replace

    from alignlab.methods import base

    monkeypatch.setitem(base._REGISTRY, "dpo", replace(get_method("dpo"), resumable=False))
    with pytest.raises(AlignLabError, match=re.escape("dpo run, and DPO") + ".* cannot resume from a checkpoint"):
        runner.resume(fake_run(tiny, "r"))


@pytest.mark.parametrize("case, expected", [
    (dict(state="finished"), "already finished all its steps"),
    (dict(state="running", pid=os.getpid()), "is still training (pid"),
    (dict(checkpoint=None), "has no checkpoint to continue from"),
])
def test_a_run_that_cannot_resume_is_refused_in_one_line_and_left_as_it_was(tiny, capsys, case, expected):
    run_dir = fake_run(tiny, "r", **case)
    before = {path.name: path.read_bytes() for path in run_dir.iterdir() if path.is_file()}
    assert cli.main(["train", "--resume", str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: resume: r ") and expected in err and err.count("\n") == 1, err
    with pytest.raises(AlignLabError, match=re.escape(expected)):
        runner.resume(run_dir)
    assert {path.name: path.read_bytes() for path in run_dir.iterdir() if path.is_file()} == before


def test_resume_refuses_flags_that_would_change_the_run(tiny, capsys):
    run_dir = fake_run(tiny, "r")
    assert cli.main(["train", "--resume", str(run_dir), "--beta", "0.3", "--max-steps", "9"]) == 2
    assert capsys.readouterr().err == "error: resume: a resumed run keeps the config it started with; drop " \
                                      "--max-steps, --beta\n"
    assert cli.main(["train", "--resume", "no-such-run", "--output-dir", tiny["output_dir"]]) == 2
    assert "no run 'no-such-run'" in capsys.readouterr().err


# --- the run directory --------------------------------------------------------------------------------------
def test_the_latest_complete_checkpoint_is_the_one_resumed_from(tmp_path):
    assert rundir.latest_checkpoint(tmp_path) is None
    for step, complete in ((2, True), (10, True), (12, False)):  # 12: the process died while writing it
        folder = rundir.checkpoints_dir(tmp_path) / f"{rundir.CHECKPOINT_PREFIX}{step}"
        folder.mkdir(parents=True)
        if complete:
            (folder / rundir.TRAINER_STATE).write_text("{}")
    (rundir.checkpoints_dir(tmp_path) / f"{rundir.CHECKPOINT_PREFIX}x").mkdir()
    assert rundir.latest_checkpoint(tmp_path) == (rundir.checkpoints_dir(tmp_path) / "checkpoint-10", 10)


def test_rewind_drops_what_comes_after_the_checkpoint(tmp_path):
    run_dir = tmp_path
    (run_dir / rundir.METRICS).write_text('{"step": 0, "probe/reward": 0.1}\n{"step": 1, "loss": 0.7}\nnot json\n'
                                          '{"step": 2, "loss": 0.6}\n{"step": 3, "loss": 0.5}\n{"step": 4, "lo')
    rundir.append_probe_samples(run_dir, 0, [{"reward": 0.1}])
    rundir.append_probe_samples(run_dir, 4, [{"reward": 0.9}])
    rundir.write_error(run_dir, "Traceback ...")
    kept = rundir.rewind(run_dir, 2)
    assert [row["step"] for row in kept] == [0, 1, 2]
    assert rundir.read_metrics(run_dir)[0] == kept
    assert rundir.read_probe_samples(run_dir) == [{"step": 0, "reward": 0.1}]
    assert rundir.read_error(run_dir) == ""


# --- the Resume buttons ------------------------------------------------------------------------------------
def test_the_app_resumes_a_killed_run_from_the_runs_tab(tiny):
    """The Runs tab's Resume queues a worker (``train --resume``); the Train tab's job follows the run once the
    worker has taken it over, so a row the killed run logged after its checkpoint is never shown."""
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    from alignlab.ui.gradio.app import create_app
    from alignlab.ui.gradio.server import serve

    handle = stopped_run(RunConfig(**dict(tiny, max_steps=4, probe_every=0, save_every=0)), 2)
    with open(handle.run_dir / rundir.METRICS, "a", encoding="utf-8") as metrics:  # logged, then killed
        metrics.write('{"step": 3, "time": 1.0, "loss": 99.0}\n')
    demo = create_app(tiny["output_dir"])
    _, url, _ = serve(demo, port=None, block=False)
    try:
        client = Client(url, verbose=False)
        client.predict(api_name="/list_runs")  # the session's run pickers learn the run ids
        assert "continues after step 2" in client.predict(handle.run_id, api_name="/resume_run")
        with pytest.raises(AppError, match="already queued to resume or resuming"):
            client.predict(handle.run_id, api_name="/resume_run")
        deadline, seen = time.time() + 240, []
        while time.time() < deadline:
            status = client.predict(api_name="/job_status")
            seen.append([row["step"] for row in status["rows"] if "loss" in row])
            if status["state"] not in ("queued", "starting", "running"):
                break
            time.sleep(0.2)
        assert status["state"] == "finished", status
        assert status["run_id"] == handle.run_id and seen[-1] == [1, 2, 3, 4]
        assert all(steps == sorted(set(steps)) for steps in seen)  # never step 3 twice, never the killed row
        assert logged_steps(handle.run_dir) == [1, 2, 3, 4] and 99.0 not in [r.get("loss") for r in status["rows"]]
        with pytest.raises(AppError, match="already finished"):
            client.predict(handle.run_id, api_name="/resume_run")
    finally:
        demo.services.jobs.close()
        demo.close()


def test_the_notebook_lab_resumes_the_run_selected_in_its_runs_tab(tiny):
    from alignlab.ui.notebook import Lab

    handle = stopped_run(RunConfig(**dict(tiny, max_steps=4, probe_every=0, save_every=0)), 2)
    lab = Lab(method="dpo", model="tiny-random", output_dir=tiny["output_dir"])
    lab.runs.refresh()
    lab.resume_button.click()
    assert lab.run is None and "select the one run" in lab.resume_note.value
    lab.runs.picker.value = (handle.run_id,)
    lab.resume_button.click()
    resumed = lab.run
    assert resumed is not None and resumed.run_dir == handle.run_dir, lab.resume_note.value
    assert lab.tabs.selected_index == 0
    assert lab.wait(240) == "finished", resumed.error
    wait_for(lambda: threads_ended(f"progress-{handle.run_id}", f"figures-{handle.run_id}"), 30,
             what="the progress bar and the figures drawing the run's end")
    assert list(lab.live.line("Loss", "loss").x) == [1, 2, 3, 4]
    assert logged_steps(handle.run_dir) == [1, 2, 3, 4]
    lab.resume_button.click()  # the run is finished now
    assert lab.run is resumed and "already finished" in lab.resume_note.value
