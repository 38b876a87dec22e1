"""The built-in task's preference pairs can be aligned faithfully: every chosen and every rejected answer begins with
the opening its prompt requests, so a pair contrasts sentiment only, and ``make-prefs --prefill-opening`` (how the
shipped pairs were made) gives such pairs from any model.

The shipped file is read as it is; the builder runs for real on tiny-random.
"""

from __future__ import annotations

import json

from alignlab.data import load_rows, prompt_key
from alignlab.data_readers import read_jsonl
from alignlab.follow import begins_with, opening_followed, requested_opening
from alignlab.make_prefs import card_path, make_prefs, write_dataset_card
from alignlab.task import BUILTIN_TASK, task_dir, task_prompts


def test_every_shipped_pair_begins_with_its_opening_in_both_answers():
    rows = read_jsonl(task_dir() / "prefs.jsonl")
    assert len(load_rows(BUILTIN_TASK, "preference")) == len(rows)  # what a run trains on
    assert len(rows) >= 280  # nearly every training opening gives a pair
    prompts = [row["prompt"] for row in rows]
    for side in ("chosen", "rejected"):
        answers = [row[side][-1]["content"] for row in rows]
        assert opening_followed(prompts, answers) == [True] * len(rows), side
    # the contrast is sentiment: the chosen answer is the more positive one, by a clear margin on average
    gaps = [row["chosen_score"] - row["rejected_score"] for row in rows]
    assert min(gaps) >= 0.05 and sum(gaps) / len(gaps) > 0.8


def test_the_shipped_pairs_use_training_openings_only_and_say_how_they_were_made():
    rows = load_rows(BUILTIN_TASK, "preference")
    train = {prompt_key(prompt) for prompt in task_prompts("train")}
    held_out = {prompt_key(prompt) for prompt in task_prompts("eval")}
    keys = {prompt_key(row["prompt"]) for row in rows}
    assert keys <= train and not keys & held_out
    card = card_path(task_dir() / "prefs.jsonl").read_text()
    assert "--prefill-opening" in card and '"prefill_opening": true' in card


def test_make_prefs_prefills_the_requested_opening_in_both_answers(tmp_path):
    prompts = task_prompts("train")[:3] + ["Review 1: the film"]  # the last requests no opening
    output = tmp_path / "pairs.jsonl"
    report = make_prefs("tiny-random", prompts, output, samples_per_prompt=3, max_new_tokens=6, min_gap=0.0,
                        prefill_opening=True)
    assert report.prefill_opening and report.prefilled == 3 and report.samples_per_prompt == 3
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    by_opening = {requested_opening(row["prompt"]): row for row in rows if requested_opening(row["prompt"])}
    assert by_opening, "no pair made for a prompt with an opening"
    for opening, row in by_opening.items():
        for side in ("chosen", "rejected"):
            assert begins_with(row[side][0]["content"], opening), (side, row[side])
            assert len(row[side][0]["content"]) > len(opening)  # the model wrote something after it
    write_dataset_card(report, card_path(output), "alignlab data make-prefs --prefill-opening")
    assert "Opening prefilled: 3 of 4 prompts" in card_path(output).read_text()


def test_without_prefill_make_prefs_leaves_the_answers_as_sampled(tmp_path):
    prompts = task_prompts("train")[:2]
    output = tmp_path / "plain.jsonl"
    report = make_prefs("tiny-random", prompts, output, samples_per_prompt=2, max_new_tokens=4, min_gap=0.0)
    assert not report.prefill_opening and report.prefilled == 0
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    prompts = [row["prompt"] for row in rows for _ in ("chosen", "rejected")]
    answers = [row[side][0]["content"] for row in rows for side in ("chosen", "rejected")]
    assert answers and not any(opening_followed(prompts, answers))  # a random model does not write the opening
