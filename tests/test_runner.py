"""Runs on the tiny-random model: stop cleanly, fail loudly (every method trains: tests/test_every_method.py)."""

import json
from pathlib import Path

import pytest

from alignlab.config import RunConfig
from alignlab.errors import AlignLabError
from alignlab.rundir import list_runs
from alignlab.runner import start


def test_dpo_logs_trl_metric_names_and_loss_type(tiny):
    handle = start(RunConfig.from_dict({"method": "dpo", "loss_type": "ipo", "beta": 0.5, **tiny}))
    assert handle.wait(300) == "finished", handle.error
    keys = set().union(*(event["metrics"] for event in handle.history))
    assert {"loss", "rewards/margins", "rewards/accuracies"} <= keys
    saved = json.loads((handle.run_dir / "config.json").read_text())
    assert saved["method_args"]["loss_type"] == "ipo"


def test_subscribers_see_every_step_and_stop_is_honoured(tiny):
    config = RunConfig.from_dict({"method": "dpo", **{**tiny, "max_steps": 200}})
    handle = start(config)
    seen = []

    def on_event(event):
        seen.append(event["step"])
        if event["step"] >= 2:
            handle.stop()

    handle.subscribe(on_event)
    assert handle.wait(300) == "stopped"
    assert 2 <= max(seen) < 200
    status = json.loads((handle.run_dir / "status.json").read_text())
    assert status["state"] == "stopped"
    assert (handle.run_dir / "model" / "adapter_config.json").exists()  # nothing lost


def test_failed_run_records_its_error(tiny):
    from alignlab.rewards import register_reward

    def unreachable(prompts, completions):
        raise ConnectionError("the scoring service at no_such_host is unreachable")

    register_reward("unreachable-scorer", unreachable)  # fails once training samples, after the run folder exists
    handle = start(RunConfig.from_dict({"method": "grpo", **tiny, "num_generations": 2, "probe_every": 0,
                                        "reward": "unreachable-scorer"}))
    assert handle.wait(300) == "failed"
    status = json.loads((handle.run_dir / "status.json").read_text())
    assert status["state"] == "failed" and "no_such_host" in status["error"]
    assert (handle.run_dir / "error.log").exists()
    assert [r["state"] for r in list_runs(tiny["output_dir"])] == ["failed"]


def test_bad_input_leaves_no_run_directory(tiny, tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "only a prompt"}\n')
    with pytest.raises(AlignLabError, match="preference format"):
        start(RunConfig.from_dict({"method": "dpo", **{**tiny, "dataset": str(prompts)}}))
    with pytest.raises(AlignLabError, match="model"):
        start(RunConfig.from_dict({"method": "dpo", **{**tiny, "model": "no/such-model"}}))
    assert not Path(tiny["output_dir"]).exists()


def test_a_run_whose_process_died_reads_as_failed(tiny):
    import subprocess
    import sys

    handle = start(RunConfig.from_dict({"method": "dpo", **tiny}), background=False)
    status_path = handle.run_dir / "status.json"
    assert json.loads(status_path.read_text())["pid"]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    status = json.loads(status_path.read_text())
    status_path.write_text(json.dumps({**status, "state": "running", "pid": int(dead.stdout)}))  # as if SIGKILLed
    [run] = list_runs(tiny["output_dir"])
    assert run["state"] == "failed" and "ended without finishing" in run["error"]
    status_path.write_text(json.dumps({**status, "state": "running"}))  # this process is alive: still running
    assert list_runs(tiny["output_dir"])[0]["state"] == "running"
