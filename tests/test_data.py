"""Datasets: built-in task, formats and conversions, HH transcripts, clear errors."""

import json

import pytest

from alignlab.data import load_rows
from alignlab.errors import AlignLabError, AlignLabWarning
from alignlab.task import task_openings, task_prompts
from alignlab.transcripts import parse_transcript


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


# --- every row is checked before a run starts (issue 11, item 6) -------------------------------------------------

GOOD_PAIR = {"prompt": "p", "chosen": "good", "rejected": "bad"}
CHAT_PAIR = {"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "hello"}],
             "rejected": [{"role": "assistant", "content": "go away"}]}
CHAT = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.parametrize("rows, data_format, where, shown", [
    ([GOOD_PAIR, {**GOOD_PAIR, "chosen": None}], "preference", "row 2 column chosen", "got None"),
    ([GOOD_PAIR, {**GOOD_PAIR, "rejected": ""}], "preference", "row 2 column rejected", "got ''"),
    ([GOOD_PAIR, {**GOOD_PAIR, "rejected": "   "}], "preference", "row 2 column rejected", "got '   '"),
    ([GOOD_PAIR, GOOD_PAIR, {**GOOD_PAIR, "prompt": 5}], "preference", "row 3 column prompt", "got 5"),
    ([GOOD_PAIR, {"prompt": "p", "chosen": "c"}], "preference", "row 2 column rejected", "missing"),
    ([GOOD_PAIR, {**GOOD_PAIR, "chosen": CHAT}], "preference", "row 2 column chosen", "like row 1's prompt"),
    ([CHAT_PAIR, {**CHAT_PAIR, "chosen": "hello"}], "preference", "row 2 column chosen", "list of {role, content}"),
    ([{"prompt": "p", "completion": None}], "sft", "row 1 column completion", "got None"),
    ([{"prompt": "p", "completion": "c", "label": True}, {"prompt": "p", "completion": "c", "label": "maybe"}],
     "unpaired", "row 2 column label", "got 'maybe'"),
    ([{"messages": CHAT}, {"messages": "hi"}], "sft", "row 2 column messages", "got 'hi'"),
    ([{"messages": [CHAT[0], {"role": "assistant"}]}], "sft", "row 1 column messages", "message 2"),
    ([{"messages": [CHAT[0], {"role": "assistant", "content": 3}]}], "sft", "row 1 column messages", "message 2"),
    ([{"messages": CHAT[:1]}], "sft", "row 1 column messages", "ends with an assistant message"),
    ([{"chosen": "\n\nHuman: a\n\nAssistant: b", "rejected": "\n\nHuman: a\n\nAssistant: c"},
      {"chosen": "plain text", "rejected": "\n\nHuman: a\n\nAssistant: c"}], "preference", "row 2 column chosen",
     "HH transcript"),
    ([{"prompt": None}], "prompt", "row 1 column prompt", "got None"),
])
def test_a_bad_row_names_the_file_row_column_and_value(tmp_path, rows, data_format, where, shown):
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(AlignLabError) as caught:
        load_rows(str(path), data_format)
    message = str(caught.value)
    assert f"dataset: {path} {where}" in message and shown in message and "expected" in message
    assert "\n" not in message and len(message) < 400


def test_csv_and_parquet_cells_are_checked_with_their_types(tmp_path):
    import pandas

    (tmp_path / "short.csv").write_text("prompt,chosen,rejected\na,x,y\nb,x\n")
    (tmp_path / "blank.csv").write_text("prompt,chosen,rejected\na,x,y\nb,,y\n")
    pandas.DataFrame({"prompt": ["a", "b"], "chosen": [1.5, 2.0], "rejected": ["z", "w"]}).to_parquet(
        tmp_path / "floats.parquet")
    pandas.DataFrame({"prompt": ["a", None], "chosen": ["x", "y"], "rejected": ["z", "w"]}).to_parquet(
        tmp_path / "nulls.parquet")
    cases = {"short.csv": "row 2 column rejected: missing", "blank.csv": "row 2 column chosen: got ''",
             "floats.parquet": "row 1 column chosen: got 1.5", "nulls.parquet": "row 2 column prompt: got None"}
    for name, where in cases.items():
        with pytest.raises(AlignLabError, match=f"{tmp_path / name} {where}"):
            load_rows(str(tmp_path / name), "preference")


def test_conversational_parquet_rows_are_message_lists(tmp_path):
    import pandas

    pandas.DataFrame([CHAT_PAIR, CHAT_PAIR]).to_parquet(tmp_path / "chat.parquet")
    (row, _) = load_rows(str(tmp_path / "chat.parquet"), "preference")
    assert row == CHAT_PAIR and type(row["chosen"]) is list  # plain lists and dicts, not numpy arrays


@pytest.mark.parametrize("label, desirable", [
    (True, True), (False, False), ("true", True), ("false", False), ("FALSE", False), ("True", True),
    ("1", True), ("0", False), (1, True), (0, False), (" false ", False)])
def test_label_strings_are_read_not_taken_as_truthy(tmp_path, label, desirable):
    path = write_jsonl(tmp_path / "kto.jsonl", [{"prompt": "p", "completion": "c", "label": label},
                                                {"prompt": "q", "completion": "d", "label": True}])
    assert load_rows(str(path), "unpaired")[0]["label"] is desirable
    kept = [row["prompt"] for row in load_rows(str(path), "sft")]  # only desirable completions train SFT
    assert ("p" in kept) is desirable


@pytest.mark.parametrize("label", ["maybe", "yes", "", None, 2, 0.5, [], "truee"])
def test_any_other_label_is_refused(tmp_path, label):
    path = write_jsonl(tmp_path / "kto.jsonl", [{"prompt": "p", "completion": "c", "label": label}])
    with pytest.raises(AlignLabError, match=r"row 1 column label: got .*, expected a boolean, 0/1, or the string"):
        load_rows(str(path), "unpaired")


def test_csv_labels_stay_strings_and_are_read(tmp_path):
    path = tmp_path / "kto.csv"
    path.write_text("prompt,completion,label\na,b,false\nc,d,TRUE\ne,f,0\n")
    assert [row["label"] for row in load_rows(str(path), "unpaired")] == [False, True, False]


@pytest.mark.parametrize("name, content, line", [
    ("bad.jsonl", b'{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": "\xff"}\n', 2),
    ("bad.csv", b"prompt,chosen,rejected\na,b,c\n\xfe,b,c\n", 3),
    ("bad.json", b'[{"prompt": "\xe9t\xe9"}]', 1),
])
def test_a_file_that_is_not_utf8_is_named_with_its_line(tmp_path, name, content, line):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AlignLabError, match=f"dataset: {path} line {line} is not UTF-8 text"):
        load_rows(str(path), "prompt")


def test_a_json_file_must_hold_a_list_of_objects(tmp_path):
    for content, expected in (('"x"', "holds a JSON str"), ("[1, 2]", r"row 1: got 1, expected an object"),
                              ('{"rows": []}', "holds an object without a data list"), ("[{", "line 1 is not valid")):
        path = tmp_path / "data.json"
        path.write_text(content)
        with pytest.raises(AlignLabError, match=expected):
            load_rows(str(path), "prompt")


def test_pairs_with_chosen_equal_to_rejected_are_counted_in_a_warning(tmp_path):
    from alignlab.errors import AlignLabWarning

    path = write_jsonl(tmp_path / "pairs.jsonl", [GOOD_PAIR, {**GOOD_PAIR, "rejected": "good"}, GOOD_PAIR])
    with pytest.warns(AlignLabWarning, match=r"1 of 3 pairs have chosen == rejected \(row 2\)"):
        assert len(load_rows(str(path), "preference")) == 3  # a warning, not an error


class WordTokenizer:
    """A stand-in tokenizer: one token per word, and a chat template that joins the turns."""

    def __init__(self):
        self.calls = 0

    def __call__(self, text, add_special_tokens=True):
        self.calls += 1
        return {"input_ids": text.split()}

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        return " ".join(message["content"] for message in messages)


def test_prompts_that_fill_max_length_are_counted_or_refused():
    from alignlab.errors import AlignLabWarning
    from alignlab.prompt_lengths import check_prompt_lengths

    long, short = " ".join(["word"] * 20), "a short prompt"
    rows = [{"prompt": long, "chosen": "x", "rejected": "y"}] * 2 + [{"prompt": short, "chosen": "x", "rejected": "y"}]
    counted = r"fills max_length \(16 tokens\) in 2 of 3 rows \(the longest 20 tokens\).*raise max_length above 20"
    with pytest.warns(AlignLabWarning, match=counted):
        check_prompt_lengths("data.jsonl", rows, WordTokenizer(), 16)
    with pytest.raises(AlignLabError, match=r"max_length: got 16, but every prompt of data.jsonl alone fills it "
                                            r"\(all 2 rows, the longest 20 tokens\)"):
        check_prompt_lengths("data.jsonl", rows[:2], WordTokenizer(), 16)
    chat = [{"prompt": [{"role": "user", "content": long}], "completion": [{"role": "assistant", "content": "x"}]}]
    with pytest.raises(AlignLabError, match="every prompt"):
        check_prompt_lengths("chat.jsonl", chat, WordTokenizer(), 16)
    tokenizer = WordTokenizer()
    check_prompt_lengths("data.jsonl", rows, tokenizer, 100)  # the long prompt (99 bytes) may reach 100 tokens
    assert tokenizer.calls == 1  # tokenised once for its two rows; the short one is too few bytes to matter
    check_prompt_lengths("data.jsonl", rows, tokenizer, 128)
    assert tokenizer.calls == 1


def test_rows_whose_prompt_fills_max_length_are_left_out_of_training(tmp_path):
    """ORPO keeps a row whose prompt fills max_length with an empty completion (loss NaN at step 1): such rows
    are left out before the trainer sees them, and the run on the rest finishes."""
    from alignlab import rundir
    from alignlab.cli import main
    from alignlab.prompt_lengths import rows_that_fit

    long, short = " ".join(["word"] * 20), "a short prompt"
    rows = [{"prompt": long, "chosen": "x", "rejected": "y"}, {"prompt": short, "chosen": "x", "rejected": "y"}]
    assert rows_that_fit(rows, WordTokenizer(), 16) == rows[1:]
    assert rows_that_fit(rows, WordTokenizer(), 21) == rows

    mixed = [{"prompt": " ".join(["word"] * 80), "chosen": " was great.", "rejected": " was bad."}] * 4 + \
        [{"prompt": f"Review {i}: the film", "chosen": " was wonderful.", "rejected": " was awful."} for i in range(8)]
    path = write_jsonl(tmp_path / "mixed.jsonl", mixed)
    held_out = write_jsonl(tmp_path / "held-out.jsonl", [{"prompt": "A film nobody trains on"}])  # every row trains
    with pytest.warns(AlignLabWarning, match="in 4 of 12 rows"):
        code = main(["train", "--method", "orpo", "--model", "tiny-random", "--dataset", str(path), "--eval-dataset",
                     str(held_out), "--max-steps", "2", "--batch-size", "2", "--max-length", "48",
                     "--max-completion-length", "8",
                     "--probe-every", "0", "--output-dir", str(tmp_path / "runs"), "--run-id", "fits", "--quiet"])
    assert code == 0
    status = rundir.read_status(tmp_path / "runs" / "fits")
    assert status["state"] == "finished", status


def test_bad_rows_and_too_long_prompts_stop_a_run_before_its_directory_exists(tmp_path, tiny):
    from alignlab.config import RunConfig
    from alignlab.runner import start

    bad = write_jsonl(tmp_path / "bad.jsonl", [GOOD_PAIR, {**GOOD_PAIR, "chosen": None}])
    with pytest.raises(AlignLabError, match="row 2 column chosen: got None"):
        start(RunConfig(**{**tiny, "dataset": str(bad)}), background=False)
    long = write_jsonl(tmp_path / "long.jsonl", [{**GOOD_PAIR, "prompt": f"{i} " + "word " * 200} for i in range(4)])
    # one of the four prompts is held out: three rows are left to train on
    with pytest.raises(AlignLabError, match=r"max_length: got 48, but every prompt .* alone fills it \(all 3 rows"):
        start(RunConfig(**{**tiny, "dataset": str(long)}), background=False)
    assert not (tmp_path / "runs").exists()


def test_the_cli_reports_a_bad_row_in_one_line(tmp_path, tiny, capsys):
    from alignlab.cli import main

    bad = write_jsonl(tmp_path / "bad.jsonl", [GOOD_PAIR, GOOD_PAIR, {"prompt": "p", "chosen": "c"}])
    code = main(["train", "--method", "dpo", "--model", "tiny-random", "--dataset", str(bad),
                 "--output-dir", tiny["output_dir"]])
    error = capsys.readouterr().err.strip()
    assert code == 2 and error == (f"error: dataset: {bad} row 3 column rejected: missing, expected every row to "
                                   "have prompt, chosen, rejected (as row 1 has)")
    assert not (tmp_path / "runs").exists()
