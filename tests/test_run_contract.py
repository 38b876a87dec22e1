"""The runner's contract with the training code: a typed run (TrainingRun), what preflight loaded handed on (not
loaded twice), a config checked once, and the multi-process launch in the runner."""

import json
from types import SimpleNamespace

import pytest

from alignlab import data, rundir, runner
from alignlab.config import RunConfig
from alignlab.errors import AlignLabWarning
from alignlab.run_contract import Preflight, TrainingRun
from alignlab.runner import RunHandle, launched_processes, preflight, start
from alignlab.training import EventCallback


def test_a_run_handle_is_a_training_run_and_reports_through_it(tiny, tmp_path):
    run_dir = rundir.create(tmp_path / "r", {"run_id": "r", **RunConfig(**tiny).to_dict()})
    handle = RunHandle(RunConfig(**tiny), "r", run_dir)
    assert isinstance(handle, TrainingRun)
    state = SimpleNamespace(max_steps=7, is_world_process_zero=True, global_step=0)
    args = SimpleNamespace(world_size=1, per_device_train_batch_size=2, gradient_accumulation_steps=1)
    EventCallback(handle).on_train_begin(args, state, None)
    status = rundir.read_status(run_dir)
    assert (status["state"], status["total_steps"], status["world_size"], status["global_batch_size"]) == (
        "running", 7, 1, 2)
    handle.live_model("the model", "its tokenizer")
    assert (handle.model, handle.tokenizer) == ("the model", "its tokenizer")


def test_preflight_hands_on_the_rows_left_to_train_on_the_reward_and_the_tokenizer(tiny):
    checked = preflight(RunConfig(**tiny))
    assert isinstance(checked, Preflight)
    held = set(checked.held_out.prompts)
    assert checked.rows and not any(row["prompt"] in held for row in checked.rows)
    assert checked.reward.name == "sentiment" and checked.tokenizer is not None
    assert checked.held_out.left_out_rows == 12 - len(checked.rows)


def test_a_run_reads_its_data_once(tiny, tmp_path, monkeypatch):
    """The check before the run and the training share one read of the data: its warning (a pair whose chosen
    equals its rejected) is given once."""
    rows = [{"prompt": f"Review {i}: the film", "chosen": " was good.", "rejected": " was bad."} for i in range(12)]
    rows[3]["rejected"] = rows[3]["chosen"]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    reads = []
    read_rows = data.load_rows
    monkeypatch.setattr(runner, "load_rows", lambda *args, **kwargs: reads.append(args) or read_rows(*args, **kwargs))
    with pytest.warns(AlignLabWarning, match="chosen == rejected") as caught:
        handle = start(RunConfig(**{**tiny, "dataset": str(path), "max_steps": 1, "probe_every": 0}),
                       background=False)
    assert handle.state == "finished", handle.error
    assert len(reads) == 1 and len([w for w in caught if "chosen == rejected" in str(w.message)]) == 1
    assert rundir.read_trained_on(handle.run_dir)["rows"] == len(handle.preflight.rows)


def test_a_config_is_checked_once_unless_it_changed(tiny, monkeypatch):
    config = RunConfig(**tiny)
    checks = []
    validate = RunConfig.validate
    monkeypatch.setattr(RunConfig, "validate", lambda self: checks.append(1) or validate(self))
    assert config.revalidate() is config and checks == []  # made (and checked) once: not again
    config.method_args["beta"] = 0.2  # changed in place, after it was made
    config.revalidate()
    assert checks == [1]
    config.max_steps = 3
    config.revalidate()
    config.revalidate()
    assert checks == [1, 1]


def test_outside_a_launch_there_is_one_process(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert launched_processes() == (1, 0)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert launched_processes() == (2, 1)


def test_the_status_names_the_phase_a_run_is_in(tiny, monkeypatch, tmp_path):
    """Between training steps the status says what runs (what both UIs show), and a finished run names none."""
    from alignlab import reference_cache

    monkeypatch.setattr(reference_cache, "cache_dir", lambda: tmp_path / "cache")  # cold: nothing cached
    phases = []
    set_phase = RunHandle.set_phase

    def recording(self, phase):
        phases.append((phase, None))
        set_phase(self, phase)
        assert rundir.read_status(self.run_dir)["phase"] == phase  # saved with the status, at once

    monkeypatch.setattr(RunHandle, "set_phase", recording)
    handle = start(RunConfig(**{**tiny, "max_steps": 2, "probe_every": 1}), background=False)
    assert handle.state == "finished", handle.error
    named = [phase for phase, _ in phases]
    assert named[0] == "building the trainer: tokenizing the data"
    assert named[1] == "step 1 under way: its rollouts or batch and first update"  # no pre-pass, no probe first
    held_out = len(handle.held_out.prompts)
    deferred = (f"probe at step 0, of the reference (deferred so that training could start): sampling {held_out} "
                "held-out prompts")  # a cold cache: step 1 first, then the reference's probe, then step 1's
    assert named.index(None) < named.index(deferred) < named.index(f"probe at step 1: sampling {held_out} held-out "
                                                                    "prompts")
    assert named[-2:] == ["saving the model", f"sampling reference vs aligned on {held_out} held-out prompts"]
    assert rundir.read_status(handle.run_dir)["phase"] is None and handle.status["phase"] is None
    assert len(list((tmp_path / "cache" / "reference-logps").glob("*.json"))) == 1  # filled by the steps
