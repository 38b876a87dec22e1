"""Uploaded datasets: checked, copied under the app's data folder, referred to by a server-made name.

The browser only ever sends back a *name* from :meth:`UploadStore.names`; the server maps it to a file
it wrote itself, so no path from a client reaches the engine. Size and type are limited. Checks run on the
received file before it is stored, so a file that fails one is never kept, and their errors name the file
by the name it was sent with, never by a path on the server (:func:`shown_as`).

The server reads an upload whole (format check, preview, training), so what it *expands to* is limited
before it is read, not only the bytes sent: a few KB of Parquet can decode to gigabytes (one long
string repeated through a dictionary). Parquet is measured from its metadata (rows, columns, values,
uncompressed bytes), then streamed with its strings kept dictionary-encoded to count the bytes they
decode to; CSV and JSONL are counted row by row, a JSON file (at most 20 MB as sent) once parsed.
"""

from __future__ import annotations

import csv
import json
import re
import secrets
import shutil
from pathlib import Path

from alignlab.data import load_rows
from alignlab.errors import AlignLabError

SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")  # what alignlab.data_readers reads from a file
MAX_BYTES = 20 * 1024 * 1024  # the file as sent
MAX_ROWS = 100_000
MAX_COLUMNS = 64
MAX_VALUES = 2_000_000  # Parquet leaf values (list items counted one by one): each becomes a Python object
MAX_DATA_BYTES = 128 * 1024 * 1024  # a Parquet file's data once decompressed and decoded
MAX_HEADER_BYTES = 64 * 1024  # a CSV header line
UNSAFE_ENCODINGS = ("DELTA_BYTE_ARRAY",)  # prefix-shared strings: their decoded size is not in the metadata
PREVIEW_ROWS = 5
PREVIEW_CHARS = 120


class UploadStore:
    """The folder of uploaded datasets."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)

    def add(self, temp_path: str | Path, original_name: str) -> str:
        """Copy an upload (a file the web server received) here; returns its stored name.

        Every check runs on the received file first, so a file that fails one is never stored. Raises
        AlignLabError for a wrong type, a file over the size limit, data that expands past the limits once
        read (see :func:`check_expanded_size`), or data no method can train on (see :func:`check_readable`);
        its message names the file by ``original_name`` only, never by a path on the server.
        """
        suffix = Path(original_name).suffix.lower()
        if suffix not in SUFFIXES:
            raise AlignLabError(f"dataset: got a {suffix or 'suffix-less'} file, expected {', '.join(SUFFIXES)}")
        size = Path(temp_path).stat().st_size
        if size > MAX_BYTES:
            raise AlignLabError(f"dataset: file is {size / 2**20:.1f} MB, expected at most {MAX_BYTES // 2**20} MB")
        try:
            check_expanded_size(temp_path, suffix)
            check_readable(temp_path)
        except AlignLabError as error:
            raise AlignLabError(shown_as(str(error), temp_path, original_name)) from None
        stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(original_name).stem).strip("-")[:40] or "data"
        name = f"{stem}-{secrets.token_hex(3)}{suffix}"
        shutil.copyfile(temp_path, self.folder / name)
        return name

    def names(self) -> list[str]:
        """Stored uploads, newest first."""
        files = [p for p in self.folder.iterdir() if p.is_file() and p.suffix in SUFFIXES]
        return [p.name for p in sorted(files, key=lambda p: p.stat().st_mtime, reverse=True)]

    def path(self, name: str) -> Path:
        """The file of a stored name; AlignLabError for any name this store did not hand out."""
        if name not in self.names():
            raise AlignLabError(f"dataset: no uploaded dataset called {name!r}; upload it again")
        return self.folder / name


def check_expanded_size(path: str | Path, suffix: str) -> None:
    """AlignLabError unless the data in ``path`` stays within the row, column and byte limits once read;
    reads no more than it must to tell."""
    path = Path(path)
    if suffix == ".parquet":
        _check_parquet(path)
    elif suffix == ".csv":
        _check_csv(path)
    elif suffix == ".json":
        _check_json(path)
    else:
        _check_jsonl(path)


def check_readable(path: str | Path) -> None:
    """AlignLabError unless some method can train on the data in ``path``: its rows read and match one of the
    layouts :mod:`alignlab.data_rows` accepts (every layout gives prompts, so a prompt-format load tells).
    Which method suits it is checked when one is chosen; this only keeps out files no method can use."""
    try:
        load_rows(str(path), "prompt")
    except AlignLabError:
        raise
    except Exception as error:  # noqa: BLE001 - a reader's own error on a file that is not what its suffix says
        raise AlignLabError(f"dataset: cannot read {path} ({type(error).__name__}: {error})") from None


def shown_as(message: str, path: str | Path, name: str) -> str:
    """``message`` with every spelling of ``path`` (as given, and resolved) replaced by ``name``: what an error
    about a file on the server says to the user who sent it.

    >>> shown_as("dataset: '/tmp/x/pairs-3f2a.jsonl' is empty", "/tmp/x/pairs-3f2a.jsonl", "my pairs.jsonl")
    "dataset: 'my pairs.jsonl' is empty"
    """
    for spelling in sorted({str(path), str(Path(path).resolve())}, key=len, reverse=True):
        message = message.replace(spelling, name)
    return message


def _too_many(what: str, limit: int, count: int | None = None) -> AlignLabError:
    """The one-line refusal: ``count`` of ``what`` (more than ``limit`` when the count stopped early)."""
    has = f"{count:,} {what}" if count is not None else f"more than {limit:,} {what}"
    return AlignLabError(f"dataset: has {has}, the app takes at most {limit:,}; upload a smaller part")


def _too_big(when: str, size: int | None = None) -> AlignLabError:
    """The one-line refusal of data that expands past :data:`MAX_DATA_BYTES` (``size`` when known)."""
    limit = MAX_DATA_BYTES / 2**20
    grows = f"{size / 2**20:,.0f} MB" if size is not None else f"more than {limit:,.0f} MB"
    return AlignLabError(f"dataset: expands to {grows} {when}, the app takes at most {limit:,.0f} MB; "
                         "upload a smaller part")


def _check_jsonl(path: Path) -> None:
    rows = 0
    with open(path, "rb") as handle:
        for line in handle:
            rows += bool(line.strip())
            if rows > MAX_ROWS:
                raise _too_many("rows", MAX_ROWS)


def _check_json(path: Path) -> None:
    try:
        data = json.loads(path.read_bytes())
    except (ValueError, RecursionError):
        return  # not valid JSON: the format check that follows says so, as for any unreadable file
    rows = data.get("data") if isinstance(data, dict) else data
    if isinstance(rows, list) and len(rows) > MAX_ROWS:
        raise _too_many("rows", MAX_ROWS, len(rows))


def _check_csv(path: Path) -> None:
    with open(path, "rb") as handle:
        header = handle.readline(MAX_HEADER_BYTES + 1)
    if len(header) > MAX_HEADER_BYTES and not header.endswith(b"\n"):
        raise AlignLabError(f"dataset: the CSV header line is longer than {MAX_HEADER_BYTES // 1024} KB, "
                            f"the most the app reads")
    text = header.decode("utf-8", errors="replace")
    columns = len(next(csv.reader([text]), []))
    if columns > MAX_COLUMNS:
        raise _too_many("columns", MAX_COLUMNS, columns)
    rows = -1  # the header is not a row
    with open(path, encoding="utf-8", errors="replace", newline="") as handle:
        try:
            for _ in csv.reader(handle):
                rows += 1
                if rows > MAX_ROWS:
                    raise _too_many("rows", MAX_ROWS)
        except csv.Error as error:
            raise AlignLabError(f"dataset: cannot read the CSV file {path} ({error})") from None


def _check_parquet(path: Path) -> None:
    import pyarrow.parquet as pq

    try:
        metadata = pq.ParquetFile(path).metadata
    except Exception as error:  # noqa: BLE001 - pyarrow raises several types for a file that is not Parquet
        raise AlignLabError(f"dataset: not a Parquet file that can be read: {path} ({type(error).__name__}: "
                            f"{error})") from None
    if metadata.num_rows > MAX_ROWS:
        raise _too_many("rows", MAX_ROWS, metadata.num_rows)
    if metadata.num_columns > MAX_COLUMNS:
        raise _too_many("columns", MAX_COLUMNS, metadata.num_columns)
    values = uncompressed = 0
    for group in range(metadata.num_row_groups):
        for index in range(metadata.num_columns):
            column = metadata.row_group(group).column(index)
            unsafe = set(column.encodings) & set(UNSAFE_ENCODINGS)
            if unsafe:
                raise AlignLabError(f"dataset: Parquet column {column.path_in_schema!r} uses {', '.join(unsafe)} "
                                    "encoding, which the app does not read; save it with the default encodings")
            values += column.num_values
            uncompressed += column.total_uncompressed_size
    if values > MAX_VALUES:
        raise _too_many("values (list items counted one by one)", MAX_VALUES, values)
    if uncompressed > MAX_DATA_BYTES:
        raise _too_big("once decompressed", uncompressed)
    strings = [metadata.schema.column(index).path for index in range(metadata.num_columns)
               if metadata.schema.column(index).physical_type == "BYTE_ARRAY"]
    decoded = 0
    try:
        for batch in pq.ParquetFile(path, read_dictionary=strings).iter_batches(batch_size=4096):
            decoded += sum(decoded_bytes(column) for column in batch.columns)
            if decoded > MAX_DATA_BYTES:
                raise _too_big("once decoded")
    except AlignLabError:
        raise
    except Exception as error:  # noqa: BLE001 - a corrupt page, a type pyarrow cannot convert
        raise AlignLabError(f"dataset: cannot read the Parquet file {path} ({type(error).__name__}: {error})") \
            from None


def decoded_bytes(array) -> int:
    """Bytes a pyarrow array takes with every dictionary expanded, counted without expanding it.

    >>> import pyarrow as pa
    >>> decoded_bytes(pa.array(["abc"] * 1000).dictionary_encode()) >= 3000
    True
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if pa.types.is_dictionary(array.type):
        values = array.dictionary
        if pa.types.is_string(values.type) or pa.types.is_binary(values.type) or \
                pa.types.is_large_string(values.type) or pa.types.is_large_binary(values.type):
            lengths = pc.binary_length(values).take(array.indices)
            return int(pc.sum(lengths).as_py() or 0) + array.indices.nbytes
        return decoded_bytes(values.take(array.indices))
    if isinstance(array, pa.ChunkedArray):
        return sum(decoded_bytes(chunk) for chunk in array.chunks)
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type) or \
            pa.types.is_fixed_size_list(array.type) or pa.types.is_map(array.type):
        return decoded_bytes(array.flatten()) + 8 * len(array)
    if pa.types.is_struct(array.type):
        return sum(decoded_bytes(field) for field in array.flatten())
    return array.nbytes


def preview(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Headers and the first rows as short strings, for a table."""
    shown = rows[:PREVIEW_ROWS]
    headers = list(dict.fromkeys(key for row in shown for key in row))

    def cell(value) -> str:
        text = value if isinstance(value, str) else repr(value)
        return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"

    return headers, [[cell(row.get(header, "")) for header in headers] for row in shown]
