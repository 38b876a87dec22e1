"""The votes file: one JSON line a vote, appended whole under an exclusive lock and read under a shared one, so many
voters at once never interleave or lose a line; damaged lines are reported, never fatal."""

from __future__ import annotations

import errno
import fcntl
import json
import os
from pathlib import Path
from typing import Any

from alignlab.errors import AlignLabError
from alignlab.votes.rounds import CHOICES, DECISIVE


def append_vote(path: str | Path, vote: dict) -> None:
    """Append ``vote`` to the votes file as one JSON line, whole or not at all.

    The line is written by one ``os.write`` under an exclusive ``flock`` (other writers and readers wait), so
    concurrent votes never interleave; a write that fails part-way (a full disk) is cut off again, and a file
    whose last line lacks its newline (edited by hand) gets one first. AlignLabError in one line on failure.
    """
    path = Path(path)
    line = (json.dumps(vote, ensure_ascii=False) + "\n").encode("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    except OSError as error:
        raise AlignLabError(f"votes: cannot write {str(path)!r} ({error.strerror or error})") from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        size = os.fstat(handle).st_size
        if size and os.pread(handle, 1, size - 1) != b"\n":
            line = b"\n" + line
        try:
            if os.write(handle, line) != len(line):
                raise OSError(errno.ENOSPC, "the disk took part of the line")
        except OSError as error:
            os.ftruncate(handle, size)
            raise AlignLabError(f"votes: cannot write {str(path)!r} ({error.strerror or error})") from None
    finally:
        os.close(handle)  # and the lock with it


def vote_problem(row: Any) -> str | None:
    """Why ``row`` is not a vote (a line of a votes file), or None when it is one."""
    if not isinstance(row, dict):
        return f"holds a JSON {type(row).__name__}, expected an object"
    if row.get("vote") not in CHOICES:
        return f"vote is {row.get('vote')!r}, expected one of {', '.join(CHOICES)}"
    if row.get("outcome") not in (*DECISIVE, "tie", "both-bad"):
        return f"outcome is {row.get('outcome')!r}, expected aligned, reference, tie or both-bad"
    return None


def read_votes(path: str | Path) -> tuple[list[dict], list[str]]:
    """The votes in a votes file and its damaged lines: ``(votes, problems)``, each problem naming its line
    ("line 3: not valid JSON"). A missing file has no votes. Read under a shared lock: never half a line."""
    try:
        with open(path, "rb") as handle:
            fcntl.flock(handle, fcntl.LOCK_SH)
            data = handle.read()
    except FileNotFoundError:
        return [], []
    except OSError as error:
        raise AlignLabError(f"votes: cannot read {str(path)!r} ({error.strerror or error})") from None
    votes, problems = [], []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            problems.append(f"line {number}: not valid JSON (cut short or edited?)")
            continue
        problem = vote_problem(row)
        if problem:
            problems.append(f"line {number}: {problem}")
        else:
            votes.append(row)
    return votes, problems


def is_votes_file(path: str | Path) -> bool:
    """True when ``path``'s first readable line is a vote (how :mod:`alignlab.data` tells a votes file)."""
    try:
        with open(path, "rb") as handle:
            for line in handle:
                if line.strip():
                    try:
                        return vote_problem(json.loads(line)) is None
                    except ValueError:
                        continue
    except OSError:
        return False
    return False
