"""The benchmark's arithmetic, and one real quick run of two of its sections on tiny-random."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.summary import achieved, overhead, step_flops

SHAPE = {"linear_macs_per_token": 1000, "lora_macs_per_token": 10, "layers": 2, "attention_width": 4}


def test_step_flops_counts_forward_backward_and_reference():
    tokens = 160  # 16 sequences (8 pairs) of 10 tokens: attention term 4·2·4·10 = 320 per token forward
    forward = 2 * 1000 + 320
    full_no_ref = step_flops(SHAPE, tokens, lora=False, reference=False)
    assert full_no_ref == pytest.approx(tokens * 3 * forward)  # the classic 6·N per token, plus attention
    assert step_flops(SHAPE, tokens, lora=False) == pytest.approx(tokens * 4 * forward)
    lora = step_flops(SHAPE, tokens)  # frozen weights: activation gradients only, adapters in full
    assert lora == pytest.approx(tokens * (2 * forward + 3 * 20 + forward))


def test_achieved_rate_pairs_each_step_time_with_its_own_tokens():
    run = {"step_times": [2.0, 1.0, 1.0, 1.0], "tokens_per_step": [10.0, 160.0, 160.0, 160.0, 160.0]}
    assert achieved(SHAPE, run, lora=False, reference=False) == pytest.approx(step_flops(SHAPE, 160, False, False))


def test_overhead_ratio_uses_medians_of_steady_steps():
    rows = [{"label": "bare-trl", "state": "finished", "step_times": [9.0, 1.0, 1.0, 1.2], "tokens_per_step": [1, 2]},
            {"label": "alignlab", "state": "finished", "step_times": [5.0, 1.1, 1.1, 1.0], "tokens_per_step": [1, 2]}]
    result = overhead(rows)
    assert result["runner_over_bare"] == pytest.approx(1.1) and result["same_tokens"]


def run_quick(module: str, tmp_path, *args: str) -> None:
    """Run ``python -m <module> --quick ARGS`` from the project root, writing under ``tmp_path``; it must succeed."""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-m", module, "--quick", *args, "--out", str(tmp_path),
                           "--work", str(tmp_path / "work")], cwd=root, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]


def test_quick_bench_runs_and_writes_its_table(tmp_path):
    run_quick("bench", tmp_path, "--sections", "overhead", "chat")
    results = json.loads((tmp_path / "results.json").read_text())
    o = results["summary"]["overhead"]
    assert o["same_tokens"] and o["config_differences"] == {}  # the bare script really runs the same config
    assert 0.5 < o["runner_over_bare"] < 2.0
    assert results["summary"]["chat"]["shares_weights"] and results["summary"]["chat"]["pair_tokens_per_s"] > 0
    assert "## 1. Runner overhead" in (tmp_path / "RESULTS.md").read_text()


def test_alignment_bench_quick_mode_times_and_evaluates_snapshots(tmp_path):
    run_quick("bench.alignment", tmp_path, "--threads", "1", "--warm")
    results = json.loads((tmp_path / "alignment-quick.json").read_text())
    cold, warm = results["runs"]
    assert (cold["cache"], warm["cache"]) == ("cold", "warm") and cold["state"] == warm["state"] == "finished"
    assert [s["step"] for s in cold["snapshots"]] == [1, 2] and all("gain_se" in s for s in cold["snapshots"])
    assert cold["final"]["prompts"] == 4 and "perplexity" in cold["final"]["aligned_fluency"]
    assert "Time to visible alignment" in (tmp_path / "ALIGNMENT_QUICK.md").read_text()


def test_frontier_points_average_seeds_and_reuse_runs_measured_at_the_same_settings(tmp_path):
    from experiments.frontier import QUICK, matches, spread

    mean, seed_se, eval_se = spread([0.5, 0.3], [0.04, 0.03])
    assert mean == pytest.approx(0.4) and seed_se == pytest.approx(0.1) and eval_se == pytest.approx(0.025)
    assert spread([0.5], [0.04]) == (0.5, 0.04, 0.04)  # one seed: the evaluation's own error
    run = {"method": "dpo", "seed": 42, "state": "finished", "final": {"gain": 0.1},
           "config": {**QUICK.config("dpo", 0.1, 42), "output_dir": "elsewhere", "save_every": None}}
    assert matches(run, QUICK, "dpo", 0.1, 42)
    recorded_before_owners = {key: value for key, value in run["config"].items() if key != "owner"}
    assert matches({**run, "config": recorded_before_owners}, QUICK, "dpo", 0.1, 42)  # not retrained for a name
    assert matches({**run, "method": 'dpo {"beta": 0.1}'}, QUICK, "dpo", 0.1, 42)  # the bench's --overrides label
    assert not matches({**run, "method": 'dpo {"loss_type": "ipo"}'}, QUICK, "dpo", 0.1, 42)  # another loss
    assert not matches(run, QUICK, "dpo", 1.0, 42) and not matches(run, QUICK, "dpo", 0.1, 7)
    assert not matches({**run, "config": {**run["config"], "learning_rate": 0.5}}, QUICK, "dpo", 0.1, 42)
    from experiments.frontier import reusable

    other = {**run, "run_dir": "runs/b", "seed": 7}
    (tmp_path / "bench.json").write_text(json.dumps({"runs": [{**run, "run_dir": "runs/a"}]}))
    (tmp_path / "frontier.json").write_text(json.dumps({"runs": [{**run, "run_dir": "runs/a"}, other]}))
    reused = reusable([tmp_path / "bench.json", tmp_path / "frontier.json"])
    assert [r["run_dir"] for r in reused] == ["runs/a", "runs/b"]  # the run both files list, once


def test_frontier_reads_kept_runs_latest_per_seed_on_one_machine_with_the_instruction_change(tmp_path):
    from experiments.frontier import QUICK, main

    def kept(seed, gain, follow, started, machine="AMD EPYC, 2 CPUs", run_id=None):
        final = {"gain": gain, "gain_se": 0.04, "kl": 5.0 + seed / 10, "kl_se": 0.5, "win_rate": 0.8, "prompts": 4,
                 "reference_follow": 0.3, "aligned_follow": 0.3 + follow, "follow_change": follow,
                 "follow_change_se": 0.05}
        return {"run_id": run_id or f"dpo-{seed}-{started}", "started": started, "method": "dpo", "seed": seed,
                "state": "finished", "machine": machine, "threads": 1, "final": final,
                "config": QUICK.config("dpo", 0.1, seed)}

    runs = [kept(42, 0.9, -0.5, "2026-12-01 10:00:00"),  # superseded by the same seed's later run
            kept(42, 0.5, 0.1, "2026-12-02 10:00:00"), kept(7, 0.3, -0.1, "2026-12-02 11:00:00"),
            kept(1, 0.1, 0.0, "2026-12-03 10:00:00", machine="Intel Xeon, 2 CPUs")]  # another CPU: left out
    (tmp_path / "eval_runs.json").write_text(json.dumps({"runs": runs}))
    main(["--quick", "--no-train", "--methods", "dpo", "--seeds", "42", "7", "1", "--machine", "AMD EPYC",
          "--reuse", str(tmp_path / "eval_runs.json"), "--out", str(tmp_path), "--work", str(tmp_path)])
    point = json.loads((tmp_path / "frontier.json").read_text())["points"][0]
    assert (point["value"], point["seeds"]) == (0.1, [42, 7])
    assert point["gain"] == pytest.approx(0.4) and point["gain_se"] == pytest.approx(0.1)
    assert point["follow_change"] == pytest.approx(0.0) and point["follow_change_se"] == pytest.approx(0.1)
    text = (tmp_path / "frontier.md").read_text()
    assert "| +0 ± 10 |" in text and "s42: +0.500, 9.2, +10; s7: +0.300, 5.7, -10" in text
    assert "--machine 'AMD EPYC'" in text and "AMD EPYC, 2 CPUs at 1 thread (2 runs)" in text
    assert "dpo beta=0.1 seed 1" in text  # the Xeon seed is not this machine's: said missing
    from experiments.frontier import matches

    paper = {**runs[1], "config": QUICK.config("dpo-alpha0", 0.1, 42)}  # a grid line that fixes another knob
    assert paper["config"]["sft_weight"] == 0.0 and paper["config"]["method"] == "dpo"
    assert matches(paper, QUICK, "dpo-alpha0", 0.1, 42) and not matches(paper, QUICK, "dpo", 0.1, 42)
    assert not matches(runs[1], QUICK, "dpo-alpha0", 0.1, 42)


def test_frontier_quick_sweep_trains_evaluates_and_plots_each_point(tmp_path):
    run_quick("experiments.frontier", tmp_path, "--methods", "dpo")
    result = json.loads((tmp_path / "frontier.json").read_text())
    assert [(p["method"], p["value"], p["seeds"]) for p in result["points"]] == [("dpo", 0.1, [42]), ("dpo", 1.0, [42])]
    # tiny-random's gibberish scores 0 VADER either side, so the gain is 0; the probe's KL has a real spread
    assert all(p["gain_se"] >= 0 and p["kl_se"] > 0 and abs(p["kl"]) < 10 for p in result["points"])
    assert (tmp_path / "frontier.png").stat().st_size > 0
    assert "| dpo | beta=1 | 1 |" in (tmp_path / "frontier.md").read_text()


def test_frontier_without_training_writes_what_it_has_and_names_every_point_not_measured(tmp_path):
    from experiments.frontier import QUICK, main

    code = main(["--quick", "--no-train", "--methods", "dpo", "--out", str(tmp_path), "--work", str(tmp_path)])
    text = (tmp_path / "frontier.md").read_text()
    assert code == 1 and json.loads((tmp_path / "frontier.json").read_text())["points"] == []
    assert all(f"dpo beta={value:g} seed 42" in text for value in QUICK.grid["dpo"])  # each one said missing


def test_sampling_bound_is_memory_bound_at_batch_one_and_compute_bound_at_large_batches():
    from bench.sampling import bound_tokens_per_s

    shape = {"linear_macs_per_token": 1e6, "weight_bytes": 4e6, "kv_bytes_per_position": 0, "layers": 1,
             "attention_width": 0}
    # batch 1: every step reads 4 MB at 1 GB/s (4 ms) but computes 2 MFLOP at 1 GFLOP/s (2 ms): 250 tokens/s
    assert bound_tokens_per_s(shape, 1e9, 1e9, batch=1, prompt=1, tokens=10) == pytest.approx(250)
    # batch 100: 200 MFLOP a step (0.2 s) dominates; the prefill of 100 one-token prompts costs the same
    assert bound_tokens_per_s(shape, 1e9, 1e9, batch=100, prompt=1, tokens=10) == pytest.approx(500)


def test_quick_sampling_bench_times_both_paths_against_the_bound(tmp_path):
    run_quick("bench.sampling", tmp_path)
    results = json.loads((tmp_path / "results.json").read_text())
    batches = results["summary"]["sampling"]["batches"]
    assert list(batches) == ["1", "2", "8", "32"]
    assert all(row["generate"] > 0 and row["engine"] > 0 and row["bound"] > row["engine"] for row in batches.values())
    rollouts = results["summary"]["sampling"]["rollouts"]
    assert rollouts["rows"] == 32 and rollouts["group"] == 4 and rollouts["generate"] > 0 and rollouts["engine"] > 0
    assert "## 7. Sampling speed" in (tmp_path / "RESULTS.md").read_text()
    assert "Rollouts as the online trainers lay them out (32 rows" in (tmp_path / "RESULTS.md").read_text()


def test_the_learn_figures_file_is_what_the_bench_command_writes_from_the_alignment_results():
    """alignlab/measured.json changes only through ``python -m bench.learn_figures``: rerun it after the benchmark."""
    from alignlab.measured import MEASURED_FILE
    from bench.learn_figures import EVAL_RUNS, RESULTS, learn_figures

    assert learn_figures(json.loads(RESULTS.read_text(encoding="utf-8")),
                         json.loads(EVAL_RUNS.read_text(encoding="utf-8"))) == json.loads(
        MEASURED_FILE.read_text(encoding="utf-8"))


def test_learn_figures_keep_runs_at_todays_defaults_apart_from_other_settings(tmp_path):
    from alignlab.measured import measured_text
    from bench.learn_figures import learn_figures, main

    final = {"gain": 0.5, "gain_se": 0.04, "win_rate": 0.9, "kl": 12.0, "reward": "sentiment"}
    runs = [{"method": "orpo", "seed": 42, "threads": 1, "state": "finished", "steps": 12, "train_s": 270.0,
             "config": {"method": "orpo", "max_steps": 12, "beta": 1.0}, "final": final,
             "visible": {"step": 12, "seconds": 270.0, "at_end": True}},
            {"method": "orpo", "seed": 7, "threads": 1, "state": "finished", "config": {"method": "orpo", "beta": 0.1},
             "final": {**final, "gain": 0.1}},  # made when λ 0.1 was the default: a variant now
            {"method": "orpo (another trainer)", "seed": 42, "threads": 1, "state": "finished",
             "config": {"method": "orpo", "beta": 1.0}, "final": {**final, "gain": 0.2}},
            {"method": "orpo", "seed": 1, "threads": 1, "state": "failed", "config": {"method": "orpo"}}]
    results = tmp_path / "alignment.json"
    results.write_text(json.dumps({"runs": runs, "settings": {"prompts": 100, "gain": 0.3, "max_se": 0.05}}))
    out = tmp_path / "measured.json"
    assert main(["--results", str(results), "--runs", str(tmp_path / "none.json"), "--out", str(out)]) == 0
    figures = json.loads(out.read_text())
    orpo = figures["methods"]["orpo"]
    assert [run["seed"] for run in orpo["defaults"]] == [42]
    assert [run["label"] for run in orpo["variants"]] == ['orpo {"beta": 0.1}', "orpo (another trainer)"]
    text = measured_text("orpo", figures)
    assert text.startswith("after 12 steps, sentiment reward gain over the reference on 100 held-out prompts: seed 42 "
                           "(1 thread): +0.50 ± 0.04, wins on 90%, KL 12 nats, 270 s of training; visible")
    rloo = {**runs[0], "method": "rloo", "config": {"method": "rloo", "max_steps": 12}}
    before = learn_figures({"runs": [runs[0], rloo], "finished": "2026-11-23 18:48"})["methods"]  # pairs rebuilt after
    assert not before["orpo"]["defaults"] and before["orpo"]["variants"][0]["label"] == "orpo (previous pairs)"
    assert not before["rloo"]["defaults"]  # it learns from its own samples, drawn then on the fp32 forward
    assert before["rloo"]["variants"][0]["label"] == "rloo (fp32 sampling)"
    between = learn_figures({"runs": [runs[0], rloo], "finished": "2026-12-06 18:48"})["methods"]
    assert len(between["rloo"]["defaults"]) == 0 and len(between["orpo"]["defaults"]) == 1
    scored_k_times = learn_figures({"runs": [runs[0], rloo], "finished": "2026-12-07 18:48"})["methods"]
    assert not scored_k_times["rloo"]["defaults"]  # packed sampling, but each prompt of a group scored k times then
    assert scored_k_times["rloo"]["variants"][0]["label"] == "rloo (full-pass scoring)"
    after = learn_figures({"runs": [runs[0], rloo], "finished": "2026-12-08 09:00"})["methods"]
    assert len(after["rloo"]["defaults"]) == 1  # it samples the prompts only: the rebuilt pairs do not matter
    evaluated = [{**rloo, "machine": "AMD EPYC", "started": started} for started in
                 ("2026-12-07 20:31:00", "2026-12-07 20:40:48", None)]  # before, after the shared prompt pass, unknown
    scored = learn_figures({"runs": [], "finished": "2026-12-07 18:48"}, {"runs": evaluated})["methods"]["rloo"]
    assert len(scored["defaults"]) == 1 and scored["defaults"][0]["machine"] == "AMD EPYC"
    assert [run["label"] for run in scored["variants"]] == ["rloo (full-pass scoring)"] * 2
    with_follow = {**runs[0], "final": {**final, "reference_follow": 0.385, "aligned_follow": 0.825}}
    assert "KL 12 nats, instruction followed 38% → 82%, 270 s" in measured_text(
        "orpo", learn_figures({"runs": [with_follow]}))
    assert 'Other settings: orpo {"beta": 0.1}, seed 7: +0.10 ± 0.04; orpo (another trainer), seed 42: +0.20' in text
    assert measured_text("sft", figures) == ""


def test_by_setting_averages_each_settings_seeds_per_cpu_and_threads(capsys, tmp_path):
    from bench.eval_runs import main

    amd, xeon = "AMD EPYC, 2 CPUs, torch 2.13.0+cpu, CUDA no", "Intel(R) Xeon(R), 2 CPUs, torch 2.13.0+cpu, CUDA no"

    def run(seed, gain, kl, follow, machine=amd, threads=1, **knobs):
        return {"run_id": f"ppo-{seed}-{gain}", "method": "ppo", "seed": seed, "threads": threads, "machine": machine,
                "config": {"method": "ppo", **knobs}, "final": {"gain": gain, "gain_se": 0.04, "kl": kl,
                                                                "follow_change": follow}}

    runs = [run(42, 0.9, 99.0, 0.5),  # seed 42 again below: its latest run counts
            run(42, 0.39, 9.3, -0.08), run(7, 0.44, 9.9, 0.01), run(1, 0.52, 9.8, -0.25),
            run(42, 0.29, 5.0, 0.04, kl_coef=0.05), run(7, 0.25, 6.0, -0.18, kl_coef=0.05),
            run(42, 0.60, 9.0, 0.0, machine=xeon), run(42, 0.41, 9.2, 0.0, threads=2)]
    kept = tmp_path / "eval_runs.json"
    kept.write_text(json.dumps({"runs": runs}))
    assert main(["--by-setting", "--out", str(kept)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ppo")]
    assert rows == [
        "| ppo | AMD EPYC (1) | 42, 7, 1 | +0.450 ± 0.038 | +0.390 | 9.7 (9.3-9.9) | -8, +1, -25 | yes |",
        '| ppo {"kl_coef": 0.05} | AMD EPYC (1) | 42, 7 | +0.270 ± 0.020 | +0.250 | 5.5 (5.0-6.0) | +4, -18 | no |',
        "| ppo | Intel(R) Xeon(R) (1) | 42 | +0.600 ± – | +0.600 | 9.0 | +0 | yes |",
        "| ppo | AMD EPYC (2) | 42 | +0.410 ± – | +0.410 | 9.2 | +0 | yes |"]


def test_scoring_bench_times_both_ways_on_the_task_prompts_and_finds_them_equal(tmp_path, capsys):
    from bench.scoring import main

    out = tmp_path / "scoring.json"
    assert main(["--model", "tiny-random", "--reps", "1", "--completion", "8", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["rows"] == 8 and result["k"] == 4 and result["prompt_tokens"] > 40  # the task's chat prompts
    assert set(result["median_s"]) == {"full pass", "one pass per prompt"}
    assert all(seconds > 0 for way in result["median_s"].values() for seconds in way.values())
    assert result["max_logprob_difference"] < 1e-4 and result["max_entropy_difference"] < 1e-4
    assert result["max_gradient_difference_relative"] < 1e-4
    printed = capsys.readouterr().out
    assert "| one pass per prompt |" in printed and "x faster scoring" in printed
