"""Datasets: built-in task, formats and conversions, HH transcripts, clear errors."""

import json

import pytest

from alignlab.data import load_rows, parse_transcript, task_openings, task_prompts
from alignlab.errors import AlignLabError


def test_builtin_task_has_enough_prompts_and_pairs():
    train, held_out = task_openings("train"), task_openings("eval")
    assert len(train) + len(held_out) >= 300 and len(held_out) >= 64  # honest eval: >= 64 held-out prompts
    assert not set(train) & set(held_out)
    pairs = load_rows("positive-reviews", "preference")
    assert len(pairs) >= 256
    assert all(p["chosen"] != p["rejected"] for p in pairs)
    held_out_texts = {json.dumps(p) for p in task_prompts("eval")}
    assert not any(json.dumps(p["prompt"]) in held_out_texts for p in pairs)  # no held-out prompt trains


def test_builtin_task_prompts_are_chat_requests_and_pairs_are_whole_sentences():
    (first,) = task_prompts("eval")[0]
    assert first["role"] == "user" and task_openings("eval")[0] in first["content"]
    pairs = load_rows("positive-reviews", "preference")
    answers = [p[side][0]["content"] for p in pairs for side in ("chosen", "rejected")]
    assert all(p["chosen"][0]["role"] == "assistant" for p in pairs)
    ended = sum(a.rstrip().endswith((".", "!", "?", '"', "'", ")")) for a in answers) / len(answers)
    assert ended > 0.9, ended


def test_conversions_from_pairs(pairs_file):
    assert len(load_rows(str(pairs_file), "unpaired")) == 24
    sft = load_rows(str(pairs_file), "sft")
    assert sft[0]["completion"] == " was wonderful and moving."
    assert {"prompt"} == set(load_rows(str(pairs_file), "prompt")[0])
    assert len(load_rows("positive-reviews", "prompt")) == len(task_prompts("train"))


def test_hh_transcripts_become_conversations(tmp_path):
    rows = [{"chosen": "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?",
             "rejected": "\n\nHuman: Hi there\n\nAssistant: Go away."}]
    path = tmp_path / "hh.jsonl"
    path.write_text(json.dumps(rows[0]) + "\n")
    (row,) = load_rows(str(path), "preference")
    assert row["prompt"] == [{"role": "user", "content": "Hi there"}]
    assert row["chosen"] == [{"role": "assistant", "content": "Hello! How can I help?"}]
    assert parse_transcript("Human: a\n\nAssistant: b")[1]["content"] == "b"


def test_csv_and_parquet(tmp_path):
    import pandas

    frame = pandas.DataFrame({"prompt": ["a", "b"], "chosen": ["x", "y"], "rejected": ["z", "w"]})
    frame.to_csv(tmp_path / "p.csv", index=False)
    frame.to_parquet(tmp_path / "p.parquet")
    assert load_rows(str(tmp_path / "p.csv"), "preference")[1]["chosen"] == "y"
    assert len(load_rows(str(tmp_path / "p.parquet"), "unpaired")) == 4


def test_broken_jsonl_line_is_reported(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": oops}\n')
    with pytest.raises(AlignLabError, match="line 2"):
        load_rows(str(path), "preference")


def test_empty_and_missing_columns(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(AlignLabError, match="empty"):
        load_rows(str(empty), "preference")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text('{"prompt": "a"}\n')
    with pytest.raises(AlignLabError, match="missing column.*chosen, rejected.*accepted formats"):
        load_rows(str(prompts), "preference", "dpo")


def test_unknown_dataset_is_clear():
    with pytest.raises(AlignLabError, match="dataset: got 'no-such-dataset'"):
        load_rows("no-such-dataset", "preference")
