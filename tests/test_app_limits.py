"""The app protects the machine it shares (issue 11, item 8): what an upload expands to, what a chat message
and a conversation cost in tokens, how many jobs wait, who may stop or cancel a job, deleting a run that
a process trains, and a warning when the app is served to the network without a password.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from alignlab import cli, rundir
from alignlab.config import RunConfig
from alignlab.errors import AlignLabError
from alignlab.ui.gradio import chat_service, uploads
from alignlab.ui.gradio.app import create_app
from alignlab.ui.gradio.chat_service import fit_histories, message_notice
from alignlab.ui.gradio.server import exposure_warning, parse_auth, serve
from alignlab.ui.gradio.uploads import UploadStore

pytestmark = pytest.mark.timeout(300)
QUICK = dict(model="tiny-random", batch_size=2, max_length=64, max_completion_length=16, probe_every=0)


# --- uploads -------------------------------------------------------------------------------------
def repeated(text: str, rows: int) -> pa.DictionaryArray:
    """``rows`` copies of ``text``, dictionary-encoded: stored (and written to Parquet) once."""
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, dtype="int32")), pa.array([text]))


def test_a_small_parquet_that_decodes_to_gigabytes_is_refused_before_it_is_read(tmp_path):
    rows = 100_000  # within the row limit: only the decoded size gives it away
    bomb = tmp_path / "bomb.parquet"
    pq.write_table(pa.table({"prompt": repeated("x" * 20_000, rows), "chosen": repeated("good", rows),
                             "rejected": repeated("bad", rows)}), bomb)
    assert bomb.stat().st_size < 100_000  # a few KB on disk, 2 GB once read
    store = UploadStore(tmp_path / "uploads")
    with pytest.raises(AlignLabError, match=r"expands to more than 128 MB once decoded, the app takes at most 128 MB"):
        store.add(bomb, "bomb.parquet")
    assert store.names() == []  # nothing kept


def test_a_bomb_hidden_in_a_list_column_is_refused_too(tmp_path):
    rows = 50_000
    turns = pa.StructArray.from_arrays([repeated("user", rows), repeated("y" * 20_000, rows)], ["role", "content"])
    messages = pa.ListArray.from_arrays(pa.array(np.arange(rows + 1, dtype="int32")), turns)
    path = tmp_path / "messages.parquet"
    pq.write_table(pa.table({"messages": messages}), path)
    with pytest.raises(AlignLabError, match="once decoded"):
        UploadStore(tmp_path / "uploads").add(path, "messages.parquet")


def test_parquet_row_column_and_value_counts_are_read_from_its_metadata(tmp_path, monkeypatch):
    monkeypatch.setattr(uploads, "MAX_ROWS", 10)
    store = UploadStore(tmp_path / "uploads")
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"prompt": ["p"] * 11, "chosen": ["a"] * 11, "rejected": ["b"] * 11}), path)
    with pytest.raises(AlignLabError, match="has 11 rows, the app takes at most 10"):
        store.add(path, "rows.parquet")
    pq.write_table(pa.table({f"c{i}": ["v"] for i in range(uploads.MAX_COLUMNS + 1)}), path)
    with pytest.raises(AlignLabError, match=f"has {uploads.MAX_COLUMNS + 1} columns"):
        store.add(path, "wide.parquet")
    monkeypatch.setattr(uploads, "MAX_VALUES", 100)  # a list of 1,000 items in one row
    pq.write_table(pa.table({"messages": [[{"role": "user", "content": "hi"}] * 1_000]}), path)
    with pytest.raises(AlignLabError, match="has 2,000 values"):
        store.add(path, "long-list.parquet")
    pq.write_table(pa.table({"prompt": ["p"] * 3, "chosen": ["a"] * 3, "rejected": ["b"] * 3}), path)
    assert store.add(path, "fine.parquet").endswith(".parquet")  # within every limit: kept


def test_prefix_encoded_strings_and_fake_parquet_are_refused_in_one_line(tmp_path):
    store = UploadStore(tmp_path / "uploads")
    path = tmp_path / "delta.parquet"
    pq.write_table(pa.table({"prompt": ["p"] * 3}), path, use_dictionary=False,
                   column_encoding={"prompt": "DELTA_BYTE_ARRAY"})
    with pytest.raises(AlignLabError, match="'prompt' uses DELTA_BYTE_ARRAY encoding"):
        store.add(path, "delta.parquet")
    path.write_text("prompt,chosen\nnot,parquet\n")
    with pytest.raises(AlignLabError, match="^dataset: not a Parquet file that can be read") as refused:
        store.add(path, "fake.parquet")
    assert "\n" not in str(refused.value)


def test_csv_and_jsonl_rows_and_csv_columns_are_capped(tmp_path, monkeypatch):
    monkeypatch.setattr(uploads, "MAX_ROWS", 10)
    store = UploadStore(tmp_path / "uploads")
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n' * 11)
    with pytest.raises(AlignLabError, match="has more than 10 rows, the app takes at most 10"):
        store.add(jsonl, "rows.jsonl")
    csv_file = tmp_path / "rows.csv"
    csv_file.write_text("prompt,chosen,rejected\n" + '"two\nlines",a,b\n' * 10)  # 10 rows in 21 lines
    assert store.add(csv_file, "rows.csv").endswith(".csv")
    csv_file.write_text("prompt,chosen,rejected\n" + "p,a,b\n" * 11)
    with pytest.raises(AlignLabError, match="has more than 10 rows"):
        store.add(csv_file, "rows.csv")
    csv_file.write_text(",".join(f"c{i}" for i in range(uploads.MAX_COLUMNS + 1)) + "\n")
    with pytest.raises(AlignLabError, match=f"has {uploads.MAX_COLUMNS + 1} columns"):
        store.add(csv_file, "wide.csv")
    csv_file.write_text("x" * (uploads.MAX_HEADER_BYTES + 10))
    with pytest.raises(AlignLabError, match="header line is longer than 64 KB"):
        store.add(csv_file, "one-line.csv")


# --- chat ----------------------------------------------------------------------------------------
def words(text: str) -> int:
    return len(text.split())


def test_a_message_over_the_limits_gets_a_gentle_line(monkeypatch):
    assert message_notice("short", words) is None
    monkeypatch.setattr(chat_service, "MAX_MESSAGE_TOKENS", 3)
    assert message_notice("one two three four", words) == ("Your message is 4 tokens; the chat takes at most 3. "
                                                           "Shorten it and send it again.")
    long = "a" * (chat_service.MAX_MESSAGE_CHARS + 1)
    assert message_notice(long).startswith(f"Your message is {len(long):,} characters; the chat takes at most")


def test_the_oldest_turns_are_left_out_to_fit_the_token_window(monkeypatch):
    monkeypatch.setattr(chat_service, "MAX_CONTEXT_TOKENS", 41)  # 40 once "hi" is in
    monkeypatch.setattr(chat_service, "TURN_TOKENS", 0)
    history = [{"role": "user", "content": "u " * 10}, {"role": "assistant", "content": "a " * 10}] * 3  # 60 words
    other = [{"role": "user", "content": "u " * 10}, {"role": "assistant", "content": "b"}] * 3  # 33 words
    (kept, kept_other), note = fit_histories("hi", [history, other], words)
    assert kept == history[2:] and kept_other == other[2:]  # the same turns left out of both sides
    assert note == "The oldest 1 turn(s) were left out so the conversation fits the chat's 41 tokens."
    assert fit_histories("hi", [history[4:], other[4:]], words) == ([history[4:], other[4:]], "")


@pytest.fixture(scope="module")
def chat_app(served_app, tmp_path_factory):
    _, url = served_app(tmp_path_factory.mktemp("chat") / "runs")
    return Client(url, verbose=False)


def test_the_chat_says_inline_when_a_message_is_too_long_and_keeps_it(chat_app, monkeypatch):
    monkeypatch.setattr(chat_service, "MAX_MESSAGE_TOKENS", 5)
    text = "I went in with low expectations and came out with even lower ones"
    reference, aligned, _, _, box, notice = chat_app.predict(text, "base:tiny-random", "continue", 4, 1.0, 1.0, 3,
                                                             api_name="/chat")
    assert reference == aligned == []  # nothing was generated
    assert box == text and notice.startswith("Your message is ") and "the chat takes at most 5." in notice


def test_a_long_conversation_keeps_its_newest_turns(chat_app, monkeypatch):
    monkeypatch.setattr(chat_service, "MAX_CONTEXT_TOKENS", 50)
    views: tuple = ([], [])
    notices = []
    for turn in range(3):
        reference, aligned, _, _, _, notice = chat_app.predict(f"Tell me about film number {turn} in a few words.",
                                                               "base:tiny-random", "chat", 24, 1.0, 1.0, 3, *views,
                                                               api_name="/chat")
        views = (reference, aligned)
        notices.append(notice)
    assert notices[0] == "" and "were left out so the conversation fits the chat's 50 tokens" in notices[-1]
    assert len(views[0]) == 6  # the page still shows every turn; only the model's context was shortened


# --- the job queue, shared by several users ------------------------------------------------------
def test_users_stop_and_cancel_only_their_own_jobs_and_the_queue_is_capped(tmp_path):
    demo = create_app(tmp_path / "runs")
    _, url, _ = serve(demo, port=None, auth=["ada:lovelace", "bob:babbage"], block=False)
    jobs = demo.services.jobs
    jobs.close()  # no worker takes jobs: they stay queued for this test
    jobs.max_queued = 3
    try:
        ada = Client(url, auth=("ada", "lovelace"), verbose=False)
        bob = Client(url, auth=("bob", "babbage"), verbose=False)
        ada.predict(method="dpo", api_name="/start_run", **QUICK)
        ada.predict(method="dpo", api_name="/start_run", **QUICK)
        bob.predict(method="kto", api_name="/start_run", **QUICK)
        assert [job.owner for job in jobs.jobs] == ["ada", "ada", "bob"]
        with pytest.raises(AppError, match="queue: full, 3 jobs are waiting and it holds at most 3"):
            bob.predict(method="kto", api_name="/start_run", **QUICK)
        assert bob.predict(api_name="/cancel_queued") == ("Cancelled 1 queued job(s). 2 job(s) queued by other "
                                                          "users stay queued.")
        assert [job.state for job in jobs.jobs] == ["queued", "queued", "cancelled"]
        jobs.jobs[0].state = "running"  # as if the worker had started ada's first job
        assert bob.predict(api_name="/stop_run") == ("job: job 1 (dpo on tiny-random) was started by another user; "
                                                     "only they can stop it")
        assert not jobs.jobs[0].stop_requested
        assert ada.predict(api_name="/stop_run").startswith("Stopping job 1")
        assert jobs.jobs[0].stop_requested
        assert ada.predict(api_name="/cancel_queued") == "Cancelled 1 queued job(s)."
    finally:
        demo.close()


def test_accounts_are_parsed_one_per_user():
    assert parse_auth("ada:lovelace") == [("ada", "lovelace")]
    with pytest.raises(AlignLabError, match="user 'ada' is given twice"):
        parse_auth(["ada:one", "ada:two"])


# --- deleting a run that a process trains --------------------------------------------------------
def dead_pid() -> int:
    """The pid of a process that has exited."""
    result = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(result.stdout)


def test_a_run_that_a_process_trains_cannot_be_deleted(tmp_path):
    run_dir = rundir.create(tmp_path / "runs" / "r", {"run_id": "r", **RunConfig(method="dpo").to_dict()})
    rundir.write_status(run_dir, {"state": "running"})  # stamped with this (living) process
    assert rundir.is_training(run_dir)
    with pytest.raises(AlignLabError, match=f"run: r is being trained by process {os.getpid()} on "):
        rundir.delete_run(run_dir)
    assert run_dir.exists()
    status = rundir.read_status(run_dir)
    (run_dir / rundir.STATUS).write_text(json.dumps({**status, "host": "another-host"}))
    assert rundir.is_training(run_dir)  # a process elsewhere cannot be checked: taken to be alive
    (run_dir / rundir.STATUS).write_text(json.dumps({**status, "pid": dead_pid()}))
    assert not rundir.is_training(run_dir)  # killed: nothing trains it any more
    rundir.delete_run(run_dir)
    assert not run_dir.exists()


# --- serving beyond this machine -----------------------------------------------------------------
@pytest.mark.parametrize(("flags", "warned"), [
    (["--host", "0.0.0.0"], "from other machines (--host 0.0.0.0)"),
    (["--share"], "through a public gradio.live link (--share)"),
    (["--host", "0.0.0.0", "--auth", "ada:lovelace"], None),
    (["--host", "localhost"], None),
    ([], None),
])
def test_serving_to_the_network_without_auth_prints_a_warning(tmp_path, monkeypatch, capsys, flags, warned):
    import alignlab.ui.gradio.server as server_module

    served = []
    monkeypatch.setattr(server_module, "create_app", lambda *args: "demo")
    monkeypatch.setattr(server_module, "serve", lambda *args: served.append(args))
    with socket.socket() as probe:  # a free port: another test's app may hold the default one
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = cli.main(["app", *flags, "--port", str(port), "--output-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert served  # the app was still served: a warning, not a refusal
    if warned:
        assert err.count("\n") == 1 and warned in err and "add --auth user:password" in err
    else:
        assert "warning" not in err
    assert exposure_warning("::1", False, None) is None and exposure_warning("192.168.1.5", False, None)
