"""The run directory's one owner (alignlab.rundir): layout, atomic writes, offset reads, list/find/delete,
the dead-owner check, ``alignlab train --run-id``, and no file name of a run directory spelled elsewhere."""

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from alignlab import rundir
from alignlab.config import RunConfig, config_of
from alignlab.errors import AlignLabError

ALIGNLAB = Path(__file__).resolve().parent.parent / "alignlab"


def make_run(output_dir: Path, run_id: str, method: str = "dpo") -> Path:
    """A run directory as the runner creates it, without training."""
    run_dir = rundir.create(output_dir / run_id, {"run_id": run_id, **RunConfig(method=method).to_dict()})
    rundir.write_status(run_dir, {"run_id": run_id, "state": "finished"})
    return run_dir


def dead_pid() -> int:
    """The pid of a process that has exited."""
    result = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(result.stdout)


# --- writing -------------------------------------------------------------------------------------
def test_create_writes_the_config_and_refuses_an_existing_directory(tmp_path):
    run_dir = rundir.create(tmp_path / "runs" / "a", {"run_id": "a", "method": "dpo"})
    assert rundir.is_run_dir(run_dir) and rundir.read_config(run_dir) == {"run_id": "a", "method": "dpo"}
    with pytest.raises(AlignLabError, match="'a' already exists"):
        rundir.create(run_dir, {"run_id": "a"})
    assert rundir.read_config(run_dir) == {"run_id": "a", "method": "dpo"}  # untouched


def test_a_failed_status_write_leaves_the_previous_status_whole(tmp_path, monkeypatch):
    run_dir = make_run(tmp_path, "r")
    rundir.write_status(run_dir, {"state": "running", "step": 1})

    def interrupted(source, target):  # the writer dies between writing the new text and publishing it
        raise KeyboardInterrupt

    monkeypatch.setattr(rundir.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        rundir.write_status(run_dir, {"state": "running", "step": 2, "padding": "x" * 100_000})
    status = rundir.read_status(run_dir)
    assert status["step"] == 1 and status["pid"] == os.getpid() and status["host"] == socket.gethostname()


def test_metrics_are_appended_and_read_from_a_byte_offset(tmp_path):
    run_dir = make_run(tmp_path, "r")
    log = rundir.MetricsLog(run_dir)
    log.write({"run_id": "r", "step": 1, "time": 1.0, "metrics": {"loss": 0.7}})
    rows, offset = rundir.read_metrics(run_dir)
    assert rows == [{"step": 1, "time": 1.0, "loss": 0.7}]
    log.write({"run_id": "r", "step": 2, "time": 2.0, "metrics": {"loss": 0.6, "kl": None}})
    log.close()
    with open(run_dir / rundir.METRICS, "a", encoding="utf-8") as out:
        out.write('{"step": 3, "lo')  # a line still being written
    rows, offset = rundir.read_metrics(run_dir, offset)
    assert rows == [{"step": 2, "time": 2.0, "loss": 0.6, "kl": None}]
    assert rundir.read_metrics(run_dir, offset) == ([], offset)  # the partial line waits
    with open(run_dir / rundir.METRICS, "a", encoding="utf-8") as out:
        out.write('ss": 0.5}\n')
    assert rundir.read_metrics(run_dir, offset)[0] == [{"step": 3, "loss": 0.5}]
    assert rundir.read_metrics(tmp_path / "no-run") == ([], 0)


def test_samples_probe_samples_and_error(tmp_path):
    run_dir = make_run(tmp_path, "r")
    assert rundir.read_samples(run_dir) == [] and rundir.samples_summary(run_dir) is None
    rundir.write_samples(run_dir, [{"prompt": "p", "reference_reward": 0.0, "aligned_reward": 1.0},
                                   {"prompt": "q", "reference_reward": 0.5, "aligned_reward": 0.5}])
    assert [row["prompt"] for row in rundir.read_samples(run_dir)] == ["p", "q"]
    assert rundir.samples_summary(run_dir) == {"reference": 0.25, "aligned": 0.75, "samples": 2}
    rundir.append_probe_samples(run_dir, 0, [{"reward": 0.1}])
    rundir.append_probe_samples(run_dir, 6, [{"reward": 0.2}, {"reward": 0.3}])
    assert rundir.read_probe_samples(run_dir) == [{"step": 0, "reward": 0.1}, {"step": 6, "reward": 0.2},
                                                  {"step": 6, "reward": 0.3}]
    assert rundir.read_error(run_dir) == ""
    rundir.write_error(run_dir, "Traceback ...\nValueError: boom\n")
    assert rundir.read_error(run_dir).endswith("ValueError: boom\n")


def test_model_folder_paths(tmp_path):
    run_dir = make_run(tmp_path, "r")
    assert not rundir.has_model(run_dir) and not rundir.has_adapter(run_dir)
    rundir.model_dir(run_dir).mkdir()
    (rundir.model_dir(run_dir) / rundir.ADAPTER_CONFIG).write_text("{}")
    assert rundir.has_model(run_dir) and rundir.has_adapter(run_dir)
    assert rundir.checkpoints_dir(run_dir).parent == run_dir
    assert rundir.snapshot_dir(run_dir, 12).relative_to(run_dir) == Path(rundir.SNAPSHOTS, "step-12")


# --- reading past runs ---------------------------------------------------------------------------
def test_list_find_and_delete(tmp_path):
    runs = tmp_path / "runs"
    older, newer = make_run(runs, "20250101-000000-dpo-aaaa"), make_run(runs, "20250102-000000-kto-bbbb", "kto")
    (runs / "not-a-run").mkdir()
    listed = rundir.list_runs(runs)
    assert [run["run_id"] for run in listed] == [newer.name, older.name]  # newest first, other folders skipped
    assert listed[0]["method"] == "kto" and listed[0]["state"] == "finished" and listed[0]["config"]["method"] == "kto"
    assert rundir.list_runs(tmp_path / "nothing") == []

    assert rundir.find(older.name, runs) == older  # by id
    assert rundir.find(str(newer)) == newer  # by path
    with pytest.raises(AlignLabError, match="no run 'missing'"):
        rundir.find("missing", runs)
    assert rundir.find_run(runs, older.name) == older
    for untrusted in (str(older), f"../runs/{older.name}", "not-a-run", ""):
        with pytest.raises(AlignLabError, match="no run"):
            rundir.find_run(runs, untrusted)

    with pytest.raises(AlignLabError, match="not a run directory"):
        rundir.delete_run(runs / "not-a-run")
    rundir.delete_run(older)
    assert not older.exists() and [run["run_id"] for run in rundir.list_runs(runs)] == [newer.name]


def test_a_running_run_whose_process_is_gone_reads_as_failed(tmp_path):
    run_dir = make_run(tmp_path, "r")
    status = rundir.read_status(run_dir)
    assert not rundir.owner_is_gone(status)  # this process
    (run_dir / rundir.STATUS).write_text(json.dumps({**status, "state": "running", "pid": dead_pid()}))
    run = rundir.read_run(run_dir)
    assert run["state"] == "failed" and "ended without finishing" in run["error"]
    (run_dir / rundir.STATUS).write_text(json.dumps({**status, "state": "running", "host": "another-host"}))
    assert rundir.read_run(run_dir)["state"] == "running"  # a process elsewhere cannot be checked
    (run_dir / rundir.STATUS).unlink()
    assert rundir.read_run(run_dir)["state"] == "unknown"


def test_config_of_round_trips_the_config(tmp_path):
    config = RunConfig(method="kto", model="tiny-random", learning_rate=1e-4, run_name="trial",
                       method_args={"beta": 0.3})
    run_dir = rundir.create(tmp_path / "r", {"run_id": "r", **config.to_dict(), "field_of_an_older_version": 1})
    assert config_of(run_dir) == config


# --- run ids and --run-id ------------------------------------------------------------------------
def cli_flags(values: dict) -> list[str]:
    """``{"max_steps": 2}`` -> ``["--max-steps", "2"]``."""
    return [item for key, value in values.items() for item in ("--" + key.replace("_", "-"), str(value))]


def test_run_ids_are_safe_labels():
    generated = rundir.new_run_id("online-dpo", "my first run/../x")
    assert rundir.check_run_id(generated) == generated and "-online-dpo-my-first-run-..-x-" in generated
    for good in ("a", "Run_1.2-b", "x" * rundir.MAX_RUN_ID):
        assert rundir.check_run_id(good) == good
    for bad in ("", ".", "..", "../x", "a/b", "-flag", "with space", "x" * (rundir.MAX_RUN_ID + 1), "é"):
        with pytest.raises(AlignLabError, match="run_id: got"):
            rundir.check_run_id(bad)


@pytest.mark.parametrize("run_id, message", [("../escape", "run_id: got '../escape'"),
                                             ("taken", "run_id: 'taken' already exists")])
def test_cli_refuses_a_bad_or_taken_run_id_in_one_line(run_id, message, tiny, capsys):
    from alignlab.cli import main

    runs = Path(tiny["output_dir"])
    (runs / "taken").mkdir(parents=True)
    assert main(["train", "--method", "dpo", *cli_flags(tiny), "--run-id", run_id, "--quiet"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {message}")
    assert sorted(path.name for path in runs.iterdir()) == ["taken"] and not any((runs / "taken").iterdir())


def test_cli_trains_into_the_run_directory_it_was_named(tiny, capsys):
    from alignlab.cli import main

    flags = cli_flags({**tiny, "max_steps": 1, "probe_every": 0})
    assert main(["train", "--method", "sft", *flags, "--run-id", "lesson-1", "--quiet"]) == 0
    run_dir = Path(tiny["output_dir"]) / "lesson-1"
    assert rundir.read_config(run_dir)["run_id"] == "lesson-1" and rundir.read_status(run_dir)["state"] == "finished"
    assert [run["run_id"] for run in rundir.list_runs(tiny["output_dir"])] == ["lesson-1"]
    assert f"saved to {run_dir}" in capsys.readouterr().out


# --- one owner -----------------------------------------------------------------------------------
FILE_NAMES = re.compile(
    r"""(?<![\w.])(?:config\.json|status\.json|metrics\.jsonl|probe_samples\.jsonl|samples\.jsonl|error\.log)\b"""
    r"""|/\s*["'](?:model|trainer|snapshots|logs)["']""")


def run_dir_literals(text: str) -> list[str]:
    """The run-directory file names spelled in ``text``: names of its files, or a path joined with its folders."""
    return [match.group(0) for match in FILE_NAMES.finditer(text)]


def test_the_literal_scan_finds_what_it_looks_for():
    assert run_dir_literals('(run_dir / "config.json").read_text()  # and metrics.jsonl') == ['config.json',
                                                                                           'metrics.jsonl']
    assert run_dir_literals('path / "model"; x / "trainer"; open("probe_samples.jsonl")') == [
        '/ "model"', '/ "trainer"', "probe_samples.jsonl"]
    assert run_dir_literals('"adapter_config.json", kwargs["model"], "prompts.jsonl", rundir.CONFIG') == []


def test_no_module_but_rundir_spells_a_run_directory_file_name():
    offenders = [f"{path.relative_to(ALIGNLAB.parent)}:{number}: {line.strip()}"
                 for path in sorted(ALIGNLAB.rglob("*.py")) if path.name != "rundir.py"
                 for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
                 if run_dir_literals(line)]
    assert offenders == [], "use alignlab.rundir instead:\n" + "\n".join(offenders)


def test_one_runs_folder_for_the_cli_the_app_and_the_notebook(tmp_path, monkeypatch, capsys):
    """The notebooks in notebooks/ and the app started at the root list the same runs: the project's runs/,
    or the folder ALIGNLAB_RUNS names."""
    from alignlab.cli import main
    from alignlab.ui.gradio.services import Services
    from alignlab.ui.notebook import RunsView
    from alignlab.ui.notebook.form import RunForm

    project = tmp_path / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'a-class'\n")
    monkeypatch.delenv(rundir.RUNS_ENV, raising=False)
    monkeypatch.chdir(project / "notebooks")
    assert rundir.default_runs_dir() == project / "runs"
    assert RunConfig().output_dir == str(project / "runs")  # notebook helpers (train, sweep) build RunConfigs
    assert RunForm().values()["output_dir"] == str(project / "runs")  # the notebook Lab's form
    assert RunsView().output_dir == project / "runs"
    make_run(project / "runs", "20250101-120000-dpo-ab12")
    assert [run["run_id"] for run in rundir.list_runs()] == ["20250101-120000-dpo-ab12"]
    assert main(["runs"]) == 0 and "20250101-120000-dpo-ab12" in capsys.readouterr().out
    monkeypatch.chdir(project)  # where `alignlab app` is started
    assert rundir.default_runs_dir() == Path("runs")
    services = Services.create()
    assert services.runs_dir == (project / "runs").resolve()
    services.jobs.close()
    monkeypatch.setenv(rundir.RUNS_ENV, str(tmp_path / "class-runs"))  # a shared folder for a class
    assert rundir.default_runs_dir() == RunsView().output_dir == tmp_path / "class-runs"
    assert RunConfig().output_dir == str(tmp_path / "class-runs") == RunForm().values()["output_dir"]
    monkeypatch.delenv(rundir.RUNS_ENV)
    monkeypatch.chdir(tmp_path)  # outside any project: runs/ where the lab is used
    assert rundir.default_runs_dir() == Path("runs") and rundir.default_runs_dir(tmp_path) == tmp_path / "runs"
