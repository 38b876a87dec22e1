"""Uploaded datasets: checked, copied under the app's data folder, referred to by a server-made name.

The browser only ever sends back a *name* from :meth:`UploadStore.names`; the server maps it to a file
it wrote itself, so no path from a client reaches the engine. Size and type are limited.
"""

from __future__ import annotations

import re
import secrets
import shutil
from pathlib import Path

from alignlab.errors import AlignLabError

SUFFIXES = (".jsonl", ".csv", ".parquet")
MAX_BYTES = 20 * 1024 * 1024
PREVIEW_ROWS = 5
PREVIEW_CHARS = 120


class UploadStore:
    """The folder of uploaded datasets."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder).resolve()
        self.folder.mkdir(parents=True, exist_ok=True)

    def add(self, temp_path: str | Path, original_name: str) -> str:
        """Copy an upload (a file the web server received) here; returns its stored name.

        Raises AlignLabError for a wrong type or a file over the size limit.
        """
        suffix = Path(original_name).suffix.lower()
        if suffix not in SUFFIXES:
            raise AlignLabError(f"dataset: got a {suffix or 'suffix-less'} file, expected {', '.join(SUFFIXES)}")
        size = Path(temp_path).stat().st_size
        if size > MAX_BYTES:
            raise AlignLabError(f"dataset: file is {size / 2**20:.1f} MB, expected at most {MAX_BYTES // 2**20} MB")
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


def preview(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Headers and the first rows as short strings, for a table."""
    shown = rows[:PREVIEW_ROWS]
    headers = list(dict.fromkeys(key for row in shown for key in row))

    def cell(value) -> str:
        text = value if isinstance(value, str) else repr(value)
        return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"

    return headers, [[cell(row.get(header, "")) for header in headers] for row in shown]
