"""Workshop mode through the app's API (gradio_client), with two participants and an instructor.

ada and bob each name their page and train a tiny-random DPO run (probe on, so each run gets a reward-vs-KL
point); the class leaderboard ranks them, only the instructor sets the KL budget, the queue shows positions and
an ETA once a job has ended, bob cannot stop ada's job, and the instructor can. Without accounts the instructor
is whoever gives the instructor key with the name; with accounts (``--auth``), whoever signs in as the account.
"""

from __future__ import annotations

import pytest
from conftest import wait_for
from gradio_client import Client
from gradio_client.exceptions import AppError

from alignlab.config import RunConfig
from alignlab.rundir import list_runs
from alignlab.ui.gradio.jobs import JobQueue
from alignlab.ui.gradio.server import parse_auth, workshop_settings
from alignlab.ui.gradio.workshop import job_times
from alignlab.workshop import leaderboard

pytestmark = [pytest.mark.slow, pytest.mark.ci, pytest.mark.timeout(420)]
QUICK = dict(model="tiny-random", batch_size=2, max_length=64, max_completion_length=8, max_steps=2, probe_every=2)



@pytest.fixture(scope="module")
def app(served_app, tmp_path_factory):
    room = workshop_settings(True, "carol", None, None)  # no accounts: the instructor needs the key
    return served_app(tmp_path_factory.mktemp("workshop") / "runs", workshop=room)


def participant(url: str, name: str, key: str = "") -> Client:
    client = Client(url, verbose=False)
    shown_name, yours, *_ = client.predict(name, key, api_name="/set_name")
    assert shown_name == name and f"You are **{name}**" in yours, yours
    return client


def test_the_instructors_name_needs_the_key(app):
    demo, url = app
    key = demo.services.workshop.key
    assert key and len(key) >= 8
    mallory = Client(url, verbose=False)
    for typed, wrong in (("carol", ""), (" Carol ", ""), ("carol", key[::-1] + "x")):
        _, refused, *_ = mallory.predict(typed, wrong, api_name="/set_name")
        assert refused.startswith("✗ name:") and "needs the instructor key" in refused, refused
    with pytest.raises(AppError, match="name: got no name"):  # still nobody: cannot queue a run
        mallory.predict(method="dpo", api_name="/start_run", **QUICK)
    _, refused, *_ = mallory.predict("0.1", api_name="/set_kl_budget")
    assert refused == "✗ kl_budget: only the instructor (carol) can change it"
    carol = participant(url, "carol", key)
    shown, accepted, *_ = carol.predict(" 0.1 ", api_name="/set_kl_budget")
    assert (shown, accepted, demo.services.workshop.kl_budget) == ("0.1", "✓ KL budget: 0.1", 0.1)
    _, refused, *_ = carol.predict("a lot", api_name="/set_kl_budget")
    assert refused.startswith("✗ kl_budget: got 'a lot', expected a number ≥ 0")
    shown, accepted, *_ = carol.predict("", api_name="/set_kl_budget")
    assert (shown, accepted, demo.services.workshop.kl_budget) == ("", "✓ KL budget: no limit", None)


def test_two_participants_train_rank_and_only_the_instructor_stops_anyone(app):
    demo, url = app
    ada, bob = (participant(url, name) for name in ("ada", "bob"))
    carol = participant(url, "carol", demo.services.workshop.key)
    assert ada.predict(method="dpo", dpo__beta=0.1, api_name="/start_run", **QUICK).startswith("Queued job 1")
    assert bob.predict(method="dpo", dpo__beta=0.5, api_name="/start_run", **QUICK).startswith("Queued job 2")
    queue = ada.predict(api_name="/class_queue")
    assert [(row["position"], row["owner"], row["state"]) for row in queue] == [(1, "ada", "training"),
                                                                                (2, "bob", "queued")]
    assert queue[1]["starts_in_s"] is None  # nothing has ended on this machine yet: unknown
    # each page's Train tab follows its own job: bob sees his job 2 while ada's job 1 trains
    assert (ada.predict(api_name="/job_status")["job"], bob.predict(api_name="/job_status")["job"]) == (1, 2)
    wait_for(lambda: all(job.state == "finished" for job in demo.services.jobs.jobs), 300)

    runs = list_runs(demo.services.runs_dir)
    assert sorted(run["config"]["owner"] for run in runs) == ["ada", "bob"]
    board = bob.predict(api_name="/leaderboard")
    assert [row["rank"] for row in board] == [1, 2] and {row["owner"] for row in board} == {"ada", "bob"}
    assert board[0]["reward"] >= board[1]["reward"]
    assert board == leaderboard(runs)  # the engine's ranking, served as is

    _, refused, *_ = bob.predict("0.5", api_name="/set_kl_budget")  # budget, note, table, figure
    assert refused == "✗ kl_budget: only the instructor (carol) can change it"
    assert demo.services.workshop.kl_budget is None
    budget = max(0.0, min(row["kl"] for row in board))  # only the run closest to its reference counts
    _, accepted, *_ = carol.predict(str(budget), api_name="/set_kl_budget")
    assert accepted == f"✓ KL budget: {budget:g}" and demo.services.workshop.kl_budget == budget
    tight = bob.predict(api_name="/leaderboard")
    assert tight == leaderboard(runs, kl_budget=budget) and tight[0]["rank"] == 1 and tight[0]["kl"] <= budget

    long_job = ada.predict(method="dpo", api_name="/start_run", **{**QUICK, "max_steps": 500, "probe_every": 0})
    assert long_job.startswith("Queued job 3")
    bob.predict(method="dpo", api_name="/start_run", **QUICK)
    queue = bob.predict(api_name="/class_queue")
    waiting = next(row for row in queue if row["owner"] == "bob")
    assert waiting["position"] == 2 and waiting["starts_in_s"] is not None  # two tiny-random jobs ended: an ETA
    assert waiting["done_in_s"] > waiting["starts_in_s"]
    third = demo.services.jobs.jobs[2]
    wait_for(lambda: third.state == "running", 120)
    assert bob.predict(api_name="/stop_run") == (f"job: job 3 ({third.run_id}) was started by ada; only ada or "
                                                 "the instructor (carol) can stop it")
    assert bob.predict(3, api_name="/stop_job").startswith("✗ job: job 3")
    assert not third.stop_requested
    assert bob.predict(4, api_name="/stop_job") == "✓ Cancelled job 4 (bob)."  # his own, still waiting
    assert carol.predict(3, api_name="/stop_job") == "✓ Stopping job 3 (ada): it saves what it has."
    wait_for(lambda: third.state == "stopped", 120)


@pytest.fixture(scope="module")
def accounts_app(served_app, tmp_path_factory):
    """Workshop mode with accounts: the account is the name, and the instructor is the account --instructor names."""
    auth = ["ada:lovelace", "bob:babbage", "carol:teaches"]
    room = workshop_settings(True, "carol", None, parse_auth(auth))
    assert room.key is None  # the login proves who the instructor is
    return served_app(tmp_path_factory.mktemp("workshop-auth") / "runs", {"auth": auth}, workshop=room)


def test_with_accounts_the_account_is_the_name_and_the_instructor_signs_in(accounts_app):
    demo, url = accounts_app
    ada, bob, carol = (Client(url, auth=(user, password), verbose=False)
                       for user, password in (("ada", "lovelace"), ("bob", "babbage"), ("carol", "teaches")))
    shown, yours, *_ = bob.predict("carol", "", api_name="/set_name")  # typing another name changes nothing
    assert shown == "bob" and "You are **bob**" in yours
    ada.predict(method="dpo", api_name="/start_run", **{**QUICK, "max_steps": 500, "probe_every": 0})
    ada.predict(method="dpo", api_name="/start_run", **QUICK)
    first, second = demo.services.jobs.jobs
    assert (first.owner, first.config.owner, second.state) == ("ada", "ada", "queued")
    assert bob.predict(second.number, api_name="/stop_job") == (
        "✗ job: job 2 (dpo on tiny-random) was started by ada; only ada or the instructor (carol) can cancel it")
    assert second.state == "queued"
    assert carol.predict(second.number, api_name="/stop_job") == "✓ Cancelled job 2 (ada)."
    wait_for(lambda: first.state == "running", 120)
    assert bob.predict(api_name="/stop_run").startswith("job: ") and not first.stop_requested
    assert carol.predict(first.number, api_name="/stop_job") == "✓ Stopping job 1 (ada): it saves what it has."
    wait_for(lambda: first.state == "stopped", 120)


def test_two_slots_train_two_jobs_at_once(tmp_path):
    """``max_jobs=2`` (what --max-jobs 2 gives on a GPU with room): two workers train side by side, a third job
    waits, and closing the queue stops both."""
    jobs = JobQueue(tmp_path / "runs", tmp_path / "jobs", max_jobs=2, require_owner=True)
    long = {**QUICK, "max_steps": 500, "probe_every": 0}
    try:
        first, second, third = (jobs.submit(RunConfig(method="dpo", **long), owner=name)
                                for name in ("ada", "bob", "cy"))
        wait_for(lambda: first.state == second.state == "running", 180)
        assert first.run_dir != second.run_dir and third.state == "queued"
        assert job_times(jobs)[third.number] is None  # nothing has ended here: its start cannot be told
        assert jobs.stop("bob") is second  # with several training, a user's Stop is their own job's
    finally:
        jobs.close()
    wait_for(lambda: first.state == second.state == "stopped", 120)
    assert third.state == "cancelled"
