"""A run folder never escapes, and a damaged one never breaks a listing (issue 11, items 1, 7 and 9): bad run
names, symlinks out of the output folder, damaged or killed runs in the CLI, the app and the notebook, unusable output
folders and busy ports."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import flags_of, one_error_line, wait_for
from fault_helpers import make_run, unusable_folders
from gradio_client import Client
from gradio_client.exceptions import AppError

from alignlab import cli, rundir
from alignlab.config import RunConfig, config_of
from alignlab.errors import AlignLabError
from alignlab.runner import start

BAD_RUN_NAMES = ["/../../x", "a/b", "a\x00b", "a" * 300]
QUICK = dict(model="tiny-random", batch_size=2, max_length=64, max_completion_length=16, probe_every=0)

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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
def served(served_app, tmp_path_factory):
    """The app, served, and a client of its API."""
    demo, url = served_app(tmp_path_factory.mktemp("faults-app") / "runs")
    return demo, Client(url, verbose=False)


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
    assert choices["run:a-good"] == "dpo · β 0.5 · 1 step — a-good (finished)"
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
        wait_for(lambda: process.poll() is None and rundir.read_status(runs / "killed").get("pid") == process.pid
                 or process.poll() is not None, 120, what="the run saying it is running")
        assert process.poll() is None, "the run ended before it said it was running"
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
