"""Datasets: the built-in ``positive-reviews`` task, loading from files or the HF cache, formats.

Formats a method can declare (``MethodSpec.data_format``):

- ``preference``: prompt, chosen, rejected
- ``unpaired``: prompt, completion, label (bool: good or bad), derived from pairs for KTO
- ``sft``: prompt, completion (derived from pairs by keeping the chosen answer)
- ``prompt``: prompt only (for online methods that generate their own completions)

Accepted sources: a built-in name, a local ``.jsonl``/``.json``/``.csv``/``.parquet`` file, a folder written
by ``datasets``' ``save_to_disk``, a ``datasets.Dataset`` or ``DatasetDict`` object (its ``train`` split; a run
keeps a copy, see :func:`keep_in_run`), a Hugging Face dataset id already in the local cache (or any hub id
with ``ALIGNLAB_ALLOW_DOWNLOAD`` set), or ``votes:<run id>``: the blind votes cast on a run in the
chats (``<output_dir>/_votes/<run id>.jsonl``, see :mod:`alignlab.votes`; :func:`resolve_dataset` turns
the name into that path). A votes file is read as preference pairs, ties and both-bad votes left out (KTO
then gets its unpaired rows from the pairs, as from any pairs). Sources joined with ``+`` are mixed: each
is loaded in the wanted format and their rows are concatenated (``votes:<run>+positive-reviews``).

Rows may be plain text or conversational (lists of ``{"role", "content"}``), and pairs may be
``chosen``/``rejected`` transcripts in the ``\\n\\nHuman: ... \\n\\nAssistant: ...`` form of the classic HH
preference data.

Every row is checked before a run starts (:func:`load_rows`): each column of the format is there, text is a
non-empty string (or, in conversational data, a list of ``{"role", "content"}`` messages), and ``label`` is a
boolean, 0/1 or the string true/false/1/0. A bad row raises one AlignLabError naming the file, the row
(counted from 1; a CSV header is not a row), the column, the value and what is expected.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import sys
import warnings
from pathlib import Path
from typing import Any

from alignlab.errors import AlignLabError, AlignLabWarning
from alignlab.offline import ALLOW_DOWNLOAD, downloads_allowed, hub_offline
from alignlab.rundir import dataset_dir, votes_names, votes_path
from alignlab.votes import is_votes_file, votes_as_pairs

BUILTIN_TASK = "positive-reviews"
VOTES_PREFIX = "votes:"  # votes:<run id> names a votes file of the runs folder
MIX = "+"  # joins sources that are mixed
# The built-in task asks the instruct model, through its chat template, for a short review that starts
# with a given opening: it then writes sentences about a film that end, instead of continuing raw text
# off topic. Openings of mixed tone keep the base model's reward spread wide (the data card reports it).
TASK_INSTRUCTION = 'Write a short movie review (two sentences) that begins with: "{opening}"'
FORMATS = {
    "preference": ("prompt", "chosen", "rejected"),
    "unpaired": ("prompt", "completion", "label"),
    "sft": ("prompt", "completion"),
    "prompt": ("prompt",),
}
ACCEPTED = (
    "accepted formats: (prompt, chosen, rejected); (chosen, rejected) as HH transcripts or message lists; "
    "(prompt, completion, label); (prompt, completion); (messages); (prompt)"
)
# What each stored format can be turned into.
DERIVABLE = {
    "preference": ("preference", "unpaired", "sft", "prompt"),
    "unpaired": ("unpaired", "sft", "prompt"),
    "sft": ("sft", "prompt"),
    "prompt": ("prompt",),
}


def assets_dir() -> Path:
    """The project's ``assets/`` folder (``$ALIGNLAB_ASSETS`` overrides).

    In a checkout (and an editable install) that is the repository's ``assets/``; a wheel installs the same files
    as data under ``<prefix>/share/alignlab/assets`` (``[tool.setuptools.data-files]`` in pyproject.toml).
    """
    if "ALIGNLAB_ASSETS" in os.environ:
        return Path(os.environ["ALIGNLAB_ASSETS"])
    checkout = Path(__file__).resolve().parent.parent / "assets"
    installed = Path(sys.prefix) / "share" / "alignlab" / "assets"
    return checkout if (checkout / BUILTIN_TASK).is_dir() or not installed.is_dir() else installed


def task_dir() -> Path:
    return assets_dir() / BUILTIN_TASK


def task_openings(split: str = "train") -> list[str]:
    """Review openings of the built-in task; ``split`` is ``train`` or ``eval`` (held out)."""
    rows = read_jsonl(task_dir() / "prompts.jsonl")
    openings = [row["prompt"] for row in rows if row["split"] == split]
    if not openings:
        raise AlignLabError(f"split: got {split!r}, expected train or eval")
    return openings


def task_instruction(opening: str) -> str:
    """The user message of the built-in task for one review opening."""
    return TASK_INSTRUCTION.format(opening=opening)


def task_prompts(split: str = "train") -> list[list[dict]]:
    """The built-in task's prompts: one chat message per review opening (see :data:`TASK_INSTRUCTION`)."""
    return [[{"role": "user", "content": task_instruction(opening)}] for opening in task_openings(split)]


def builtin_names() -> list[str]:
    return [BUILTIN_TASK]


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


def _read_json(path: Path) -> list:
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


def _read_csv(path: Path) -> list[dict]:
    """A CSV file's rows, every value a string as written (no type guessing: "false" stays "false").

    A row with fewer fields than the header lacks the last columns (the row check names them).
    """
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    try:
        return [{k: v for k, v in row.items() if k is not None and v is not None} for row in reader]
    except csv.Error as error:
        raise AlignLabError(f"dataset: {path} line {reader.line_num} is not valid CSV ({error})") from None


def _read_parquet(path: Path) -> list[dict]:
    """A Parquet file's rows as plain Python values (lists and dicts for nested columns, None for nulls)."""
    import pyarrow.parquet

    try:
        return pyarrow.parquet.read_table(path).to_pylist()
    except Exception as error:  # noqa: BLE001 - pyarrow raises several types for a file that is not Parquet
        reason = (str(error).splitlines() or [""])[0]
        raise AlignLabError(f"dataset: {path} is not a Parquet file that can be read ({type(error).__name__}: "
                            f"{reason}), expected a .parquet file written by pandas, pyarrow or datasets") from None


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
        readers = {".jsonl": read_jsonl, ".json": _read_json, ".csv": _read_csv, ".parquet": _read_parquet}
        if suffix in readers:
            return readers[suffix](path)
        raise AlignLabError(f"dataset: {source!r} has suffix {suffix!r}, expected .jsonl, .json, .csv or .parquet")
    if path.exists():
        return train_split(_load_saved(path), source).to_list()
    return _read_hub(source)


SAVED_MARKERS = ("state.json", "dataset_dict.json")  # save_to_disk writes one of them: a Dataset, a DatasetDict


def _load_saved(path: Path):
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


_TURN = re.compile(r"\n\n(Human|Assistant): ")


def parse_transcript(text: str) -> list[dict]:
    """``\\n\\nHuman: hi\\n\\nAssistant: hello`` -> chat messages."""
    parts = _TURN.split("\n\n" + text.lstrip("\n") if not text.startswith("\n\n") else text)
    messages = []
    for role, content in zip(parts[1::2], parts[2::2]):
        messages.append({"role": "user" if role == "Human" else "assistant", "content": content.strip()})
    return messages


# How rows can be stored, tried in this order on the first row's columns: the layout's name and the columns
# every row must then have. "pairs" has no prompt column: HH transcripts, or message lists that open alike.
LAYOUTS = (
    ("preference", ("prompt", "chosen", "rejected")),
    ("pairs", ("chosen", "rejected")),
    ("unpaired", ("prompt", "completion", "label")),
    ("sft", ("prompt", "completion")),
    ("messages", ("messages",)),
    ("prompt", ("prompt",)),
)
LABELS = {"true": True, "1": True, "false": False, "0": False}  # label strings, compared in lower case
MESSAGES = "a non-empty list of {role, content} messages with string role and content"
TRANSCRIPT = ('an HH transcript ("\\n\\nHuman: ... \\n\\nAssistant: ...") that ends with a non-empty Assistant turn, '
              "or a list of {role, content} messages (else add a prompt column)")
SHOWN_CHARS = 60  # of a bad value, in an error message


def parse_label(value: Any) -> bool | None:
    """A KTO label as a bool: a boolean, the integer 0 or 1, or the string true/false/1/0 in any case;
    None for anything else (so the string "false" never counts as desirable).

    >>> parse_label("FALSE"), parse_label(1), parse_label("yes")
    (False, True, None)
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        return LABELS.get(value.strip().lower())
    return None


def _shown(value: Any) -> str:
    """``repr(value)``, cut short for a one-line error."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."


def _messages_problem(value: Any) -> str | None:
    """What is wrong with ``value`` as a list of chat messages, or None when nothing is."""
    if not isinstance(value, list) or not value:
        return MESSAGES
    for number, message in enumerate(value, start=1):
        if not (isinstance(message, dict) and isinstance(message.get("role"), str) and message["role"].strip()
                and isinstance(message.get("content"), str)):
            return f"{MESSAGES} (message {number} is {_shown(message)})"
    if not value[-1]["content"].strip():
        return f"{MESSAGES} (its last message is empty)"
    return None


def _value_problem(layout: str, column: str, value: Any, conversational: bool) -> str | None:
    """What one cell should have been, or None when it is usable."""
    if column == "label":
        return None if parse_label(value) is not None else "a boolean, 0/1, or the string true/false/1/0"
    if column == "messages":
        problem = _messages_problem(value)
        if problem is None and (len(value) < 2 or value[-1]["role"] != "assistant"):
            problem = "a conversation of two or more messages that ends with an assistant message"
        return problem
    if layout == "pairs" and not conversational:
        turns = parse_transcript(value) if isinstance(value, str) else []
        usable = turns and turns[-1]["role"] == "assistant" and turns[-1]["content"]
        return None if usable else TRANSCRIPT
    if conversational:
        return _messages_problem(value)
    return None if isinstance(value, str) and value.strip() else "a non-empty string"


def _check_rows(source: str, rows: list) -> str:
    """The layout ``rows`` are stored in (see :data:`LAYOUTS`), after checking every row against it.

    The first row decides the layout and whether the data is conversational; a row that lacks a column,
    or has a null, empty or wrongly typed value, raises AlignLabError naming the file, the row (from 1),
    the column, the value and what is expected.
    """
    where = f"dataset: {source}"
    if not isinstance(rows[0], dict):
        raise AlignLabError(f"{where} row 1: got {_shown(rows[0])}, expected an object of column names and values")
    layout, columns = next(((name, columns) for name, columns in LAYOUTS if set(columns) <= rows[0].keys()),
                           (None, ()))
    if layout is None:
        raise AlignLabError(f"{where}: columns {sorted(rows[0])} match no known format; " + ACCEPTED)
    conversational = isinstance(rows[0][columns[0]], list)
    alike = f" like row 1's {columns[0]} (every row alike)"
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise AlignLabError(f"{where} row {number}: got {_shown(row)}, expected an object with the columns "
                                f"{', '.join(columns)}")
        for column in columns:
            if column not in row:
                raise AlignLabError(f"{where} row {number} column {column}: missing, expected every row to have "
                                    f"{', '.join(columns)} (as row 1 has)")
            value = row[column]
            problem = _value_problem(layout, column, value, conversational)
            if problem:
                mixed = column not in ("label", "messages") and isinstance(value, (str, list)) and \
                    isinstance(value, list) != conversational
                raise AlignLabError(f"{where} row {number} column {column}: got {_shown(value)}, expected "
                                    f"{problem}{alike if mixed else ''}")
    return layout


def _shared_turns(chosen: list, rejected: list) -> int:
    """How many opening turns ``chosen`` and ``rejected`` share, leaving each its last turn (as TRL's
    ``extract_prompt`` splits them)."""
    shared = 0
    while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
        shared += 1
    return shared


def _normalise(source: str, layout: str, rows: list[dict]) -> tuple[str, list[dict]]:
    """Rows checked by :func:`_check_rows`, in the canonical columns of their format; returns the format too."""
    if layout == "pairs":
        out = []
        for number, row in enumerate(rows, start=1):
            chosen, rejected = row["chosen"], row["rejected"]
            if isinstance(chosen, str):
                chosen, rejected = parse_transcript(chosen), parse_transcript(rejected)
            shared = _shared_turns(chosen, rejected)
            if not shared:
                raise AlignLabError(f"dataset: {source} row {number} column rejected: its first turn differs from "
                                    "chosen's, expected both to open with the same prompt turns (or a prompt column)")
            out.append({"prompt": chosen[:shared], "chosen": chosen[shared:], "rejected": rejected[shared:]})
        return "preference", out
    if layout == "preference":
        return "preference", [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows]
    if layout == "unpaired":
        return "unpaired", [{"prompt": r["prompt"], "completion": r["completion"], "label": parse_label(r["label"])}
                            for r in rows]
    if layout == "sft":
        return "sft", [{"prompt": r["prompt"], "completion": r["completion"]} for r in rows]
    if layout == "messages":
        return "sft", [{"prompt": r["messages"][:-1], "completion": r["messages"][-1:]} for r in rows]
    return "prompt", [{"prompt": r["prompt"]} for r in rows]


def _warn_identical_pairs(source: str, rows: list[dict]) -> None:
    """Warn (AlignLabWarning) about pairs whose chosen and rejected are the same: they carry no preference."""
    same = [number for number, row in enumerate(rows, start=1) if row["chosen"] == row["rejected"]]
    if same:
        shown = ", ".join(map(str, same[:5])) + (", ..." if len(same) > 5 else "")
        warnings.warn(f"dataset: {source}: {len(same)} of {len(rows)} pairs have chosen == rejected (row {shown}); "
                      "they carry no preference, so training learns nothing (or a contradiction) from them",
                      AlignLabWarning, stacklevel=1)  # one location: the same data loaded twice warns once


def _convert(stored: str, rows: list[dict], wanted: str) -> list[dict]:
    if stored == wanted:
        return rows
    if wanted == "prompt":
        seen, out = set(), []
        for r in rows:
            key = json.dumps(r["prompt"])
            if key not in seen:
                seen.add(key)
                out.append({"prompt": r["prompt"]})
        return out
    if stored == "preference" and wanted == "sft":
        return [{"prompt": r["prompt"], "completion": r["chosen"]} for r in rows]
    if stored == "preference" and wanted == "unpaired":
        out = []
        for r in rows:
            out.append({"prompt": r["prompt"], "completion": r["chosen"], "label": True})
            out.append({"prompt": r["prompt"], "completion": r["rejected"], "label": False})
        return out
    if stored == "unpaired" and wanted == "sft":
        return [{"prompt": r["prompt"], "completion": r["completion"]} for r in rows if r["label"]]
    raise AssertionError((stored, wanted))


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
    object comes back as its :func:`train_split`."""
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

    Every row is checked first (see :func:`_check_rows`); pairs whose chosen equals rejected are counted
    in an AlignLabWarning when the format keeps pairs (preference, unpaired). Sources joined with ``+``
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
    stored, rows = _normalise(source, _check_rows(source, rows), rows)
    if stored == "preference" and data_format in ("preference", "unpaired"):
        _warn_identical_pairs(source, rows)
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
    rows = _convert(stored, rows, data_format)
    if not rows:
        raise AlignLabError(f"dataset: {source!r} has no usable rows for {data_format} format")
    return rows


def load_dataset(source, data_format: str, method: str = "", tokenizer: Any = None, max_length: int = 0,
                 held_out: list | None = None):
    """``load_rows`` as a ``datasets.Dataset`` (what TRL trainers take), without the rows whose prompt is one of
    ``held_out`` (:func:`without_prompts`); with a ``tokenizer`` and ``max_length``, without the rows whose prompt
    alone fills ``max_length`` either (:func:`rows_that_fit`)."""
    import datasets

    rows = without_prompts(load_rows(source, data_format, method), held_out or [])
    if tokenizer is not None and max_length and data_format != "prompt":
        rows = rows_that_fit(rows, tokenizer, max_length)
    return datasets.Dataset.from_list(rows)


PROMPT_SLACK = 4  # tokens a tokenizer may add beyond one per byte of text (BOS/EOS, a leading-space piece)


def prompt_fills(rows: list[dict], tokenizer: Any, max_length: int, source: str = "dataset") -> list[int]:
    """Token count of each row's prompt where it alone fills ``max_length``, else 0 (no completion token would be
    left to learn from). Cheap: each distinct prompt is rendered once, and only one with enough bytes to reach
    ``max_length`` is tokenised (no token is shorter than a byte)."""
    tokens: dict[str, int] = {}
    counts = []
    for number, row in enumerate(rows, start=1):
        prompt = row["prompt"]
        text = prompt
        if isinstance(prompt, list):
            try:
                text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
            except Exception as error:  # noqa: BLE001 - no chat template, or a template that rejects the turns
                reason = (str(error).splitlines() or [""])[0]
                raise AlignLabError(f"dataset: {source} row {number} column prompt: the model's chat template cannot "
                                    f"render it ({type(error).__name__}: {reason}), expected conversational data "
                                    "only with a model that has a chat template") from None
        if text not in tokens:
            reachable = len(text.encode("utf-8")) + PROMPT_SLACK >= max_length
            count = len(tokenizer(text, add_special_tokens=not isinstance(prompt, list))["input_ids"]) \
                if reachable else 0
            tokens[text] = count if count >= max_length else 0
        counts.append(tokens[text])
    return counts


def check_prompt_lengths(source: str, rows: list[dict], tokenizer: Any, max_length: int) -> None:
    """Refuse rows when every prompt alone fills ``max_length`` tokens; warn with the count when some do.

    Such a row leaves no completion token to learn from; training leaves it out (:func:`rows_that_fit`, as TRL's
    DPO trainer does by itself; its ORPO and CPO trainers would keep it with an empty completion, whose loss is
    NaN), so data whose every prompt is too long would fail later on an empty dataset.
    """
    counts = prompt_fills(rows, tokenizer, max_length, source)
    too_long = sum(1 for count in counts if count)
    if not too_long:
        return
    longest = max(counts)
    if too_long == len(rows):
        raise AlignLabError(f"max_length: got {max_length}, but every prompt of {source} alone fills it (all "
                            f"{len(rows)} rows, the longest {longest} tokens), so no row would be left to train on; "
                            f"expected a max_length above {longest} with room for the completion")
    warnings.warn(f"dataset: {source}: the prompt alone fills max_length ({max_length} tokens) in {too_long} of "
                  f"{len(rows)} rows (the longest {longest} tokens), and training leaves those rows out; raise "
                  f"max_length above {longest} to keep them", AlignLabWarning, stacklevel=2)


def rows_that_fit(rows: list[dict], tokenizer: Any, max_length: int) -> list[dict]:
    """The rows whose prompt leaves room for at least one completion token within ``max_length``."""
    return [row for row, count in zip(rows, prompt_fills(rows, tokenizer, max_length), strict=True) if not count]


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
        record.update(fingerprint=_saved_fingerprint(folder),
                      source_rows=train_split(_load_saved(folder), source).num_rows)
    return record


def _saved_fingerprint(folder: Path) -> str | None:
    """The fingerprint ``save_to_disk`` kept in the (train) split's ``state.json``: the saved object's own
    (``load_from_disk`` gives the loaded copy a new one)."""
    try:
        if (folder / "dataset_dict.json").is_file():
            splits = json.loads((folder / "dataset_dict.json").read_text(encoding="utf-8"))["splits"]
            folder = folder / ("train" if "train" in splits else splits[0])
        return json.loads((folder / "state.json").read_text(encoding="utf-8"))["_fingerprint"]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None
