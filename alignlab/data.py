"""Datasets: which source a dataset value names, its rows loaded, checked and in the format a method needs.

Accepted sources: a built-in name (:mod:`alignlab.task`), a local ``.jsonl``/``.json``/``.csv``/``.parquet`` file, a
folder written by ``datasets``' ``save_to_disk``, a ``datasets.Dataset`` or ``DatasetDict`` object (its ``train``
split; a run keeps a copy, see :func:`alignlab.data_readers.keep_in_run`), a Hugging Face dataset id already in the
local cache (or any hub id with ``ALIGNLAB_ALLOW_DOWNLOAD`` set), or ``votes:<run id>``: the blind votes cast on a
run in the chats (``<output_dir>/_votes/<run id>.jsonl``, see :mod:`alignlab.votes`; :func:`resolve_dataset` turns
the name into that path). A votes file is read as preference pairs, ties and both-bad votes left out (KTO
then gets its unpaired rows from the pairs, as from any pairs). Sources joined with ``+`` are mixed: each
is loaded in the wanted format and their rows are concatenated (``votes:<run>+positive-reviews``).

What the parts do: :mod:`alignlab.data_readers` reads files and saved datasets, :mod:`alignlab.data_rows` checks
every row (a bad one raises one AlignLabError naming the file, the row, the column, the value and what is expected)
and gives it its format's columns, :mod:`alignlab.data_formats` names the formats a method can declare and converts
between them, and :mod:`alignlab.prompt_lengths` leaves out the rows whose prompt alone fills ``max_length``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from alignlab.data_formats import DERIVABLE, FORMATS, convert
from alignlab.data_readers import (
    FILE_READERS,
    is_dataset_object,
    load_saved,
    read_jsonl,
    saved_fingerprint,
    train_split,
)
from alignlab.data_rows import ACCEPTED, check_rows, normalise, warn_identical_pairs
from alignlab.errors import AlignLabError
from alignlab.offline import ALLOW_DOWNLOAD, downloads_allowed, hub_offline
from alignlab.prompt_lengths import rows_that_fit
from alignlab.rundir import votes_names, votes_path
from alignlab.task import BUILTIN_TASK, task_dir, task_prompts
from alignlab.votes import is_votes_file, votes_as_pairs

VOTES_PREFIX = "votes:"  # votes:<run id> names a votes file of the runs folder
MIX = "+"  # joins sources that are mixed


def _read_source(source: str, purpose: str) -> list[dict]:
    if source == BUILTIN_TASK:
        if purpose == "prompt":
            return [{"prompt": p} for p in task_prompts("train")]
        return read_jsonl(task_dir() / "prefs.jsonl")
    path = Path(source).expanduser()
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".jsonl" and is_votes_file(path):
            return votes_as_pairs(path)
        if suffix in FILE_READERS:
            return FILE_READERS[suffix](path)
        raise AlignLabError(f"dataset: {source!r} has suffix {suffix!r}, expected .jsonl, .json, .csv or .parquet")
    if path.exists():
        return train_split(load_saved(path), source).to_list()
    return _read_hub(source)


def _first_line(error: BaseException) -> str:
    return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:300]}"


def _read_hub(source: str) -> list[dict]:
    import datasets

    name, _, split = source.partition(":")
    try:
        with hub_offline():  # the local cache only, unless downloads are allowed
            loaded = datasets.load_dataset(name, split=split or "train", download_mode="reuse_cache_if_exists")
    except Exception as error:  # noqa: BLE001 - offline, any failure means it is not in the cache
        if downloads_allowed():
            raise AlignLabError(f"dataset: {source!r} could not be loaded from the Hugging Face hub "
                                f"({_first_line(error)})") from error
        raise AlignLabError(
            f"dataset: got {source!r}, expected {BUILTIN_TASK!r}, a .jsonl/.json/.csv/.parquet file, a save_to_disk "
            "folder, or a Hugging Face dataset id already in the local cache (NAME or NAME:SPLIT); alignlab is "
            f"offline: set {ALLOW_DOWNLOAD}=1 to download it"
        ) from None
    return loaded.to_list()


def dataset_parts(source) -> list:
    """The sources a dataset value mixes (split at ``+``); an existing file or folder, or a dataset object, is one
    source even with a ``+``.

    >>> dataset_parts("votes:r1+positive-reviews")
    ['votes:r1', 'positive-reviews']
    """
    if not isinstance(source, str) or MIX not in source or Path(source).expanduser().exists():
        return [source]
    return [part.strip() for part in source.split(MIX)]


def resolve_dataset(source, output_dir: str | Path):
    """``source`` with each ``votes:<name>`` part replaced by the path of that votes file in the runs folder
    ``output_dir``; AlignLabError naming the votes there when there is no such file (or an empty part). A dataset
    object comes back as its :func:`~alignlab.data_readers.train_split`."""
    if is_dataset_object(source):
        return train_split(source)
    parts = dataset_parts(source)
    if len(parts) > 1 and not all(parts):
        raise AlignLabError(f"dataset: got {source!r}, expected sources joined by {MIX!r} with none empty")
    resolved = []
    for part in parts:
        if part.startswith(VOTES_PREFIX):
            name = part[len(VOTES_PREFIX):]
            path = votes_path(output_dir, name)
            if not path.is_file():
                known = ", ".join(votes_names(output_dir)) or "none yet"
                raise AlignLabError(f"dataset: no votes named {name!r} in {path.parent}, expected one of: {known} "
                                    "(votes are cast in the chats with Blind vote on)")
            part = str(path)
        resolved.append(part)
    return MIX.join(resolved)


def _load_mix(parts: list[str], data_format: str, method: str) -> list[dict]:
    """Rows of every part in ``data_format``, concatenated; AlignLabError when some parts are conversational
    and others plain text (one dataset holds one kind)."""
    rows, kinds = [], {}
    for part in parts:
        part_rows = load_rows(part, data_format, method)
        kinds.setdefault(isinstance(part_rows[0]["prompt"], list), part)
        rows.extend(part_rows)
    if len(kinds) > 1:
        raise AlignLabError(f"dataset: {kinds[True]!r} holds conversations (message lists) and {kinds[False]!r} "
                            "plain text, expected mixed sources of one kind")
    return rows


def dataset_label(source) -> str:
    """How errors and records name a dataset value: the string itself, or an object's class, rows and fingerprint."""
    if not is_dataset_object(source):
        return str(source)
    split = train_split(source)
    return f"{type(source).__name__}({split.num_rows} rows, fingerprint {split._fingerprint})"


def load_rows(source, data_format: str, method: str = "") -> list[dict]:
    """Rows of ``source`` in ``data_format``, converting when possible, else a clear error.

    Every row is checked first (see :func:`alignlab.data_rows.check_rows`); pairs whose chosen equals rejected are
    counted in an AlignLabWarning when the format keeps pairs (preference, unpaired). Sources joined with ``+``
    (:func:`dataset_parts`) are each loaded so and concatenated.
    """
    if data_format not in FORMATS:
        raise ValueError(data_format)
    parts = dataset_parts(source)
    if len(parts) > 1:
        return _load_mix(parts, data_format, method)
    if is_dataset_object(source):
        source, rows = dataset_label(source), train_split(source).to_list()
    else:
        rows = _read_source(source, data_format)
    if not rows:
        raise AlignLabError(f"dataset: {source!r} is empty, expected at least one row")
    stored, rows = normalise(source, check_rows(source, rows), rows)
    if stored == "preference" and data_format in ("preference", "unpaired"):
        warn_identical_pairs(source, rows)
    if data_format not in DERIVABLE[stored]:
        who = f"method {method!r}" if method else "this use"
        needed = ", ".join(FORMATS[data_format])
        missing = [c for c in FORMATS[data_format] if c not in FORMATS[stored]]
        hint = ""
        if data_format == "preference" and stored == "prompt":
            hint = (" Make pairs from prompts with `alignlab data make-prefs`, or use an online method "
                    "(ppo, rloo, grpo, online-dpo).")
        raise AlignLabError(
            f"dataset: {source!r} is in {stored} format; {who} needs {data_format} format ({needed}), "
            f"missing column(s) {', '.join(missing)}; {ACCEPTED}.{hint}"
        )
    rows = convert(stored, rows, data_format)
    if not rows:
        raise AlignLabError(f"dataset: {source!r} has no usable rows for {data_format} format")
    return rows


def load_dataset(source, data_format: str, method: str = "", tokenizer: Any = None, max_length: int = 0,
                 held_out: list | None = None):
    """``load_rows`` as a ``datasets.Dataset`` (what TRL trainers take), without the rows whose prompt is one of
    ``held_out`` (:func:`without_prompts`); with a ``tokenizer`` and ``max_length``, without the rows whose prompt
    alone fills ``max_length`` either (:func:`alignlab.prompt_lengths.rows_that_fit`)."""
    import datasets

    rows = without_prompts(load_rows(source, data_format, method), held_out or [])
    if tokenizer is not None and max_length and data_format != "prompt":
        rows = rows_that_fit(rows, tokenizer, max_length)
    return datasets.Dataset.from_list(rows)


def prompt_key(prompt: Any) -> str:
    """A prompt (text or chat messages) as a string that is equal for equal prompts."""
    return json.dumps(prompt, sort_keys=True, ensure_ascii=False)


def without_prompts(rows: list[dict], prompts: list) -> list[dict]:
    """The ``rows`` whose prompt is none of ``prompts`` (a run's held-out prompts: see :mod:`alignlab.held_out`)."""
    left_out = {prompt_key(prompt) for prompt in prompts}
    return [row for row in rows if prompt_key(row["prompt"]) not in left_out]


def trained_on(source, dataset, data_format: str) -> dict:
    """What a run trains on, for its record (:func:`alignlab.rundir.write_trained_on`): the source, the rows the
    trainer gets (``dataset``, in ``data_format``) with a sha256 of their content that any process recomputes
    alike, and the ``datasets`` fingerprint of a save_to_disk folder's or dataset object's own data."""
    content = hashlib.sha256()
    for row in dataset.to_list():
        content.update(json.dumps(row, sort_keys=True, ensure_ascii=False).encode("utf-8") + b"\n")
    record = {"source": dataset_label(source), "format": data_format, "rows": dataset.num_rows,
              "sha256": content.hexdigest()}
    if is_dataset_object(source):
        record["fingerprint"] = train_split(source)._fingerprint
    elif isinstance(source, str) and Path(source).expanduser().is_dir():
        folder = Path(source).expanduser()
        record.update(fingerprint=saved_fingerprint(folder),
                      source_rows=train_split(load_saved(folder), source).num_rows)
    return record
