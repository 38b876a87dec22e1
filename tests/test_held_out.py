"""Held out means never trained on: a seeded split (or an eval dataset) chosen when a run starts, recorded in its run
directory, never seen by the trainer, and what samples, the probe, eval, what changed, the report and the card read.

Real tiny-random runs on small JSONL datasets; the trainer's own calls to a recording reward show which prompts it
trained on.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alignlab import rundir
from alignlab.changes import run_changes
from alignlab.cli import main
from alignlab.config import RunConfig
from alignlab.data import load_rows, prompt_key
from alignlab.errors import AlignLabError
from alignlab.evaluate import compare_run
from alignlab.held_out import HELD_OUT_PROMPTS, choose_held_out, held_out_of_run
from alignlab.model_card import card_text
from alignlab.rewards import register_reward
from alignlab.runner import resume, start
from alignlab.task import BUILTIN_TASK, task_prompts

pytestmark = pytest.mark.timeout(300)
TINY = dict(model="tiny-random", max_steps=2, batch_size=2, max_length=48, max_completion_length=8)


def write_pairs(path: Path, prompts: int, pairs_each: int = 2) -> Path:
    """``prompts`` distinct review prompts, ``pairs_each`` preference pairs each."""
    path.write_text("".join(json.dumps({"prompt": f"Review {i}: the film", "chosen": f" was wonderful ({j}).",
                                        "rejected": f" was awful ({j})."}) + "\n"
                            for i in range(prompts) for j in range(pairs_each)))
    return path


def keys(prompts) -> set[str]:
    return {prompt_key(prompt) for prompt in prompts}


def test_a_user_dataset_holds_out_a_seeded_fifth_of_its_prompts(tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl", 20)
    config = RunConfig(dataset=str(data), seed=3, output_dir=str(tmp_path / "runs"))
    held_out = choose_held_out(config)
    assert held_out.kind == "split" and held_out.of == 20 and len(held_out.prompts) == 4  # 20% of 20
    assert choose_held_out(config).prompts == held_out.prompts  # the same seed, the same prompts
    assert choose_held_out(RunConfig(dataset=str(data), seed=4, output_dir=str(tmp_path))).prompts != held_out.prompts
    assert held_out.prompts != [f"Review {i}: the film" for i in range(16, 20)]  # drawn, not the file's last rows
    large = write_pairs(tmp_path / "large.jsonl", 500, 1)
    assert len(choose_held_out(RunConfig(dataset=str(large), output_dir=str(tmp_path))).prompts) == HELD_OUT_PROMPTS
    single = write_pairs(tmp_path / "single.jsonl", 1, 3)
    with pytest.raises(AlignLabError, match=r"^dataset: 'single.jsonl' has 1 distinct prompt\(s\), expected at least "
                                            r"2 .* \(or set eval_dataset"):
        choose_held_out(RunConfig(dataset=str(single), output_dir=str(tmp_path)))


def test_the_built_in_task_keeps_its_own_held_out_file_split(tmp_path):
    held_out = choose_held_out(RunConfig(output_dir=str(tmp_path)))
    assert held_out.kind == "task" and held_out.prompts == task_prompts("eval") and len(held_out.prompts) == 100
    trained = load_rows(BUILTIN_TASK, "preference") + load_rows(BUILTIN_TASK, "prompt")
    assert len(task_prompts("train")) == 300 and not keys(row["prompt"] for row in trained) & keys(held_out.prompts)


def test_grpo_never_samples_a_held_out_prompt_and_the_run_reads_the_recorded_split(tmp_path):
    """The reward records every prompt it scores: while training (GRPO's rollouts) none is held out; after, the
    samples score exactly the recorded held-out prompts; eval, what changed and the card read the recorded file."""
    scored: list[list] = []

    def recording(prompts, completions):
        scored.append(list(prompts))
        return [float(len(completion)) for completion in completions]

    register_reward("recording-length", recording)
    data = write_pairs(tmp_path / "pairs.jsonl", 10, 1)
    config = RunConfig.from_dict({"method": "grpo", **TINY, "dataset": str(data), "num_generations": 2,
                                  "reward": "recording-length", "probe_every": 0, "output_dir": str(tmp_path / "r")})
    handle = start(config, background=False)
    assert handle.state == "finished", handle.error
    recorded = json.loads((handle.run_dir / rundir.HELD_OUT).read_text())
    assert recorded["kind"] == "split" and recorded["seed"] == 42 and len(recorded["prompts"]) == 2
    held_out = held_out_of_run(handle.run_dir)
    assert held_out.prompts == recorded["prompts"] == handle.held_out.prompts
    *training, reference_samples, aligned_samples = scored
    assert reference_samples == aligned_samples == held_out.prompts  # the end-of-run samples
    trained_on = keys(prompt for call in training for prompt in call)
    assert training and not trained_on & keys(held_out.prompts)
    assert trained_on <= keys(f"Review {i}: the film" for i in range(10))
    assert [row["prompt"] for row in rundir.read_samples(handle.run_dir)] == held_out.prompts

    # Every later reader takes the recorded prompts, not a split made again: edit the record, they follow it.
    (handle.run_dir / rundir.HELD_OUT).write_text(json.dumps({**recorded, "prompts": recorded["prompts"][:1]}))
    assert compare_run(handle.run_dir, samples_per_prompt=1, with_fluency=False).prompts == 1
    assert [row["prompt"] for row in run_changes(handle.run_dir)] == recorded["prompts"][:1]
    card = card_text(handle.run_dir)
    assert "**Held-out prompts**: 1 of the dataset's 10 distinct prompts, drawn with seed 42" in card
    assert "never trained on" in card


def test_dpo_trains_without_held_out_rows_probes_them_and_a_resume_keeps_the_split(tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl", 10)
    config = RunConfig(**{**TINY, "max_steps": 4, "probe_every": 2, "save_every": 0}, dataset=str(data),
                       output_dir=str(tmp_path / "runs"))
    handle = start(config)
    handle.subscribe(lambda event: handle.stop() if "loss" in event["metrics"] and event["step"] >= 1 else None)
    assert handle.wait(240) == "stopped", handle.error
    recorded = (handle.run_dir / rundir.HELD_OUT).read_text()
    held_out = held_out_of_run(handle.run_dir)
    assert held_out.left_out_rows == 2 * len(held_out.prompts) == 4  # two pairs a prompt, none trained on
    probed = {sample["prompt"] for sample in rundir.read_probe_samples(handle.run_dir)}
    assert probed and keys(probed) <= keys(held_out.prompts)

    data.write_text("".join(reversed(data.read_text().splitlines(keepends=True))))  # the file changes meanwhile
    assert choose_held_out(config).prompts != held_out.prompts  # a split made again would differ
    resumed = resume(handle.run_dir)
    assert resumed.wait(240) == "finished", resumed.error
    assert (handle.run_dir / rundir.HELD_OUT).read_text() == recorded and resumed.held_out.prompts == held_out.prompts
    probed = {sample["prompt"] for sample in rundir.read_probe_samples(handle.run_dir)}
    assert keys(probed) <= keys(held_out.prompts)
    assert [row["prompt"] for row in rundir.read_samples(handle.run_dir)] == held_out.prompts


def test_an_eval_dataset_is_held_out_and_its_prompts_left_out_of_training(tmp_path, capsys):
    data = write_pairs(tmp_path / "pairs.jsonl", 6)
    evaluation = tmp_path / "eval.jsonl"
    evaluation.write_text("".join(json.dumps({"prompt": prompt}) + "\n"
                                  for prompt in ("Review 0: the film", "A new film", "A new film")))
    runs = tmp_path / "runs"
    flags = ["--dataset", str(data), "--eval-dataset", str(evaluation), "--output-dir", str(runs), "--probe-every", "0"]
    flags += [item for key, value in TINY.items() for item in ("--" + key.replace("_", "-"), str(value))]
    assert main(["train", "--method", "dpo", *flags, "--run-id", "with-eval", "--quiet"]) == 0
    held_out = held_out_of_run(runs / "with-eval")
    assert (held_out.kind, held_out.prompts, held_out.left_out_rows) == ("eval_dataset", ["Review 0: the film",
                                                                                         "A new film"], 2)
    assert rundir.read_config(runs / "with-eval")["eval_dataset"] == str(evaluation)
    assert "the 2 prompts of the eval dataset `eval.jsonl`" in card_text(runs / "with-eval")
    capsys.readouterr()

    flags[flags.index(str(evaluation))] = str(data)  # every training prompt held out: nothing left to train on
    assert main(["train", "--method", "dpo", *flags, "--run-id", "all-held-out"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: eval_dataset: every training row's prompt is among the 6 ")
    assert not (runs / "all-held-out").exists()
    assert main(["train", "--method", "dpo", *flags[:2], "--eval-dataset", "no-such.jsonl", *flags[4:]]) == 2
    assert capsys.readouterr().err.startswith("error: eval_dataset: got 'no-such.jsonl', expected")


def test_a_run_without_a_record_of_a_user_dataset_is_not_measured_on_guessed_prompts(tmp_path):
    data = write_pairs(tmp_path / "pairs.jsonl", 10)
    handle = start(RunConfig(**TINY, dataset=str(data), probe_every=0, output_dir=str(tmp_path / "runs")),
                   background=False)
    assert handle.state == "finished", handle.error
    (handle.run_dir / rundir.HELD_OUT).unlink()  # as a run made before runs recorded their held-out prompts
    with pytest.raises(AlignLabError, match=f"has no {rundir.HELD_OUT} .* every prompt of its dataset may have been "
                                            "trained on"):
        compare_run(handle.run_dir, samples_per_prompt=1, with_fluency=False)
    assert "**Held-out prompts**: none known" in card_text(handle.run_dir)
