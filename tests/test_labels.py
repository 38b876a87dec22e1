"""Run labels: method, KL knob and value, steps and final probe reward before the run id, from list_runs."""

import json
from pathlib import Path

from alignlab import rundir
from alignlab.config import RunConfig
from alignlab.labels import run_label


def make_run(output_dir: Path, run_id: str, state: str, rows: list[dict], **settings) -> Path:
    """A run directory as the runner leaves it (without training): config, status and metric rows."""
    config = RunConfig.from_dict({"model": "tiny-random", **settings})
    run_dir = rundir.create(output_dir / run_id, {"run_id": run_id, **config.to_dict()})
    rundir.write_status(run_dir, {"run_id": run_id, "state": state, "step": rows[-1]["step"] if rows else 0})
    (run_dir / rundir.METRICS).write_text("".join(json.dumps(row) + "\n" for row in rows))
    return run_dir


def test_labels_name_method_kl_knob_steps_and_final_probe_reward(tmp_path):
    runs = tmp_path / "runs"
    make_run(runs, "20250101-120000-dpo-ab12", "finished",
             [{"step": 0, "probe/reward": -0.1}, {"step": 6, "probe/reward": 0.4}, {"step": 12, "loss": 0.5},
              {"step": 12, "probe/reward": 0.8214}], method="dpo", beta=0.3)
    make_run(runs, "20250101-120100-ppo-cd34", "stopped", [{"step": 1, "objective/kl": 0.2}], method="ppo",
             kl_coef=0.05)
    make_run(runs, "20250101-120200-sft-ef56", "failed", [{"step": 3, "loss": 1.0}], method="sft")
    labels = {run["run_id"]: run_label(run) for run in rundir.list_runs(runs)}
    assert labels == {
        "20250101-120000-dpo-ab12": "dpo · β 0.3 · 12 steps · reward +0.82 — 20250101-120000-dpo-ab12",
        "20250101-120100-ppo-cd34": "ppo · kl_coef 0.05 · 1 step — 20250101-120100-ppo-cd34",  # no probe: no reward
        "20250101-120200-sft-ef56": "sft · 3 steps — 20250101-120200-sft-ef56",  # SFT has no pull to a reference
    }
    stopped = rundir.read_run(runs / "20250101-120100-ppo-cd34")
    assert run_label(stopped, show_state=True) == f"{labels['20250101-120100-ppo-cd34']} (stopped)"


def test_an_unreadable_run_is_labelled_with_the_file_that_cannot_be_read(tmp_path):
    run_dir = make_run(tmp_path / "runs", "a-damaged", "finished", [{"step": 1, "loss": 0.5}], method="dpo")
    (run_dir / rundir.STATUS).write_bytes(b'{"state": "fini')
    (run,) = rundir.list_runs(tmp_path / "runs")
    assert run_label(run) == run_label(run, show_state=True) == "unreadable: status.json — a-damaged"
