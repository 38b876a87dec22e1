"""``datasets`` objects and save_to_disk folders as a run's data, the record of what a run trained on, and the
hub dataset errors offline and with downloads on."""

import json
import os

import pytest

datasets = pytest.importorskip("datasets")

from alignlab import rundir  # noqa: E402
from alignlab.config import RunConfig  # noqa: E402
from alignlab.data import load_rows, trained_on  # noqa: E402
from alignlab.errors import AlignLabError  # noqa: E402
from alignlab.runner import start  # noqa: E402


def _pairs(pairs_file):
    return [json.loads(line) for line in pairs_file.read_text().splitlines()]


def test_a_dataset_object_is_kept_not_turned_into_its_repr(tiny, pairs_file):
    rows = _pairs(pairs_file)
    dataset = datasets.Dataset.from_list(rows)
    config = RunConfig(**{**tiny, "dataset": dataset})
    assert config.dataset is dataset
    whole = datasets.DatasetDict(train=dataset, test=datasets.Dataset.from_list(rows[:2]))
    assert RunConfig(**{**tiny, "dataset": whole}).dataset is whole["train"]
    assert load_rows(whole, "preference") == rows


def test_a_dataset_dict_without_a_train_split_is_refused_naming_its_splits(tiny, pairs_file):
    rows = _pairs(pairs_file)
    splits = datasets.DatasetDict(a=datasets.Dataset.from_list(rows), b=datasets.Dataset.from_list(rows))
    with pytest.raises(AlignLabError, match=r"dataset: got a DatasetDict with the splits a, b, expected one with"):
        RunConfig(**{**tiny, "dataset": splits})
    wrong = datasets.Dataset.from_list([{"text": "no columns of a format"}])
    with pytest.raises(AlignLabError, match=r"dataset: Dataset\(1 rows, fingerprint \w+\): columns \['text'\]"):
        start(RunConfig(**{**tiny, "dataset": wrong}), background=False)


def test_a_save_to_disk_folder_is_a_dataset(tiny, pairs_file, tmp_path):
    rows = _pairs(pairs_file)
    folder = tmp_path / "saved"
    saved = datasets.DatasetDict(train=datasets.Dataset.from_list(rows))
    saved.save_to_disk(str(folder))
    assert load_rows(str(folder), "preference") == rows
    assert trained_on(str(folder), datasets.Dataset.from_list(rows), "preference")["fingerprint"] == \
        saved["train"]._fingerprint
    assert RunConfig(**{**tiny, "dataset": str(folder)}).dataset == str(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AlignLabError, match="without state.json or dataset_dict.json, expected .* save_to_disk"):
        load_rows(str(empty), "preference")


def test_a_run_on_a_dataset_object_keeps_it_and_records_what_it_trained_on(tiny, pairs_file):
    """The same rows as an in-memory Dataset and as a JSONL file: both runs record the 12 rows less the held-out
    ones and the same content hash; the object's run keeps the data in its folder, and the record has the object's
    fingerprint."""
    dataset = datasets.Dataset.from_list(_pairs(pairs_file))
    settings = {**tiny, "max_steps": 1, "probe_every": 0}
    from_object = start(RunConfig(**{**settings, "dataset": dataset}), background=False)
    from_file = start(RunConfig(**settings), background=False)
    assert from_object.state == from_file.state == "finished", (from_object.error, from_file.error)
    kept = rundir.dataset_dir(from_object.run_dir)
    assert rundir.read_config(from_object.run_dir)["dataset"] == str(kept)
    assert datasets.load_from_disk(str(kept)).to_list() == dataset.to_list()
    record, file_record = rundir.read_trained_on(from_object.run_dir), rundir.read_trained_on(from_file.run_dir)
    held_out = len(rundir.read_held_out(from_object.run_dir)["prompts"])  # held out: never trained on
    assert held_out == len(rundir.read_held_out(from_file.run_dir)["prompts"]) > 0
    assert record["rows"] == file_record["rows"] == 12 - held_out and record["format"] == "preference"
    assert record["sha256"] == file_record["sha256"]
    assert record["fingerprint"] == dataset._fingerprint and record["source_rows"] == 12
    assert "fingerprint" not in file_record and file_record["source"] == str(pairs_file)


def test_a_hub_id_offline_names_the_download_switch(tiny, monkeypatch):
    monkeypatch.delenv("ALIGNLAB_ALLOW_DOWNLOAD", raising=False)
    with pytest.raises(AlignLabError, match="'nobody/no-such-dataset'.*set ALIGNLAB_ALLOW_DOWNLOAD=1 to download it"):
        load_rows("nobody/no-such-dataset", "preference")


def test_with_downloads_on_the_hubs_own_error_shows(monkeypatch):
    """This machine has no route to the hub: the library's call is replaced by one that fails as a network error
    does, and the lab must pass that error on (and not be offline while it asks)."""
    seen = {}

    def unreachable(name, **kwargs):
        seen["offline"] = os.environ.get("HF_HUB_OFFLINE")
        raise ConnectionError("Couldn't reach 'nobody/no-such-dataset' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setenv("ALIGNLAB_ALLOW_DOWNLOAD", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(AlignLabError, match=r"could not be loaded from the Hugging Face hub \(ConnectionError: "
                                            r"Couldn't reach 'nobody/no-such-dataset'"):
        load_rows("nobody/no-such-dataset", "preference")
    assert seen == {"offline": None}
