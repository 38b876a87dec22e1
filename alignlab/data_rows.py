"""Checking dataset rows and bringing them to their format's columns.

Rows may be stored in any of the :data:`LAYOUTS`: plain text or conversational (lists of ``{"role", "content"}``),
and pairs may be ``chosen``/``rejected`` transcripts in the ``\\n\\nHuman: ... \\n\\nAssistant: ...`` form of the
classic HH preference data (:mod:`alignlab.transcripts`).

Every row is checked before a run starts (:func:`check_rows`): each column of the layout is there, text is a
non-empty string (or, in conversational data, a list of ``{"role", "content"}`` messages), and ``label`` is a
boolean, 0/1 or the string true/false/1/0. A bad row raises one AlignLabError naming the file, the row
(counted from 1; a CSV header is not a row), the column, the value and what is expected. :func:`normalise` then
gives the checked rows the canonical columns of their format (:mod:`alignlab.data_formats`).
"""

from __future__ import annotations

import warnings
from typing import Any

from alignlab.errors import AlignLabError, AlignLabWarning
from alignlab.transcripts import parse_transcript

ACCEPTED = (
    "accepted formats: (prompt, chosen, rejected); (chosen, rejected) as HH transcripts or message lists; "
    "(prompt, completion, label); (prompt, completion); (messages); (prompt)"
)
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


def check_rows(source: str, rows: list) -> str:
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


def normalise(source: str, layout: str, rows: list[dict]) -> tuple[str, list[dict]]:
    """Rows checked by :func:`check_rows`, in the canonical columns of their format; returns the format too."""
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


def warn_identical_pairs(source: str, rows: list[dict]) -> None:
    """Warn (AlignLabWarning) about pairs whose chosen and rejected are the same: they carry no preference."""
    same = [number for number, row in enumerate(rows, start=1) if row["chosen"] == row["rejected"]]
    if same:
        shown = ", ".join(map(str, same[:5])) + (", ..." if len(same) > 5 else "")
        warnings.warn(f"dataset: {source}: {len(same)} of {len(rows)} pairs have chosen == rejected (row {shown}); "
                      "they carry no preference, so training learns nothing (or a contradiction) from them",
                      AlignLabWarning, stacklevel=1)  # one location: the same data loaded twice warns once
