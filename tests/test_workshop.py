"""Workshop mode's engine: owners in configs and labels, the leaderboard and class frontier, who may stop what,
queue ETAs and how many jobs run at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alignlab import rundir
from alignlab.config import RunConfig, common_knobs, config_of
from alignlab.errors import AlignLabError
from alignlab.eta import Pace, measured_pace, pace, recent_pace, schedule
from alignlab.job_slots import GIB, JOB_GIB, free_gpu_bytes, job_slots
from alignlab.labels import owner_of, run_label
from alignlab.workshop import check_budget, class_points, leaderboard, may_control


def make_run(output_dir: Path, run_id: str, owner: str, state: str, reward: float, kl: float, **settings) -> Path:
    """A run directory as the runner leaves it (config with its owner, status, metric rows), without training."""
    config = RunConfig.from_dict({"model": "tiny-random", "owner": owner, **settings})
    run_dir = rundir.create(output_dir / run_id, {"run_id": run_id, **config.to_dict()})
    rundir.write_status(run_dir, {"run_id": run_id, "state": state, "step": 12})
    rows = [{"step": 0, "probe/reward": 0.0, "probe/kl": 0.0}, {"step": 12, "loss": 0.5},
            {"step": 12, "probe/reward": reward, "probe/kl": kl, "probe/reward_se": 0.05}]
    (run_dir / rundir.METRICS).write_text("".join(json.dumps(row) + "\n" for row in rows))
    return run_dir


@pytest.fixture
def room(tmp_path) -> list[dict]:
    """Three participants' runs: ada's best reward drifts far, bob's stays close, a stopped and an ownerless run."""
    runs = tmp_path / "runs"
    make_run(runs, "r1-dpo", "ada", "finished", 0.90, 0.80, method="dpo", beta=0.05)
    make_run(runs, "r2-dpo", "ada", "finished", 0.40, 0.10, method="dpo", beta=0.5)
    make_run(runs, "r3-ipo", "bob", "finished", 0.60, 0.20, method="dpo", beta=0.1, loss_type="ipo")
    make_run(runs, "r4-kto", "bob", "stopped", 2.00, 0.01, method="kto")  # stopped mid-way: not a result
    make_run(runs, "r5-sft", "cy", "finished", 0.30, 1.50, method="sft")
    make_run(runs, "r6-dpo", "", "finished", 5.00, 0.00, method="dpo")  # no owner: not in the class
    return rundir.list_runs(runs)


def test_the_owner_is_kept_in_the_config_and_named_in_labels(tmp_path, room):
    run_dir = make_run(tmp_path / "more", "r7", "  ada  ", "finished", 0.1, 0.1, method="dpo")
    assert config_of(run_dir).owner == "ada"  # stripped, and read back from config.json
    labels = {run["run_id"]: run_label(run) for run in room}
    assert labels["r1-dpo"] == "dpo · β 0.05 · 12 steps · reward +0.90 · by ada — r1-dpo"
    assert labels["r6-dpo"] == "dpo · β 0.5 · 12 steps · reward +5.00 — r6-dpo"  # no owner, no "by"
    assert owner_of({"config": {"owner": 3}}) is None  # a damaged config names nobody
    for bad in ("x" * 65, "ada\nbob", 42):
        with pytest.raises(AlignLabError, match="owner: got"):
            RunConfig(owner=bad)
    assert "owner" not in {knob.name for knob in common_knobs()}  # set by the app, not a knob of forms or flags


def test_class_points_are_every_owned_finished_run(room):
    points = class_points(room)
    assert [(p["owner"], p["run_id"]) for p in points] == [("ada", "r1-dpo"), ("ada", "r2-dpo"), ("bob", "r3-ipo"),
                                                           ("cy", "r5-sft")]
    first = points[0]
    assert (first["reward"], first["kl"], first["reward_se"], first["kl_setting"]) == (0.9, 0.8, 0.05, "β 0.05")


def test_the_leaderboard_ranks_each_participants_best_run_within_the_kl_budget(room):
    unlimited = leaderboard(room)
    assert [(r["rank"], r["owner"], r["run_id"]) for r in unlimited] == [(1, "ada", "r1-dpo"), (2, "bob", "r3-ipo"),
                                                                         (3, "cy", "r5-sft")]
    assert unlimited[0]["runs"] == 2
    tight = leaderboard(room, kl_budget=0.5)  # ada's far-drifting run no longer counts: her close one does
    assert [(r["rank"], r["owner"], r["run_id"]) for r in tight] == [(1, "bob", "r3-ipo"), (2, "ada", "r2-dpo"),
                                                                     (None, "cy", None)]
    best = tight[0]  # an IPO run reads as one on the board, not as plain DPO
    assert (best["method"], best["kl_setting"], best["steps"], best["kl"]) == ("dpo (ipo)", "β 0.1", 12, 0.2)
    assert [r["owner"] for r in leaderboard(room, kl_budget=0.0)] == ["ada", "bob", "cy"]  # none placed
    with pytest.raises(AlignLabError, match="kl_budget: got -1"):
        leaderboard(room, kl_budget=-1)
    assert check_budget("") is None and check_budget(0) == 0.0
    with pytest.raises(AlignLabError, match="kl_budget"):
        check_budget("nan")


def test_participants_control_their_own_jobs_and_the_instructor_any():
    assert may_control("ada", "ada", "carol") and may_control("ada", "carol", "carol")
    assert not may_control("ada", "bob", "carol") and not may_control("ada", None, "carol")
    assert not may_control("ada", "bob", None)
    assert may_control(None, "bob", "carol")  # a job without an owner (no auth, no workshop): anyone's


def test_the_queue_stops_and_cancels_by_owner_or_instructor(tmp_path):
    from alignlab.ui.gradio.jobs import JobQueue

    jobs = JobQueue(tmp_path / "runs", tmp_path / "jobs", instructor="carol", require_owner=True)
    jobs.close()  # no worker: jobs stay as this test sets them
    with pytest.raises(AlignLabError, match="name: got no name"):
        jobs.submit(RunConfig(model="tiny-random"))
    ada, bob = (jobs.submit(RunConfig(model="tiny-random"), owner=name) for name in ("ada", "bob"))
    assert (ada.config.owner, bob.config.owner) == ("ada", "bob")  # the run's config carries it
    ada.state = "running"
    with pytest.raises(AlignLabError, match=r"was started by ada; only ada or the instructor \(carol\) can stop it"):
        jobs.stop("bob")
    with pytest.raises(AlignLabError, match=r"job 1 .*started by ada; only ada or the instructor"):
        jobs.stop_or_cancel(ada.number, "bob")
    assert not ada.stop_requested
    with pytest.raises(AlignLabError, match="job: no job 9 trains or waits"):
        jobs.stop_or_cancel(9, "carol")
    assert jobs.stop_or_cancel(bob.number, "bob") is bob and bob.state == "cancelled"
    assert jobs.stop_or_cancel(ada.number, "carol") is ada and ada.stop_requested


def test_eta_comes_from_recent_jobs_of_the_model():
    rows = [{"step": step, "time": 100.0 + 0.5 * step} for step in range(1, 11)]
    measured = measured_pace(rows, wall_s=12.0)
    assert measured.step_s == pytest.approx(0.5) and measured.startup_s == pytest.approx(12.0 - 0.5 * 10)
    assert measured_pace(rows[:1], wall_s=12.0) is None  # one step cannot be timed
    assert measured.seconds(20) == pytest.approx(measured.startup_s + 10.0) and measured.seconds(0) is None
    older = [Pace(100.0, 9.0)] * 10
    assert recent_pace(older + [measured] * 5) == measured  # only the most recent count
    # two slots, one busy for 10 s: the first queued job starts now, the second when the busy one ends
    assert schedule([10.0], [measured.seconds(20)] * 2, slots=2) == [
        (0.0, measured.seconds(20)), (10.0, 10.0 + measured.seconds(20))]
    # one busy for longer than a job takes: the second starts on the slot the first one frees
    assert schedule([60.0], [measured.seconds(20)] * 2, slots=2) == [
        (0.0, measured.seconds(20)), (measured.seconds(20), 2 * measured.seconds(20))]
    assert schedule([], [None, 10.0]) == [None, None]  # an unknown job makes the ones after it unknown
    assert schedule([None], [10.0], slots=2) == [(0.0, 10.0)]  # a free slot is known even beside an unknown one


def test_several_jobs_at_once_need_a_gpu_with_room_for_them():
    assert job_slots(1, None) == (1, None)
    with pytest.raises(AlignLabError, match="max_jobs: got 2, but this machine has no CUDA GPU"):
        job_slots(2, None)
    for bad in (0, -1, 1.5, True):
        with pytest.raises(AlignLabError, match="max_jobs: got"):
            job_slots(bad, 80 * GIB)
    assert job_slots(3, int(3 * JOB_GIB * GIB)) == (3, None)
    slots, note = job_slots(8, int(2.5 * JOB_GIB * GIB))
    assert slots == 2 and "running 2 at once" in note
    assert job_slots(4, GIB)[0] == 1  # less than one job's memory free: still one at a time
    assert job_slots(4, 20 * GIB, job_gib=10)[0] == 2


def test_the_instructor_is_an_account_or_gives_the_key(capsys):
    from alignlab.cli import main
    from alignlab.ui.gradio.server import instructor_note, parse_auth, workshop_settings

    room = workshop_settings(True, "carol", 0.5, None)  # no accounts: a fresh key proves who the instructor is
    assert room.kl_budget == 0.5 and len(room.key) >= 8 and room.key != workshop_settings(True, "carol", None, None).key
    assert room.key in instructor_note(room) and "'carol'" in instructor_note(room)
    for name, key in (("carol", ""), ("CAROL ", ""), ("carol", "not-the-key")):
        with pytest.raises(AlignLabError, match="name: .* is the instructor's; taking it needs the instructor key"):
            room.set_name("page-1", name, key)
    assert room.name_of("page-1") is None and not room.is_instructor("Carol")
    assert room.set_name("page-1", " carol ", room.key) == "carol" and room.is_instructor(room.name_of("page-1"))
    assert room.set_name("page-2", "ada") == "ada" and not room.is_instructor("ada")
    with pytest.raises(AlignLabError, match=r"kl_budget: only the instructor \(carol\) can change it"):
        room.set_kl_budget("0.1", "ada")
    assert room.set_kl_budget("0.1", "carol") == 0.1 and room.kl_budget == 0.1

    accounts = parse_auth(["ada:lovelace", "carol:teaches"])
    assert workshop_settings(True, "carol", None, accounts).key is None  # the login proves it: no key
    assert workshop_settings(True, None, None, None).instructor is None  # no instructor: the budget stays
    with pytest.raises(AlignLabError, match=r"instructor: got 'bob', expected one of the --auth accounts \(ada, "):
        workshop_settings(True, "bob", None, accounts)
    assert workshop_settings(False, None, None, None) is None

    refused = [(["--instructor", "carol"], "error: workshop: --instructor and --kl-budget belong to workshop"),
               (["--workshop", "--kl-budget", "-1"], "error: kl_budget: got -1.0, expected a number ≥ 0"),
               (["--workshop", "--instructor", "bob", "--auth", "ada:x"], "error: instructor: got 'bob'"),
               (["--max-jobs", "0"], "error: max_jobs: got 0, expected a whole number ≥ 1")]
    if free_gpu_bytes() is None:  # on a GPU machine two jobs at once are allowed (and the app would start)
        refused.append((["--max-jobs", "2"], "error: max_jobs: got 2, but this machine has no CUDA GPU"))
    for argv, error in refused:
        assert main(["app", *argv]) == 2, argv
        assert capsys.readouterr().err.startswith(error), argv


def test_pace_is_the_time_per_step_between_logged_steps_and_the_time_left():
    rows = [{"step": 0, "probe/reward": 0.1}, {"step": 1, "time": 100.0}, {"step": 2}, {"step": 5, "time": 102.0}]
    assert pace(rows, total_steps=25) == (0.5, 10.0)  # loading before step 1 is not counted as training
    assert pace(rows, total_steps=None) == (0.5, None)
    assert pace(rows[:2], total_steps=25) == (None, None)
