"""Faults and hostile input (issue 11): what a careful tester tries, each with the behaviour that must hold."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from alignlab import cli, rundir
from alignlab import make_prefs as make_prefs_module
from alignlab.config import MAX_CONFIG_BYTES, RunConfig, config_of
from alignlab.errors import AlignLabError
from alignlab.metrics import MetricBus
from alignlab.runner import start
from alignlab.ui.gradio import create_app, serve


def billion_laughs(levels: int = 9) -> str:
    """The classic YAML alias bomb: 9 levels of 9 aliases, ~1 KB that expands to 9**9 strings under run_name."""
    lines = ['lol0: &lol0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "\n".join(lines + [f"run_name: *lol{levels}", ""])


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path):
    """Run in a child with a time and memory limit: expanding the bomb (a repr in an error message) would hang."""
    path = tmp_path / "bomb.yaml"
    path.write_text(billion_laughs())
    script = textwrap.dedent(f"""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        from alignlab.config import RunConfig
        from alignlab.errors import AlignLabError
        try:
            RunConfig.from_file({str(path)!r})
        except AlignLabError as error:
            print(error)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == (f"config: {path} line 2 uses the YAML alias *lol0, expected plain values "
                             "(a run config takes no aliases)\n")


def test_yaml_aliases_are_refused_even_small_ones(tmp_path):
    path = tmp_path / "alias.yaml"
    path.write_text("method: &m dpo\nrun_name: *m\n")
    with pytest.raises(AlignLabError, match=r"line 2 uses the YAML alias \*m"):
        RunConfig.from_file(path)
    path.write_text("method: &m dpo\nmax_steps: 3\n")  # an anchor alone expands nothing
    assert RunConfig.from_file(path).max_steps == 3


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_config_file_over_the_size_limit_is_refused_unread(tmp_path, suffix):
    path = tmp_path / f"big{suffix}"
    path.write_text("#" * (MAX_CONFIG_BYTES + 1) if suffix == ".yaml" else " " * (MAX_CONFIG_BYTES - 1) + "{}")
    with pytest.raises(AlignLabError, match=rf"config: {path} is 1,048,577 bytes, expected a run config of at most "
                                            r"1,048,576 bytes"):
        RunConfig.from_file(path)


# --- items 1, 7, 9 and 10: no path escapes the output folder; one damaged run never breaks a listing; no
# --- traceback for bad numbers, files, folders or ports; persistence failures are loud -----------------------
BAD_RUN_NAMES = ["/../../x", "a/b", "a\x00b", "a" * 300]
QUICK = dict(model="tiny-random", batch_size=2, max_length=64, max_completion_length=16, probe_every=0)


def flags_of(values: dict) -> list[str]:
    flags = []
    for key, value in values.items():
        flags += ["--" + key.replace("_", "-"), str(value)]
    return flags


def one_error_line(capsys) -> str:
    """The command's stderr, which must be exactly one ``error: ...`` line; returns it."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_run(output_dir: Path, run_id: str) -> Path:
    """A finished run directory with one metric row, as the runner leaves it (without training)."""
    run_dir = rundir.create(output_dir / run_id, {"run_id": run_id, **RunConfig(model="tiny-random").to_dict()})
    rundir.write_status(run_dir, {"run_id": run_id, "state": "finished", "step": 1})
    (run_dir / rundir.METRICS).write_text('{"step": 1, "time": 1.0, "loss": 0.5}\n')
    return run_dir


DAMAGE = {  # run id -> (the file damaged, what it holds)
    "b-truncated-status": ("status.json", b'{"state": "fini'),
    "c-empty-status": ("status.json", b""),
    "d-binary-config": ("config.json", b"\x89PNG\r\n\x1a\n\x00\xff"),
    "e-truncated-config": ("config.json", b'{"method": "dpo", "mod'),
    "f-list-config": ("config.json", b'["dpo"]'),
    "g-wrong-typed-status": ("status.json", b'{"state": 3, "step": "two"}'),
    "h-wrong-typed-config": ("config.json", b'{"method": ["dpo"], "model": 3}'),
    "i-broken-metrics-line": ("metrics.jsonl", b'{"step": 1, "loss": 0.5}\n{"step": 2, "lo\n{"step": 3}\n'),
    "j-binary-metrics": ("metrics.jsonl", b"\x00\xff\xfe\n"),
    "k-wrong-typed-metrics": ("metrics.jsonl", b'{"step": 1, "loss": "low"}\n'),
}


def damaged_runs(runs: Path) -> None:
    """``a-good`` (finished, with a model folder) and one run per kind of damage in :data:`DAMAGE`."""
    rundir.model_dir(make_run(runs, "a-good")).mkdir()
    for run_id, (name, data) in DAMAGE.items():
        (make_run(runs, run_id) / name).write_bytes(data)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The app, served, and a client of its API."""
    demo = create_app(tmp_path_factory.mktemp("faults-app") / "runs")
    _, url, _ = serve(demo, port=None, block=False)
    yield demo, Client(url, verbose=False)
    demo.services.jobs.close()
    demo.close()


# --- 1: run_name is a safe label; the run directory is inside the output folder ----------------------------
@pytest.mark.parametrize("name", BAD_RUN_NAMES)
def test_a_run_name_that_is_not_a_safe_label_is_refused_in_one_line(name, tiny, capsys):
    with pytest.raises(AlignLabError, match="^run_name: got ") as caught:
        RunConfig(run_name=name, **tiny)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 200  # a 300-character name is cut short
    assert cli.main(["train", *flags_of(tiny), "--run-name", name]) == 2
    assert one_error_line(capsys).startswith("error: run_name: got ")
    assert not Path(tiny["output_dir"]).exists()
    assert RunConfig(run_name="trial-2.b_c", **tiny).run_name == "trial-2.b_c"


@pytest.mark.parametrize("name", BAD_RUN_NAMES)
def test_the_app_refuses_a_bad_run_name_before_anything_is_queued(served, name):
    demo, client = served
    with pytest.raises(AppError, match="run_name: got "):
        client.predict(method="dpo", run_name=name, api_name="/start_run", **QUICK)
    assert client.predict(api_name="/job_status")["queued"] == 0 and not demo.services.jobs.jobs


def test_a_run_directory_never_leads_outside_the_output_folder(tmp_path):
    runs, outside = tmp_path / "runs", tmp_path / "outside"
    runs.mkdir()
    outside.mkdir()
    (runs / "escape").symlink_to(outside)
    with pytest.raises(AlignLabError, match="leads outside the output folder"):
        rundir.run_path(runs, "escape")
    for bad in ("../x", "/etc", "a/b", "..", "", "a\x00b"):
        with pytest.raises(AlignLabError, match="^run_id: got "):
            rundir.run_path(runs, bad)
    assert rundir.run_path(runs, "20250101-dpo-ab12") == runs / "20250101-dpo-ab12"


# --- 7: a damaged run lists as unreadable, naming the file; the others list as usual ------------------------
def test_one_damaged_run_never_breaks_a_listing(tmp_path):
    damaged_runs(tmp_path / "runs")
    listed = {run["run_id"]: run for run in rundir.list_runs(tmp_path / "runs")}
    assert set(listed) == {"a-good", *DAMAGE}
    assert (listed["a-good"]["state"], listed["a-good"]["loss"]) == ("finished", 0.5)
    for run_id, (name, _) in DAMAGE.items():
        run = listed[run_id]
        assert (run["state"], run["file"], run["history"]) == ("unreadable", name, []), run
        assert f"{run_id}/{name} is unreadable: " in run["error"] and "\n" not in run["error"]
    assert "metrics.jsonl is unreadable: line 2: not valid JSON" in listed["i-broken-metrics-line"]["error"]
    with pytest.raises(AlignLabError, match="d-binary-config/config.json is unreadable: not UTF-8"):
        config_of(tmp_path / "runs" / "d-binary-config")  # eval, chat and export read it so, in one line


def test_the_runs_command_shows_damaged_runs_as_unreadable_with_the_file(tmp_path, capsys):
    damaged_runs(tmp_path / "runs")
    assert cli.main(["runs", "--output-dir", str(tmp_path / "runs")]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.strip().splitlines()[1:]}
    assert rows["a-good"].split()[1:4] == ["dpo", "finished", "1"]
    for run_id, (name, _) in DAMAGE.items():
        assert " unreadable " in rows[run_id] and f"{run_id}/{name} is unreadable" in rows[run_id]


def test_the_app_lists_damaged_runs_as_unreadable_in_the_runs_tab_and_the_chat_picker(served):
    demo, client = served
    damaged_runs(demo.services.runs_dir)
    table, *_ = client.predict(api_name="/list_runs")
    rows = {row[0]: row for row in table["data"]}
    assert rows["a-good"][1:4] == ["dpo", "tiny-random", "finished"] and rows["a-good"][-1] == ""
    choices = {value: label for label, value in client.predict(api_name="/chat_models")["choices"]}
    assert choices["run:a-good"] == "dpo · β 0.1 · 1 step — a-good (finished)"
    for run_id, (name, _) in DAMAGE.items():
        assert rows[run_id][3] == "unreadable" and f"{run_id}/{name} is unreadable" in rows[run_id][-1]
        assert choices["run:" + run_id] == f"unreadable: {name} — {run_id}"
    with pytest.raises(AppError, match="e-truncated-config/config.json is unreadable"):  # chosen anyway: one line
        client.predict("Hello", "run:e-truncated-config", "chat", 4, 1.0, 1.0, 0, api_name="/chat")


def test_the_notebook_runs_table_shows_damaged_runs_as_unreadable(tmp_path):
    from alignlab.ui.notebook.runs import RunsView

    damaged_runs(tmp_path / "runs")
    (tmp_path / "runs" / "a-good" / rundir.SAMPLES).write_bytes(b'\xff\n{"prompt": 1}\n')  # damaged samples too
    view = RunsView(tmp_path / "runs")
    assert len(view.picker.options) == 1 + len(DAMAGE)
    for run_id, (name, _) in DAMAGE.items():
        assert f"{run_id}/{name} is unreadable" in view.table.value
    view.picker.value = tuple(view.runs)  # every run chosen, damaged ones too: a figure, no error
    assert view.figure is not None


def test_a_killed_run_is_marked_failed_on_disk_the_next_time_it_is_listed(tmp_path, pairs_file):
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "alignlab", "train", "--model", "tiny-random", "--dataset", str(pairs_file),
               "--max-steps", "1000", "--batch-size", "2", "--max-length", "48", "--max-completion-length", "8",
               "--output-dir", str(runs), "--run-id", "killed", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while rundir.read_status(runs / "killed").get("pid") != process.pid:
            assert time.time() < deadline and process.poll() is None, "the run never said it was running"
            time.sleep(0.1)
    finally:
        process.kill()  # SIGKILL: nothing of the run gets to write again
        process.wait()
    status_file = runs / "killed" / rundir.STATUS
    assert json.loads(status_file.read_text())["state"] == "running"  # as the killed process left it
    (run,) = rundir.list_runs(runs)
    assert run["state"] == "failed" and f"pid {process.pid}" in run["error"]
    on_disk = json.loads(status_file.read_text())
    assert on_disk["state"] == "failed" and "ended without finishing it" in on_disk["error"]
    assert on_disk["pid"] == process.pid  # still names the process that trained it


def test_eval_on_a_missing_or_damaged_run_folder_says_so_in_one_line(tmp_path, capsys):
    runs = tmp_path / "runs"
    damaged_runs(runs)
    for folder, expected in [(tmp_path / "missing", "error: run: no run"), (tmp_path, "error: run: no run"),
                             (runs / "e-truncated-config", "config.json is unreadable: not valid JSON"),
                             (runs / "d-binary-config", "config.json is unreadable: not UTF-8"),
                             (runs / "h-wrong-typed-config", "config.json is unreadable: method is a list"),
                             (runs / "c-empty-status", "has no saved model")]:
        assert cli.main(["eval", str(folder)]) == 2
        assert expected in one_error_line(capsys)
    assert cli.main(["eval", str(runs / "a-good"), "--samples", "0"]) == 2
    assert one_error_line(capsys) == "error: samples: got 0, expected an integer >= 1"


# --- 9: no traceback: numbers, method_args, config and data files, output folders, ports, make-prefs -------
@pytest.mark.parametrize("flags, field", [
    (["--max-steps", "inf"], "max_steps"), (["--max-steps", "1e400"], "max_steps"),
    (["--learning-rate", "1e400"], "learning_rate"), (["--beta=-inf"], "beta"), (["--epochs", "nan"], "epochs"),
    (["--seed", "1" + "0" * 400], "seed"),
])
def test_infinite_and_overflowing_numbers_are_refused_in_one_line(flags, field, tiny, capsys):
    assert cli.main(["train", "--method", "dpo", *flags_of(tiny), *flags]) == 2
    assert one_error_line(capsys).startswith(f"error: {field}: got ")
    assert not Path(tiny["output_dir"]).exists()


@pytest.mark.parametrize("name, data, expected", [
    ("list-args.json", b'{"method_args": [0.1]}', "error: method_args: got a list"),
    ("string-args.yaml", b"method_args: beta=0.2\n", "error: method_args: got a str"),
    ("dict-knob.yaml", b"beta: {a: 1}\n", "error: beta: got {'a': 1}"),
    ("overflow.json", b'{"max_steps": 1e400}', "error: max_steps: got inf"),
    ("big-int.yaml", b"seed: " + b"9" * 400 + b"\n", "error: seed: got 999"),
    ("binary.yaml", b"\x89PNG\r\n\x1a\n\x00\xff\xfe", "is not UTF-8 text"),
    ("latin-1.yaml", "run_name: café\n".encode("latin-1"), "is not UTF-8 text"),
    ("broken.json", b'{"max_steps": 3', "is not valid YAML/JSON"),
    ("broken.yaml", b"max_steps: [3\nbeta: 1\n", "is not valid YAML/JSON"),
    ("scalar.json", b"42", "expected a mapping"),
    ("scalar.yaml", b"just text\n", "expected a mapping"),
    ("number-key.yaml", b"1: 2\n", "error: config: got the key 1"),
])
def test_a_bad_config_file_is_refused_in_one_line(name, data, expected, tiny, tmp_path, capsys):
    path = tmp_path / name
    path.write_bytes(data)
    assert cli.main(["train", "--config", str(path), "--output-dir", tiny["output_dir"]]) == 2
    assert expected in one_error_line(capsys)
    assert not Path(tiny["output_dir"]).exists()


def test_method_args_of_the_wrong_type_are_refused_by_the_python_api(tiny):
    for method_args in ([0.1], "beta=0.1", 3, {1: 0.1}, {"beta": [0.1]}):
        with pytest.raises(AlignLabError, match="^(method_args|beta): "):
            RunConfig(method_args=method_args, **tiny)
    with pytest.raises(AlignLabError, match="^method_args: got a list"):
        RunConfig.from_dict({"method_args": ["beta"]})
    with pytest.raises(AlignLabError, match="^config: got a list"):
        RunConfig.from_dict(["beta"])


@pytest.mark.parametrize("name, data", [
    ("empty.csv", b""), ("header-only.csv", b"prompt,chosen,rejected\n"), ("fake.parquet", b"not parquet at all"),
    ("latin-1.jsonl", '{"prompt": "café", "chosen": "a", "rejected": "b"}\n'.encode("latin-1")),
    ("binary.jsonl", bytes(range(256))), ("empty.jsonl", b""), ("scalar.json", b"7"),
])
def test_a_bad_data_file_is_refused_in_one_line(name, data, tiny, tmp_path, capsys):
    path = tmp_path / name
    path.write_bytes(data)
    assert cli.main(["train", "--method", "dpo", *flags_of({**tiny, "dataset": path})]) == 2
    assert "dataset" in one_error_line(capsys)
    assert not Path(tiny["output_dir"]).exists()
    output = tmp_path / "prefs.jsonl"
    assert cli.main(["data", "make-prefs", "--model", "tiny-random", "--dataset", str(path), "--output",
                     str(output)]) == 2
    assert "dataset" in one_error_line(capsys) and not output.exists()


def unusable_folders(tmp_path: Path) -> dict[str, Path]:
    """Output folders no run can be written to: a regular file, a path under one, /proc, a read-only folder."""
    regular = tmp_path / "a-file"
    regular.write_text("x")
    read_only = tmp_path / "read-only"
    read_only.mkdir()
    read_only.chmod(0o555)
    return {"file": regular, "under-file": regular / "runs", "proc": Path("/proc"), "read-only": read_only / "runs"}


@pytest.mark.parametrize("kind", ["file", "under-file", "proc", "read-only"])
def test_an_unusable_output_dir_is_refused_in_one_line(kind, tiny, tmp_path, capsys):
    if kind == "read-only" and os.geteuid() == 0:
        pytest.skip("root writes in read-only folders")
    folder = unusable_folders(tmp_path)[kind]
    assert cli.main(["train", *flags_of({**tiny, "output_dir": folder})]) == 2
    assert one_error_line(capsys).startswith("error: output_dir: ")
    with pytest.raises(AlignLabError, match="^output_dir: "):
        start(RunConfig(**{**tiny, "output_dir": str(folder)}))
    assert cli.main(["app", "--port", str(free_port()), "--output-dir", str(folder)]) == 2
    assert one_error_line(capsys).startswith("error: output_dir: ")


def test_the_app_on_a_port_in_use_says_so_in_one_line(tmp_path, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert cli.main(["app", "--port", str(port), "--output-dir", str(tmp_path / "runs")]) == 2
    assert one_error_line(capsys) == (f"error: port: {port} on 127.0.0.1 is in use (another app or server?); "
                                      "choose a free one with --port")
    assert not (tmp_path / "runs").exists()  # refused before the app was built
    assert cli.main(["app", "--port", "70000"]) == 2
    assert one_error_line(capsys) == "error: port: got 70000, expected an integer from 1 to 65535"


@pytest.fixture
def no_sampling(monkeypatch):
    """make-prefs without a model: every prompt's completions are "good." and "bad." (scored 1 and 0)."""
    monkeypatch.setattr(make_prefs_module, "load_model", lambda name: None)
    monkeypatch.setattr(make_prefs_module, "load_tokenizer", lambda name: None)

    def sample(model, tokenizer, prompts, settings, num_return_sequences=1, **kwargs):
        return [text for _ in prompts for text in (["good.", "bad."] * num_return_sequences)[:num_return_sequences]]

    monkeypatch.setattr(make_prefs_module, "sample", sample)
    monkeypatch.setattr(make_prefs_module, "get_reward",
                        lambda name: lambda prompts, texts: [float(t == "good.") for t in texts])


@pytest.mark.parametrize("flags, field", [
    (["--max-new-tokens", "0"], "max_new_tokens"), (["--max-new-tokens", "-5"], "max_new_tokens"),
    (["--temperature", "inf"], "temperature"), (["--temperature", "nan"], "temperature"),
    (["--temperature", "-0.5"], "temperature"), (["--top-p", "0"], "top_p"), (["--limit", "-1"], "limit"),
    (["--samples", "1"], "samples"), (["--min-gap", "inf"], "min_gap"),
])
def test_make_prefs_refuses_bad_numbers_before_it_samples(flags, field, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(make_prefs_module, "load_model", lambda name: pytest.fail("loaded a model"))
    output = tmp_path / "prefs.jsonl"
    assert cli.main(["data", "make-prefs", "--model", "tiny-random", "--output", str(output), *flags]) == 2
    assert one_error_line(capsys).startswith(f"error: {field}: got ")
    assert not output.exists()


def test_make_prefs_checks_its_output_before_it_samples(tmp_path, capsys, no_sampling, monkeypatch):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "Tell me about the film."}\n{"prompt": "And the acting?"}\n')
    folders = unusable_folders(tmp_path)

    def make(output, *extra):
        return cli.main(["data", "make-prefs", "--dataset", str(prompts), "--samples", "2", "--output", str(output),
                         *extra])

    for output in (folders["file"] / "prefs.jsonl", Path("/proc/prefs.jsonl"), tmp_path):
        assert make(output) == 2
        assert one_error_line(capsys).startswith("error: output: ")
    for extra in ((), ("--force",)):  # its own input: never, not even with --force
        assert make(prompts, *extra) == 2
        assert "is the input dataset" in one_error_line(capsys)
        assert prompts.read_text().startswith('{"prompt": "Tell me')
    output = tmp_path / "prefs.jsonl"
    output.write_text("earlier pairs\n")
    assert make(output) == 2
    assert one_error_line(capsys) == f"error: output: {str(output)!r} already exists; pass --force (force=True) " \
                                     "to replace it"
    assert output.read_text() == "earlier pairs\n"
    assert make(output, "--force") == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert [(row["chosen"], row["rejected"]) for row in rows] == [("good.", "bad.")] * 2
    assert (tmp_path / "prefs.card.md").exists()


@pytest.mark.parametrize("change, field", [
    (("max_steps", -1), "max_steps"), (("learning_rate", float("inf")), "learning_rate"),
    (("run_name", "../../escape"), "run_name"), (("method_args", ["beta"]), "method_args"),
    (("method_args", {"beta": -1}), "beta"), (("output_dir", "runs\x00x"), "output_dir"),
    (("method", "no-such-method"), "method"),
])
def test_a_config_changed_after_it_was_made_is_checked_again_at_start(change, field, tiny):
    config = RunConfig(**tiny)
    setattr(config, *change)
    with pytest.raises(AlignLabError, match=f"^{field}: "):
        start(config)
    assert not Path(tiny["output_dir"]).exists()


# --- 10: the training callback writes the metrics file itself; a subscriber's error is reported once --------
class FullDisk:
    """A metrics file on a full disk."""

    def write(self, event: dict) -> None:
        raise OSError(28, "No space left on device")

    def close(self) -> None:
        pass


def test_the_training_callback_writes_the_metrics_file_and_a_failed_write_is_raised(tiny, tmp_path):
    from alignlab.runner import RunHandle
    from alignlab.training import EventCallback

    run_dir = make_run(tmp_path, "r")
    (run_dir / rundir.METRICS).unlink()
    handle = RunHandle(RunConfig(**tiny), "r", run_dir)
    handle.metrics_log = rundir.MetricsLog(run_dir)
    state = SimpleNamespace(is_world_process_zero=True, global_step=3)
    EventCallback(handle).on_log(None, state, None, logs={"loss": 0.5})
    handle.metrics_log.close()
    assert [(row["step"], row["loss"]) for row in rundir.read_metrics(run_dir)[0]] == [(3, 0.5)]
    assert handle.bus._subscribers == []  # the file is written by the callback, not by a bus subscriber
    handle.metrics_log = FullDisk()
    with pytest.raises(OSError, match="No space left on device"):
        EventCallback(handle).on_log(None, SimpleNamespace(is_world_process_zero=True, global_step=4), None,
                                     logs={"loss": 0.4})
    assert [event["step"] for event in handle.history] == [3]  # a row not written is not shown either


def test_a_run_whose_metrics_cannot_be_written_fails_and_says_why(tiny, monkeypatch):
    monkeypatch.setattr(rundir.MetricsLog, "write", FullDisk.write)
    handle = start(RunConfig(**{**tiny, "probe_every": 0}), background=False)
    assert handle.state == "failed" and "No space left on device" in handle.error
    assert rundir.read_run(handle.run_dir)["state"] == "failed"


def test_a_bus_subscriber_that_raises_is_reported_once_and_the_others_still_hear():
    bus, heard = MetricBus(), []

    def broken(event):
        raise KeyError("plot")

    bus.subscribe(broken)
    bus.subscribe(heard.append)
    with pytest.warns(RuntimeWarning, match=r"metric subscriber .*broken raised KeyError: 'plot' \(at step 1\)"):
        bus.publish({"step": 1})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second error of the same subscriber is not reported again
        bus.publish({"step": 2})
    assert [event["step"] for event in heard] == [1, 2]


# --- 2: a write error never hangs and never leaves a run that looks finished or running ----------------------
# A small tmpfs is a full disk; a read-only mount or an immutable folder (chattr +i) is one nobody may write in,
# root included. Mounting needs root (and a kernel that lets this process mount): the tests skip cleanly without.
@pytest.fixture
def small_disk(tmp_path):
    """``small_disk(size, options)`` mounts a tmpfs of ``size`` under tmp_path and returns its path."""
    mounts = []

    def mount(size: str = "200k", options: str = "") -> Path:
        if os.geteuid() != 0 or not shutil.which("mount"):
            pytest.skip("mounting a small tmpfs needs root")
        path = tmp_path / f"disk{len(mounts)}"
        path.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(filter(None, [f"size={size}", options])),
                                 "tmpfs", str(path)], capture_output=True, text=True)
        if result.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounts.append(path)
        return path

    yield mount
    for path in mounts:
        subprocess.run(["chattr", "-R", "-i", str(path)], capture_output=True)
        subprocess.run(["umount", "--lazy", str(path)], capture_output=True)


def fill(disk: Path) -> None:
    """Write a file on ``disk`` until it is full."""
    handle = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(handle, b"x" * 65536)
    except OSError:
        pass
    finally:
        os.close(handle)


def can_make_immutable(disk: Path) -> bool:
    """True when ``chattr +i`` works on ``disk``: a folder nobody, root included, may create files in."""
    if shutil.which("chattr") is None:
        return False
    folder = disk / "immutable-probe"
    folder.mkdir()
    works = subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0
    subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
    folder.rmdir()
    return works


def cli_train(pairs_file, output_dir, *extra: str, **popen) -> subprocess.Popen:
    """``python -m alignlab train`` of a long DPO run on tiny-random in a child process (probe off)."""
    command = [sys.executable, "-m", "alignlab", "train", "--method", "dpo", "--model", "tiny-random", "--dataset",
               str(pairs_file), "--max-steps", "1000", "--batch-size", "2", "--max-length", "48",
               "--max-completion-length", "8", "--probe-every", "0", "--output-dir", str(output_dir), "--quiet",
               *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, **popen)


def first_step(process: subprocess.Popen, runs: Path, timeout: float = 180) -> tuple[Path, int]:
    """Wait until the child has logged a training step; returns its run directory and the step logged last."""
    deadline = time.time() + timeout
    while True:
        for run_dir in runs.glob("*/"):
            rows = rundir.read_metrics(run_dir)[0] if rundir.is_run_dir(run_dir) else []
            if rows:
                return run_dir, rows[-1]["step"]
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "no training step logged"
        time.sleep(0.05)


def test_a_full_or_read_only_output_dir_before_the_run_is_refused_in_one_line(small_disk, tiny, capsys):
    full = small_disk("64k")
    fill(full)
    for folder in (full, small_disk("1m", "ro"), small_disk("4k")):  # 4 KB: room for the config, not the status
        assert cli.main(["train", *flags_of({**tiny, "output_dir": folder / "runs"})]) == 2
        assert one_error_line(capsys).startswith("error: output_dir: ")
        assert rundir.list_runs(folder / "runs") == []  # nothing half-made left behind


def test_a_full_disk_while_saving_the_model_fails_the_run_and_leaves_no_half_written_model(small_disk, tiny):
    """200 KB holds the run's files and its adapter, not its tokenizer (3.5 MB): the save fails half-way."""
    disk = small_disk("200k")
    handle = start(RunConfig(**{**tiny, "output_dir": str(disk / "runs"), "probe_every": 0}), background=False)
    assert handle.state == "failed"
    assert handle.error.startswith("output_dir: cannot save the model in ") and "No space left" in handle.error
    status = rundir.read_status(handle.run_dir)  # the half-written model removed, the status had room to say why
    assert (status["state"], status["error"]) == ("failed", handle.error)
    assert not any(path.name.startswith(rundir.MODEL) for path in handle.run_dir.iterdir())  # no model, whole or half


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_write_fault_mid_run_ends_the_cli_in_seconds_and_the_run_reads_failed(fault, small_disk, pairs_file):
    disk = small_disk("8m")
    if fault == "read-only" and not can_make_immutable(disk):
        pytest.skip("chattr +i does not work here (a mount busy with open files cannot turn read-only)")
    process = cli_train(pairs_file, disk / "runs")
    try:
        run_dir, _ = first_step(process, disk / "runs")
        if fault == "full":
            fill(disk)
        else:
            subprocess.run(["chattr", "+i", str(run_dir)], check=True)
        _, stderr = process.communicate(timeout=60)  # before: the run thread died unrecorded and this waited forever
    finally:
        process.kill()
    assert process.returncode == 1 and "Traceback" not in stderr
    # one error line, the last; a library may have printed a warning of its own before it (under load, once)
    errors = [line for line in stderr.strip().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and stderr.strip().splitlines()[-1] == errors[0], stderr
    line = errors[0]
    assert line.startswith("error: output_dir: cannot ") and (
        "No space left on device" if fault == "full" else "Operation not permitted") in line
    (run,) = rundir.list_runs(disk / "runs")  # its status, if it could not be written, names a process now gone
    assert run["state"] == "failed" and not rundir.has_model(run_dir)


def test_the_app_queue_moves_on_after_a_job_fails_on_a_full_disk(small_disk, tiny, tmp_path):
    from alignlab.ui.gradio.jobs import JobQueue

    disk = small_disk("200k")  # the first job's model does not fit
    queue = JobQueue(disk / "runs", tmp_path / "jobs")
    try:
        first, second = (queue.submit(RunConfig(**{**tiny, "probe_every": 0})) for _ in range(2))
        deadline = time.time() + 240
        while first.state in ("queued", "starting", "running"):
            assert time.time() < deadline, f"the first job never ended: {first.log_tail()}"
            time.sleep(0.2)
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)  # room for the second
        while second.state in ("queued", "starting", "running"):
            assert time.time() < deadline, f"the queue never moved on: {second.log_tail()}"
            time.sleep(0.2)
    finally:
        queue.close()
    assert first.state == "failed" and "cannot save the model" in first.error and "No space left" in first.error
    assert second.state == "finished", second.log_tail()
    assert rundir.has_model(second.run_dir) and not rundir.has_model(first.run_dir)


def test_a_job_whose_worker_cannot_start_fails_and_the_queue_goes_on(tmp_path, tiny, monkeypatch):
    from alignlab.ui.gradio.jobs import JobQueue

    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))  # a worker that cannot be started
    queue = JobQueue(tmp_path / "runs", tmp_path / "jobs")
    try:
        jobs = [queue.submit(RunConfig(**tiny)) for _ in range(2)]
        deadline = time.time() + 30
        while any(job.state in ("queued", "starting") for job in jobs) and time.time() < deadline:
            time.sleep(0.05)
    finally:
        queue.close()
    assert [job.state for job in jobs] == ["failed", "failed"]
    assert all("FileNotFoundError" in job.error and "no-python" in job.error for job in jobs)


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


# --- 5: NaN or Inf fails the run, naming the step and the metric -------------------------------------------
@pytest.fixture(scope="module")
def nan_model(tmp_path_factory):
    """tiny-random with one NaN weight (and the tokenizer), saved as a local model folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from alignlab.models import tiny_model_path

    source, target = tiny_model_path(), tmp_path_factory.mktemp("nan-model")
    model = AutoModelForCausalLM.from_pretrained(source)
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight[0, 0] = float("nan")
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return str(target)


def test_a_nan_loss_fails_the_run_naming_the_step_and_is_logged_as_nan_not_zero(nan_model, tiny):
    handle = start(RunConfig(**{**tiny, "model": nan_model, "probe_every": 0}), background=False)
    assert handle.state == "failed" and handle.error.startswith("loss: got nan at step 1, expected a finite number")
    assert rundir.read_status(handle.run_dir)["error"] == handle.error
    rows, _ = rundir.read_metrics(handle.run_dir)
    assert [(row["step"], row["loss"]) for row in rows] == [(1, None)]  # TRL's filter would have logged 0.0
    assert not rundir.has_model(handle.run_dir)  # NaN weights are no result


def test_a_model_that_cannot_be_sampled_fails_at_the_first_probe(nan_model, tiny):
    handle = start(RunConfig(**{**tiny, "model": nan_model, "probe_every": 1}), background=False)
    assert handle.state == "failed" and handle.error.startswith("probe/reward: no completion could be sampled at "
                                                                "step 0"), handle.error
    assert not rundir.has_model(handle.run_dir)


def test_a_nan_reward_fails_the_run_naming_the_step(tiny):
    from alignlab.rewards import register_reward

    register_reward("nan-at-times", lambda prompts, completions: [float("nan")] + [0.5] * (len(completions) - 1))
    handle = start(RunConfig.from_dict({"method": "grpo", **tiny, "num_generations": 2, "reward": "nan-at-times",
                                        "probe_every": 0}), background=False)
    assert handle.state == "failed"
    assert handle.error.startswith("reward: source 'nan-at-times' returned NaN or inf (nan) for 1 of ")
    assert ", at step 1; the run stops there" in handle.error and not rundir.has_model(handle.run_dir)
