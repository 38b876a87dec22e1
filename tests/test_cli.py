"""The CLI: train with a progress bar and summary, runs table, clear errors, accelerate launch."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from alignlab import rundir

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def alignlab(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "alignlab", *args], capture_output=True, text=True,
                          timeout=timeout, env=ENV)


def tiny_flags(tiny):
    flags = []
    for key, value in tiny.items():
        flags += ["--" + key.replace("_", "-"), str(value)]
    return flags


def test_train_then_runs_table(tiny):
    result = alignlab("train", "--method", "dpo", "--beta", "0.2", *tiny_flags(tiny))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "finished after 2 steps" in result.stdout and "saved to" in result.stdout
    assert "final: loss=" in result.stdout
    table = alignlab("runs", "--output-dir", tiny["output_dir"])
    header, row = table.stdout.strip().splitlines()
    assert header.split()[:3] == ["run", "id", "method"]
    assert row.split()[1:4] == ["dpo", "finished", "2"]


@pytest.mark.parametrize(
    "flags, field",
    [
        (["--beta", "0"], "beta"),
        (["--learning-rate", "-1"], "learning_rate"),
        (["--max-steps", "-1"], "max_steps"),
        (["--loss-type", "nope"], "loss_type"),
        (["--model", "no/such-model"], "model"),
        (["--dataset", "no-such-dataset"], "dataset"),
        (["--reward", "no-such-reward"], "reward"),
    ],
)
def test_bad_input_exits_nonzero_with_one_line(flags, field, tiny, capsys):
    from alignlab.cli import main  # in-process: the same code path as the command, minus start-up time

    assert main(["train", "--method", "dpo", *tiny_flags(tiny), *flags]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"error: {field}:")
    assert not Path(tiny["output_dir"]).exists()


@pytest.mark.parametrize(
    "flags, error",
    [
        (["--learning-rate", "-1e-4"], "learning_rate: got '-1e-4', expected a number > 0"),  # not taken for a flag
        (["--seed", "-inf"], "seed: got '-inf', expected an integer >= 0"),
        (["--reward", "judge:nonexistent"], "reward: the judge model 'nonexistent' of 'judge:nonexistent' is not "),
        (["--lora-target-modules", "q_proj,no_such_module"], "lora_target_modules: got 'q_proj,no_such_module', but "
         "'no_such_module' names no layer of 'tiny-random' that LoRA adapts; expected comma-separated names among "),
    ],
)
def test_the_low_cases_give_one_line_naming_the_field_and_leave_no_run_folder(flags, error, tiny, capsys):
    from alignlab.cli import main

    assert main(["train", "--method", "dpo", *tiny_flags(tiny), *flags]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith(f"error: {error}"), err
    assert not Path(tiny["output_dir"]).exists()


@pytest.mark.parametrize("suffix, text", [(".yaml", "method: dpo\nbeta: 0.1\nseed: 3\nbeta: 0.5\n"),
                                          (".yaml", "method: dpo\nmethod_args:\n  beta: 0.1\n  beta: 0.5\n"),
                                          (".json", '{"method": "dpo", "beta": 0.1, "beta": 0.5}')])
def test_a_key_given_twice_in_a_config_file_is_refused_naming_the_key_and_file(suffix, text, tiny, tmp_path, capsys):
    from alignlab.cli import main

    config = tmp_path / f"run{suffix}"
    config.write_text(text)
    assert main(["train", "--config", str(config), "--output-dir", tiny["output_dir"]]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: config: {config}")
    assert "repeats the key 'beta', expected each setting once" in err
    assert not Path(tiny["output_dir"]).exists()


def test_runs_of_a_file_says_it_is_not_a_folder(tmp_path, capsys):
    from alignlab.cli import main

    not_a_folder = tmp_path / "runs.txt"
    not_a_folder.write_text("")
    for extra in ([], ["--export", "csv"]):
        assert main(["runs", "--output-dir", str(not_a_folder), *extra]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err == f"error: output_dir: {str(not_a_folder)!r} is a file, not a folder of runs\n"


def test_help_shows_each_methods_bounds_and_default_of_a_shared_flag(capsys, monkeypatch):
    from alignlab.cli import main

    monkeypatch.setenv("COLUMNS", "2000")  # one line per flag: no wrapping inside the phrases checked
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip().startswith("--")}
    beta = lines["--beta"]
    assert "grpo: a number >= 0.0 and <= 100.0, default 0.0" in beta  # GRPO allows 0 and defaults to it
    assert re.search(r"[;\[][^;]*\bdpo\b[^;]*: a number > 0.0 and <= 100.0, default 0.5;", beta)
    assert "online-dpo: one of sigmoid, ipo, default 'sigmoid'" in lines["--loss-type"]
    assert "dpo: one of sigmoid, hinge, ipo," in lines["--loss-type"]
    assert "default 4; rloo, grpo]" in lines["--num-generations"]  # declared alike: said once, with who has it
    assert lines["--max-steps"].endswith("[an integer >= 0 and <= 100000; default 12]")  # a run setting


def test_app_help_describes_every_option(capsys, monkeypatch):
    from alignlab.cli import main

    monkeypatch.setenv("COLUMNS", "2000")  # one line per option
    with pytest.raises(SystemExit):
        main(["app", "--help"])
    entries = re.split(r"\n(?=  -)", capsys.readouterr().out.split("options:\n", 1)[1].rstrip())
    described = {}  # each option, with what follows its name and metavar (on its line or the next)
    for entry in entries:
        names = re.match(r"\s+((?:-[-\w]+(?: [A-Z_:]+)?(?:, )?)+)", entry)
        described[names.group(1).split()[0].rstrip(",")] = entry[names.end():].strip()
    assert set(described) == {"-h", "--host", "--port", "--share", "--auth", "--output-dir", "--trust-remote-code",
                              "--workshop", "--instructor", "--kl-budget", "--max-jobs", "--job-gib"}
    assert all(len(text.split()) >= 3 for text in described.values()), described


def test_bad_input_from_the_real_command(tiny):
    result = alignlab("train", "--method", "dpo", *tiny_flags(tiny), "--beta", "-1", timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: beta:")
    assert not Path(tiny["output_dir"]).exists()


def test_broken_jsonl_names_the_line(tiny, tmp_path, capsys):
    from alignlab.cli import main

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{broken\n')
    assert main(["train", "--method", "dpo", *tiny_flags({**tiny, "dataset": broken})]) == 2
    assert "line 2" in capsys.readouterr().err


def test_config_file_with_flag_override(tiny, tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("method: kto\nbeta: 0.3\nmax_steps: 50\n" + "".join(
        f"{k}: {v}\n" for k, v in tiny.items() if k != "max_steps"))
    result = alignlab("train", "--config", str(config), "--max-steps", "1", "--quiet")
    assert result.returncode == 0, result.stderr[-2000:]
    (run,) = Path(tiny["output_dir"]).iterdir()
    saved = json.loads((run / "config.json").read_text())
    assert (saved["method"], saved["max_steps"], saved["method_args"]["beta"]) == ("kto", 1, 0.3)


def test_make_prefs_on_tiny_model(tmp_path):
    output = tmp_path / "prefs.jsonl"
    result = alignlab("data", "make-prefs", "--model", "tiny-random", "--limit", "4", "--samples", "3",
                      "--max-new-tokens", "6", "--min-gap", "0", "--output", str(output))
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert rows and all(r["chosen_score"] >= r["rejected_score"] for r in rows)
    assert "pairs" in (tmp_path / "prefs.card.md").read_text()


def read_run_files(run):
    """A run directory's status, metric rows, probe sample lines and end-of-run sample lines."""
    status = json.loads((run / rundir.STATUS).read_text())
    rows = [json.loads(line) for line in (run / rundir.METRICS).read_text().splitlines()]
    probes = (run / rundir.PROBE_SAMPLES).read_text().splitlines()
    return status, rows, probes, (run / rundir.SAMPLES).read_text().splitlines()


def test_accelerate_launch_two_cpu_processes(tiny, tmp_path):
    """Two processes really train (DDP over gloo, the README's command), probe and sample on: the run
    records world size 2 and twice a one-process run's global batch, trains on twice its tokens a step (TRL's
    ``num_tokens`` counts every process's batch), and only process 0 writes."""
    from alignlab.models import DEFAULT_MODEL, TINY_MODEL, cache_dir, default_model_path, tiny_model_path

    default_model_path(), tiny_model_path()  # built in this cache, linked into the run's fresh one below
    pairs = tmp_path / "same_length.jsonl"  # every pair the same length: tokens per step count the pairs
    pair = {"prompt": "Review: the film", "chosen": " was wonderful and moving.", "rejected": " was dull and awful."}
    pairs.write_text((json.dumps(pair) + "\n") * 12)
    held_out = tmp_path / "held_out.jsonl"  # one prompt of its own, so every pair trains
    held_out.write_text(json.dumps({"prompt": "Review: the show"}) + "\n")
    flags = tiny_flags({**tiny, "dataset": str(pairs), "eval_dataset": str(held_out), "probe_every": 1})
    single = alignlab("train", "--method", "dpo", *flags, "--output-dir", str(tmp_path / "single"), "--quiet")
    assert single.returncode == 0, single.stderr[-2000:]
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    line = r"^accelerate launch (--multi_gpu .+?) -m alignlab (train [^#\n]+?)\s*(?:#.*)?$"
    commands = re.findall(line, readme, re.MULTILINE)
    (launch, train), = [command for command in commands if "tiny-random" in command[1]]  # the laptop one
    assert "--num_processes 2" in launch and "--cpu" not in launch
    command = [sys.executable, "-m", "accelerate.commands.launch", *launch.split(), "--main_process_port", "0",
               "-m", "alignlab", *train.split(), *flags]  # the README's laptop command, the test's data and flags
    # A cache without this data's reference log-probs (the models linked in): the first run of a dataset used to
    # fail with several processes (TRL's precompute file was in a temporary folder of process 0's own).
    cache = tmp_path / "cache"
    (cache / "models").mkdir(parents=True)
    for name in (DEFAULT_MODEL, TINY_MODEL):
        (cache / "models" / name).symlink_to(cache_dir() / "models" / name)
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env={**ENV, "ALIGNLAB_CACHE": str(cache)})
    assert result.returncode == 0, result.stderr[-6000:]
    (run,) = Path(tiny["output_dir"]).iterdir()  # one run directory for both processes
    (one,) = (tmp_path / "single").iterdir()
    status, rows, probes, samples = read_run_files(run)
    one_status, one_rows, one_probes, one_samples = read_run_files(one)
    assert status["state"] == "finished" and status["step"] == 2
    assert (status["world_size"], one_status["world_size"]) == (2, 1)
    config = json.loads((run / rundir.CONFIG).read_text())
    per_process = config["batch_size"] * config["grad_accum"]
    assert status["global_batch_size"] == 2 * one_status["global_batch_size"] == 2 * per_process
    tokens, one_tokens = ([r["num_tokens"] for r in run_rows if "loss" in r] for run_rows in (rows, one_rows))
    assert len(tokens) == len(one_tokens) == 2 and tokens == [2 * count for count in one_tokens]
    # Process 0 alone wrote: each step logged once, the probe's rows and the samples as many as one process writes.
    assert sorted(r["step"] for r in rows if "loss" in r) == [1, 2]
    assert sorted(r["step"] for r in rows if "probe/reward" in r) == [0, 1, 2]
    assert len(probes) == len(one_probes) > 0 and len(samples) == len(one_samples) > 0
    assert (run / rundir.MODEL / rundir.ADAPTER_CONFIG).exists()
