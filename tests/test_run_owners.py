"""Runs belong to whoever started them: on a shared app (``--auth`` accounts, or workshop mode) only a run's owner
or the instructor (the admin account with ``--auth`` alone) deletes or resumes it; anyone lists, reads and chats
with it. A single-user app (neither) asks nobody.

Through the app's API (gradio_client) on a served app. The runs are run folders as a stopped run leaves them (its
config naming the owner, a checkpoint to resume from); the queue has no worker, so a resume stays queued.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from alignlab import rundir
from alignlab.config import RunConfig
from alignlab.ui.gradio.app import create_app
from alignlab.ui.gradio.server import serve, workshop_settings

pytestmark = pytest.mark.timeout(180)


def stopped_run(runs: Path, run_id: str, owner: str = "") -> Path:
    """A run folder as a stopped run of ``owner`` leaves it: config, status, a metric row, a checkpoint."""
    config = RunConfig(model="tiny-random", owner=owner)
    run_dir = rundir.create(runs / run_id, {"run_id": run_id, **config.to_dict()})
    rundir.write_status(run_dir, {"run_id": run_id, "state": "stopped", "step": 2})
    (run_dir / rundir.METRICS).write_text('{"step": 2, "time": 1.0, "loss": 0.5}\n')
    checkpoint = rundir.checkpoints_dir(run_dir) / f"{rundir.CHECKPOINT_PREFIX}2"
    checkpoint.mkdir(parents=True)
    (checkpoint / rundir.TRAINER_STATE).write_text("{}")
    return run_dir


@pytest.fixture
def served():
    """Serve an app built by the test (``served(demo, auth)``), its queue without a worker; closed after."""
    demos = []

    def serve_app(demo, auth=None) -> str:
        demo.services.jobs.close()  # no worker takes jobs: a resume stays queued
        demos.append(demo)
        return serve(demo, port=None, auth=auth, block=False)[1]

    yield serve_app
    for demo in demos:
        demo.close()


def runs_seen(client: Client) -> list[str]:
    """The run ids the client's Runs tab lists (listing also lets its run picker take them)."""
    table, *_ = client.predict(api_name="/list_runs")
    return [row[0] for row in table["data"]]


def test_with_accounts_only_the_owner_or_the_admin_deletes_or_resumes_a_run(tmp_path, served):
    runs = tmp_path / "runs"
    demo = create_app(runs, admin="root")
    url = served(demo, auth=["ada:lovelace", "bob:babbage", "root:hunter2"])
    for run_id in ("ada-1", "ada-2", "ada-3"):
        stopped_run(runs, run_id, owner="ada")
    stopped_run(runs, "from-the-cli")  # no owner: started outside the app
    ada, bob, root = (Client(url, auth=account, verbose=False)
                      for account in (("ada", "lovelace"), ("bob", "babbage"), ("root", "hunter2")))
    for client in (ada, bob, root):  # everyone reads every run
        assert sorted(runs_seen(client)) == ["ada-1", "ada-2", "ada-3", "from-the-cli"]

    refused = "run: ada-1 belongs to ada; only ada or the admin (root) can {} it"
    with pytest.raises(AppError, match=refused.format("delete").replace("(", r"\(").replace(")", r"\)")):
        bob.predict("ada-1", [], api_name="/delete_run")
    with pytest.raises(AppError, match=refused.format("resume").replace("(", r"\(").replace(")", r"\)")):
        bob.predict("ada-1", api_name="/resume_run")
    with pytest.raises(AppError, match=r"from-the-cli has no owner .*only the admin \(root\) can delete it"):
        bob.predict("from-the-cli", [], api_name="/delete_run")
    assert (runs / "ada-1").is_dir() and (runs / "from-the-cli").is_dir() and demo.services.jobs.jobs == []
    assert rundir.read_status(runs / "ada-1")["state"] == "stopped"

    assert "Queued job 1: `ada-1` continues after step 2" in ada.predict("ada-1", api_name="/resume_run")
    assert "Queued job 2: `ada-2` continues after step 2" in root.predict("ada-2", api_name="/resume_run")
    assert [(job.resume.name, job.owner) for job in demo.services.jobs.jobs] == [("ada-1", "ada"), ("ada-2", "ada")]
    assert ada.predict("ada-3", [], api_name="/delete_run")[-1] == "Deleted `ada-3`."
    assert root.predict("from-the-cli", [], api_name="/delete_run")[-1] == "Deleted `from-the-cli`."
    assert sorted(runs_seen(bob)) == ["ada-1", "ada-2"]


def test_in_a_workshop_only_the_participant_or_the_instructor_deletes_or_resumes_a_run(tmp_path, served):
    runs = tmp_path / "runs"
    room = workshop_settings(True, "carol", None, None)  # no accounts: the instructor's name needs the key
    demo = create_app(runs, workshop=room)
    url = served(demo)
    for run_id in ("ada-1", "ada-2", "ada-3"):
        stopped_run(runs, run_id, owner="ada")
    pages = {}
    for name, key in (("ada", ""), ("bob", ""), ("carol", room.key)):
        pages[name] = Client(url, verbose=False)
        assert pages[name].predict(name, key, api_name="/set_name")[0] == name
    nameless = Client(url, verbose=False)
    for client in (*pages.values(), nameless):
        assert sorted(runs_seen(client)) == ["ada-1", "ada-2", "ada-3"]

    for client in (pages["bob"], nameless):
        with pytest.raises(AppError, match=r"run: ada-1 belongs to ada; only ada or the instructor \(carol\) can "
                                           "delete it"):
            client.predict("ada-1", [], api_name="/delete_run")
        with pytest.raises(AppError, match=r"run: ada-1 belongs to ada; only ada or the instructor \(carol\) can "
                                           "resume it"):
            client.predict("ada-1", api_name="/resume_run")
    assert (runs / "ada-1").is_dir() and demo.services.jobs.jobs == []

    assert "Queued job 1: `ada-1`" in pages["ada"].predict("ada-1", api_name="/resume_run")
    assert "Queued job 2: `ada-2`" in pages["carol"].predict("ada-2", api_name="/resume_run")
    assert [job.owner for job in demo.services.jobs.jobs] == ["ada", "ada"]  # ada stops them: her runs
    assert pages["carol"].predict("ada-3", [], api_name="/delete_run")[-1] == "Deleted `ada-3`."
    assert not (runs / "ada-3").exists()


def test_on_a_single_user_app_anyone_deletes_or_resumes_any_run(tmp_path, served):
    runs = tmp_path / "runs"
    demo = create_app(runs)
    url = served(demo)
    stopped_run(runs, "ada-1", owner="ada")  # from an earlier shared app, say
    stopped_run(runs, "ada-2", owner="ada")
    client = Client(url, verbose=False)
    assert sorted(runs_seen(client)) == ["ada-1", "ada-2"]
    assert "Queued job 1: `ada-1`" in client.predict("ada-1", api_name="/resume_run")
    assert client.predict("ada-2", [], api_name="/delete_run")[-1] == "Deleted `ada-2`."


def test_with_accounts_alone_instructor_names_the_admin_account():
    from alignlab.errors import AlignLabError
    from alignlab.ui.gradio.server import parse_auth

    accounts = parse_auth(["ada:lovelace", "root:hunter2"])
    assert workshop_settings(False, "root", None, accounts) is None  # no workshop: the admin, for create_app
    with pytest.raises(AlignLabError, match=r"instructor: got 'bob', expected one of the --auth accounts \(ada, "):
        workshop_settings(False, "bob", None, accounts)
    with pytest.raises(AlignLabError, match="with --auth accounts alone, --instructor names the admin account"):
        workshop_settings(False, "root", None, None)
