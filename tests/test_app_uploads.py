"""Datasets uploaded through the app: listed from disk on every page load, never kept when a check fails,
and errors that name the file as the user sent it, never a path on the server or the name it is stored under.

Through the same functions the page calls (the upload button's handler, the page-load refresh of the
Dataset list), on an app that is built, not served.
"""

from __future__ import annotations

import json

import pytest

from alignlab.ui.gradio.app import create_app
from alignlab.ui.gradio.components.train import NOT_KEPT, UPLOAD_PREFIX, check_dataset


@pytest.fixture
def demo(tmp_path):
    app = create_app(tmp_path / "runs")
    yield app
    app.services.jobs.close()


def handler(app, name: str):
    """The function an event of the page runs, by its name."""
    return next(fn.fn for fn in app.fns.values() if fn.name == name)


def received(tmp_path, name: str, text: str):
    """A file as the web server receives an upload: in a folder of its own, under the name the user sent."""
    folder = tmp_path / "received"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def dataset_values(update) -> list[str]:
    return [value for _, value in update["choices"]]


def test_the_dataset_list_is_read_from_disk_on_every_page_load(demo, tmp_path, pairs_file):
    stored = demo.services.uploads.add(pairs_file, "pairs.jsonl")  # after the page was built: another visitor's upload
    load = next(dep for dep in demo.config["dependencies"] if demo.fns[dep["id"]].name == "on_load")
    assert "load" in [event for _, event in load["targets"]]  # runs whenever a page (re)loads
    assert UPLOAD_PREFIX + stored in dataset_values(handler(demo, "on_load")(None, None)[0])
    again = create_app(tmp_path / "runs")  # and an app restarted over the same folder lists it from the start
    try:
        dropdown = next(block for block in again.blocks.values() if getattr(block, "elem_id", None) == "train-dataset")
        assert UPLOAD_PREFIX + stored in [value for _, value in dropdown.choices]
    finally:
        again.services.jobs.close()


@pytest.mark.parametrize("name, text, says", [
    ("my reviews.jsonl", '{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": oops\n',
     "line 2 is not valid JSON"),
    ("my reviews.jsonl", json.dumps({"question": "a", "answer": "b"}) + "\n", "match no known format"),
    ("my reviews.csv", "", "is empty"),
    ("my reviews.parquet", "not parquet at all", "not a Parquet file"),
])
def test_an_upload_that_fails_a_check_is_not_kept_and_its_error_names_the_users_file(demo, tmp_path, name, text,
                                                                                   says):
    path = received(tmp_path, name, text)
    dataset, message, table = handler(demo, "on_upload")(str(path), "dpo")
    assert message.startswith("✗ dataset: ") and says in message and message.endswith(NOT_KEPT)
    assert name in message and str(tmp_path) not in message and "my-reviews-" not in message  # the user's name only
    assert demo.services.uploads.names() == [] and not any(demo.services.uploads.folder.iterdir())  # nothing kept
    assert dataset == {"__type__": "update"} and table["visible"] is False  # the list is left as it was


def test_an_upload_another_method_can_train_on_is_kept_and_named_as_sent(demo, tmp_path):
    path = received(tmp_path, "my prompts.jsonl", "".join(json.dumps({"prompt": f"Film {i} was"}) + "\n"
                                                          for i in range(3)))
    dataset, message, table = handler(demo, "on_upload")(str(path), "dpo")
    stored = demo.services.uploads.names()
    assert len(stored) == 1 and dataset["value"] == UPLOAD_PREFIX + stored[0]  # kept: online methods take prompts
    assert message.startswith("✗ dataset: 'my prompts.jsonl' is in prompt format; method 'dpo' needs")
    assert str(demo.services.uploads.folder) not in message and stored[0] not in message
    later, _ = check_dataset(demo.services, UPLOAD_PREFIX + stored[0], "dpo")  # checked again on a method switch
    assert f"'{stored[0]}' is in prompt format" in later and str(demo.services.uploads.folder) not in later
    ok, rows = check_dataset(demo.services, UPLOAD_PREFIX + stored[0], "grpo")
    assert ok.startswith("✓ 3 rows") and rows["visible"]
