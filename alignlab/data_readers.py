"""Reading datasets: a local ``.jsonl``/``.json``/``.csv``/``.parquet`` file as rows, a folder written by ``datasets``'
``save_to_disk``, and ``datasets.Dataset``/``DatasetDict`` objects (their ``train`` split).

Every reader raises one AlignLabError naming the file and, where it can, the line, for what it cannot read; which
reader reads a dataset source is :mod:`alignlab.data`'s choice.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Any

from alignlab.errors import AlignLabError
from alignlab.rundir import dataset_dir


def read_text(path: Path) -> str:
    """A data file's text; bytes that are not UTF-8 raise AlignLabError naming the file and the line."""
    try:
        data = path.read_bytes()
    except OSError as error:
        reason = error.strerror or error
        raise AlignLabError(f"dataset: cannot read {path} ({reason}), expected a readable file") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise AlignLabError(f"dataset: {path} line {line} is not UTF-8 text (byte 0x{data[error.start]:02x}), "
                            "expected a UTF-8 file (save it as UTF-8)") from None
    return text.removeprefix("\ufeff")  # a byte-order mark is not part of the first column's name


def read_jsonl(path: Path) -> list[dict]:
    """Read a JSONL file; a broken line raises AlignLabError with its line number."""
    rows = []
    # Split on newlines only: str.splitlines would also split inside strings at U+2028 and friends.
    for number, line in enumerate(read_text(path).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise AlignLabError(f"dataset: {path} line {number} is not valid JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise AlignLabError(f"dataset: {path} line {number} is not a JSON object")
        rows.append(row)
    return rows


def read_json(path: Path) -> list:
    """A ``.json`` file's rows: a list of objects, or ``{"data": [...]}``."""
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise AlignLabError(f"dataset: {path} line {error.lineno} is not valid JSON ({error.msg})") from None
    except RecursionError:
        raise AlignLabError(f"dataset: {path} is nested too deeply, expected a list of row objects") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        return data["data"]
    if isinstance(data, list):
        return data
    kind = "an object without a data list" if isinstance(data, dict) else f"a JSON {type(data).__name__}"
    raise AlignLabError(f'dataset: {path} holds {kind}, expected a list of row objects (or {{"data": [...]}})')


def read_csv(path: Path) -> list[dict]:
    """A CSV file's rows, every value a string as written (no type guessing: "false" stays "false").

    A row with fewer fields than the header lacks the last columns (the row check names them).
    """
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    try:
        return [{k: v for k, v in row.items() if k is not None and v is not None} for row in reader]
    except csv.Error as error:
        raise AlignLabError(f"dataset: {path} line {reader.line_num} is not valid CSV ({error})") from None


def read_parquet(path: Path) -> list[dict]:
    """A Parquet file's rows as plain Python values (lists and dicts for nested columns, None for nulls)."""
    import pyarrow.parquet

    try:
        return pyarrow.parquet.read_table(path).to_pylist()
    except Exception as error:  # noqa: BLE001 - pyarrow raises several types for a file that is not Parquet
        reason = (str(error).splitlines() or [""])[0]
        raise AlignLabError(f"dataset: {path} is not a Parquet file that can be read ({type(error).__name__}: "
                            f"{reason}), expected a .parquet file written by pandas, pyarrow or datasets") from None


FILE_READERS = {".jsonl": read_jsonl, ".json": read_json, ".csv": read_csv, ".parquet": read_parquet}  # by suffix


SAVED_MARKERS = ("state.json", "dataset_dict.json")  # save_to_disk writes one of them: a Dataset, a DatasetDict


def load_saved(path: Path):
    """The Dataset or DatasetDict ``save_to_disk`` wrote into the folder ``path``."""
    if not any((path / marker).is_file() for marker in SAVED_MARKERS):
        raise AlignLabError(f"dataset: {str(path)!r} is a folder without {' or '.join(SAVED_MARKERS)}, expected a "
                            "file, a dataset name, or a folder written by datasets' save_to_disk")
    import datasets

    try:
        return datasets.load_from_disk(str(path))
    except Exception as error:  # noqa: BLE001 - a damaged folder is bad input
        reason = (str(error).splitlines() or [""])[0]
        raise AlignLabError(f"dataset: {str(path)!r} cannot be read by datasets.load_from_disk "
                            f"({type(error).__name__}: {reason})") from None


def is_dataset_object(value: Any) -> bool:
    """True for a ``datasets.Dataset`` or ``DatasetDict`` (without importing datasets for other values)."""
    if isinstance(value, (str, Path)) or "datasets" not in sys.modules:
        return False
    import datasets

    return isinstance(value, (datasets.Dataset, datasets.DatasetDict))


def train_split(dataset, source: str | None = None):
    """``dataset`` itself, or a DatasetDict's ``train`` split (the only split when it has one); AlignLabError
    naming the splits otherwise."""
    import datasets

    if not isinstance(dataset, datasets.DatasetDict):
        return dataset
    if "train" in dataset or len(dataset) == 1:
        return dataset["train"] if "train" in dataset else next(iter(dataset.values()))
    what = f"a DatasetDict with the splits {', '.join(dataset)}"
    raise AlignLabError(f"dataset: got {f'{source!r} ({what})' if source else what}, expected one with a train split "
                        "(or pass the split to train on: dataset['NAME'])")


def keep_in_run(dataset, run_dir: str | Path) -> str:
    """Save an in-memory dataset (its :func:`train_split`) into the run directory with ``save_to_disk`` and
    return that folder's path, the run's dataset from then on (eval and chat read held-out prompts from it)."""
    folder = dataset_dir(run_dir)
    train_split(dataset).save_to_disk(str(folder))
    return str(folder)


def saved_fingerprint(folder: Path) -> str | None:
    """The fingerprint ``save_to_disk`` kept in the (train) split's ``state.json``: the saved object's own
    (``load_from_disk`` gives the loaded copy a new one)."""
    try:
        if (folder / "dataset_dict.json").is_file():
            splits = json.loads((folder / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
            folder = folder / ("train" if "train" in splits else splits[0])
        return json.loads((folder / "state.json").read_text(encoding="utf-8"))["_fingerprint"]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
