"""Blind votes, the engine: seeded A/B order, one intact JSON line per vote under concurrency, damaged lines
named and skipped, tallies with their Wilson interval and agreement with the reward, votes as preference pairs,
``votes:<run>`` datasets (alone and mixed), and a real tiny-random DPO run trained on a votes file."""

from __future__ import annotations

import json
import multiprocessing
import warnings
from pathlib import Path

import pytest

from alignlab import rundir
from alignlab.config import RunConfig
from alignlab.data import load_rows, resolve_dataset
from alignlab.errors import AlignLabError, AlignLabWarning
from alignlab.held_out import choose_held_out
from alignlab.stats import wilson_interval
from alignlab.task import task_prompts
from alignlab.votes import (
    NO_VOTES,
    Round,
    append_vote,
    blind_order,
    preference_rows,
    read_votes,
    reveal,
    reward_figure,
    run_votes,
    short_figure,
    summary,
    tally,
)

SAMPLING = {"max_new_tokens": 8, "temperature": 0.7, "top_p": 0.9, "seed": 3}


def make_round(number: int = 0, mode: str = "continue", seed: int = 1, rewards=(0.1, 0.6), **texts) -> Round:
    """A round on run ``lesson`` whose reference says 'dull' and whose aligned model says 'wonderful'."""
    return Round("lesson", f"Review {number}: the film", mode, texts.get("reference", f" was dull ({number})."),
                 texts.get("aligned", f" was wonderful ({number})."), "tiny-random", "lesson", SAMPLING, "sentiment",
                 *rewards, order_seed=seed)


def seed_showing(first: str) -> int:
    """A seed whose blind order shows ``first`` (reference or aligned) as A."""
    return next(seed for seed in range(100) if blind_order(seed)[0] == first)


def test_the_blind_order_is_drawn_from_the_recorded_seed():
    orders = [blind_order(seed) for seed in range(200)]
    assert set(orders) == {("reference", "aligned"), ("aligned", "reference")}
    assert 60 < orders.count(("aligned", "reference")) < 140  # both sides are A about as often
    assert [blind_order(seed) for seed in range(200)] == orders  # the seed alone decides it
    vote = make_round(seed=seed_showing("aligned")).record("A", "ada")
    assert vote["order"] == list(blind_order(vote["order_seed"])) == ["aligned", "reference"]
    assert vote["order_seed"] == seed_showing("aligned")


def test_a_vote_names_the_chosen_and_rejected_models_and_keeps_what_was_asked():
    shown_first = make_round(seed=seed_showing("reference"))
    assert shown_first.shown() == (shown_first.reference, shown_first.aligned)
    vote = shown_first.record("B", "  Ada   Lovelace ", when=12.5)
    assert (vote["outcome"], vote["chosen_model"], vote["rejected_model"]) == ("aligned", "aligned", "reference")
    assert (vote["chosen"], vote["rejected"]) == (" was wonderful (0).", " was dull (0).")
    assert vote["prompt"] == "Review 0: the film" and vote["voter"] == "Ada Lovelace" and vote["time"] == 12.5
    assert vote["sampling"] == SAMPLING and vote["reward"] == {"source": "sentiment", "reference": 0.1, "aligned": 0.6}
    assert vote["reference_model"] == "tiny-random" and vote["aligned_model"] == "lesson"
    chat = make_round(mode="chat", seed=seed_showing("reference")).record("A")
    assert chat["prompt"] == [{"role": "user", "content": "Review 0: the film"}] and chat["voter"] is None
    assert chat["chosen"] == [{"role": "assistant", "content": " was dull (0)."}]  # A was the reference
    for choice in ("tie", "both-bad"):
        undecided = make_round().record(choice)
        assert undecided["outcome"] == choice and undecided["chosen"] is None and undecided["chosen_model"] is None
    with pytest.raises(AlignLabError, match="vote: got 'C'"):
        make_round().record("C")
    assert reveal(vote) == ("A was the reference, B the aligned model (lesson). Your vote: the aligned model. "
                            "Reward (sentiment): A +0.100, B +0.600.")


def test_the_tally_counts_ties_and_both_bad_apart_with_a_wilson_interval_and_the_reward_agreement():
    aligned_first = seed_showing("aligned")
    votes = [make_round(i, seed=aligned_first).record("A") for i in range(8)]  # aligned, reward agrees
    votes += [make_round(8, seed=aligned_first).record("B"),  # reference chosen, reward prefers aligned
              make_round(9, seed=aligned_first, rewards=(0.3, 0.3)).record("B"),  # a reward tie is no agreement
              make_round(10, seed=aligned_first, rewards=(None, None)).record("A")]  # no reward: not judged
    votes += [make_round(11).record("tie") for _ in range(3)] + [make_round(12).record("both-bad")]
    counted = tally(votes)
    assert (counted.wins, counted.losses, counted.ties, counted.both_bad) == (9, 2, 3, 1)
    assert (counted.votes, counted.decisive, counted.agree, counted.judged) == (15, 11, 8, 10)
    assert counted.win_rate == pytest.approx(9 / 11) and counted.interval() == wilson_interval(9, 11)
    assert counted.agreement == pytest.approx(0.8) and counted.reward_source == "sentiment"
    people, agreement = summary(counted)
    assert people == ("People: aligned preferred in 82% of 11 decisive votes [95% CI 52%–95%] (9 aligned, "
                      "2 reference); 3 ties, 1 both bad.")
    assert agreement == ("Agreement: the reward (sentiment) prefers the reply people chose in 8 of 10 decisive "
                         "votes (80%).")
    assert short_figure(counted) == "82% [52%–95%] · 15 votes"
    assert summary(tally([])) == [NO_VOTES] and short_figure(tally([])) == ""
    assert summary(tally(votes[-4:])) == ["People: no decisive vote yet (3 ties, 1 both bad)."]


def test_the_reward_figure_comes_from_the_run_samples_paired_by_prompt(tmp_path):
    run = tmp_path / "lesson"
    rundir.create(run, {"method": "dpo", "reward": "sentiment"})
    assert reward_figure(run) is None  # before the run wrote its samples
    rundir.write_samples(run, [{"prompt": f"p{i % 4}", "reference": "", "aligned": "", "reference_reward": 0.0,
                                "aligned_reward": 1.0 if i % 4 < 3 else -1.0} for i in range(8)])
    figure = reward_figure(run)
    assert (figure.source, figure.prompts, figure.win_rate) == ("sentiment", 4, 0.75)
    assert (figure.low, figure.high) == wilson_interval(3, 4)
    assert summary(tally([]), figure)[1] == ("Reward (sentiment) on 4 held-out prompts: aligned better on 75% "
                                             "[95% CI 30%–95%].")


def test_votes_are_whole_lines_and_damaged_lines_are_named_and_skipped(tmp_path):
    path = rundir.votes_path(tmp_path, "lesson")
    assert read_votes(path) == ([], [])
    append_vote(path, make_round(0).record("A"))
    with open(path, "ab") as handle:  # damage: cut short, not a vote, a last line without its newline
        handle.write(b'{"vote": "A", "outc\n[1, 2]\n{"vote": "X", "outcome": "tie"}\n\xff\xfe\n{"vote": "tie"')
    append_vote(path, make_round(1).record("tie"))
    votes, problems = read_votes(path)
    assert [vote["prompt"] for vote in votes] == ["Review 0: the film", "Review 1: the film"]
    torn = "not valid JSON (cut short or edited?)"
    assert problems == [f"line 2: {torn}", "line 3: holds a JSON list, expected an object",
                        "line 4: vote is 'X', expected one of A, B, tie, both-bad", f"line 5: {torn}",
                        f"line 6: {torn}"]
    assert path.read_bytes().endswith(b'{"vote": "tie"\n' + json.dumps(votes[-1], ensure_ascii=False).encode() + b"\n")
    with pytest.warns(AlignLabWarning, match="skipped 5 damaged line"):
        assert len(load_rows(str(path), "preference")) == 1  # the tie is no pair


def _vote_many(path: str, worker: int, count: int) -> None:
    for number in range(count):  # long lines: a torn write would show
        append_vote(path, make_round(number, aligned=f"{worker}-{number} " + "wonderful " * 2000).record("A"))


def test_concurrent_writers_leave_one_intact_line_per_vote(tmp_path):
    path = rundir.votes_path(tmp_path, "lesson")
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_vote_many, args=(str(path), worker, 25)) for worker in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 101
    rows = [json.loads(line) for line in lines[:-1]]
    assert sorted(row["aligned"].split()[0] for row in rows) == sorted(f"{w}-{n}" for w in range(4) for n in range(25))
    assert read_votes(path)[1] == []


def test_votes_are_a_preference_dataset_without_ties_and_both_bad(tmp_path):
    votes = [make_round(0, seed=seed_showing("aligned")).record("B"), make_round(1).record("tie"),
             make_round(2).record("both-bad"), make_round(3, aligned="  ").record("A")]  # an empty answer: no pair
    assert preference_rows(votes) == [{"prompt": "Review 0: the film", "chosen": " was dull (0).",
                                       "rejected": " was wonderful (0)."}]
    path = rundir.votes_path(tmp_path, "lesson")
    for vote in votes:
        append_vote(path, vote)
    assert resolve_dataset("votes:lesson+positive-reviews", tmp_path) == f"{path}+positive-reviews"
    assert load_rows(str(path), "unpaired") == [
        {"prompt": "Review 0: the film", "completion": " was dull (0).", "label": True},
        {"prompt": "Review 0: the film", "completion": " was wonderful (0).", "label": False}]
    with pytest.raises(AlignLabError, match=r"no votes named 'nope' in .*_votes, expected one of: lesson"):
        resolve_dataset("votes:nope", tmp_path)
    with pytest.raises(AlignLabError, match="none empty"):
        resolve_dataset("votes:lesson+", tmp_path)
    with pytest.raises(AlignLabError, match="holds conversations .* and .* plain text"):
        load_rows(f"positive-reviews+{path}", "preference")
    only_ties = rundir.votes_path(tmp_path, "undecided")
    append_vote(only_ties, make_round(1).record("tie"))
    with pytest.raises(AlignLabError, match=r"no decisive vote to train on \(1 vote: 1 tie, 0 both bad"):
        load_rows(str(only_ties), "preference")


def test_a_run_config_reads_votes_as_the_path_of_the_file_and_mixes_them(tmp_path, pairs_file):
    path = rundir.votes_path(tmp_path, "lesson")
    for number in range(3):
        append_vote(path, make_round(number, seed=seed_showing("aligned")).record("A"))
    config = RunConfig(dataset=f"votes:lesson+{pairs_file}", output_dir=str(tmp_path))
    assert config.dataset == f"{path}+{pairs_file}"  # what config.json keeps: the very file
    rows = load_rows(config.dataset, "preference", "dpo")
    assert len(rows) == 3 + 12 and rows[0] == {"prompt": "Review 0: the film", "chosen": " was wonderful (0).",
                                               "rejected": " was dull (0)."}
    mixed = RunConfig(dataset="votes:lesson+positive-reviews", output_dir=str(tmp_path))
    assert choose_held_out(mixed).prompts == task_prompts("eval")  # the built-in task's held-out set
    assert run_votes(tmp_path, "lesson")[0].wins == 3


def test_dpo_trains_on_a_votes_file(tiny, tmp_path, capsys):
    from alignlab.cli import main

    output_dir = Path(tiny["output_dir"])
    aligned_first = seed_showing("aligned")
    for number in range(6):
        append_vote(rundir.votes_path(output_dir, "lesson"), make_round(number, seed=aligned_first).record("A"))
    append_vote(rundir.votes_path(output_dir, "lesson"), make_round(7).record("both-bad"))
    flags = [item for key, value in {**tiny, "dataset": "votes:lesson", "probe_every": 0}.items()
             for item in ("--" + key.replace("_", "-"), str(value))]
    with warnings.catch_warnings():
        warnings.simplefilter("error", AlignLabWarning)  # no damaged line, no empty pair
        assert main(["train", "--method", "dpo", *flags, "--run-id", "on-votes", "--quiet"]) == 0
    run = output_dir / "on-votes"
    assert rundir.read_status(run)["state"] == "finished" and rundir.has_model(run)
    assert rundir.read_config(run)["dataset"] == str(rundir.votes_path(output_dir, "lesson"))
    assert [row["step"] for row in rundir.read_metrics(run)[0] if "loss" in row] == [1, 2]
    assert main(["votes", "lesson", "--output-dir", str(output_dir)]) == 0
    assert "People: aligned preferred in 100% of 6 decisive votes" in capsys.readouterr().out
