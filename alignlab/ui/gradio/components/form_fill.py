"""The Train form set to a job's settings when a page opens, in the browser, unless its user changed it first.

A freshly opened page asks the server for the settings of the job its progress card follows
(:func:`~alignlab.ui.gradio.components.train.job_form`), so that a reloaded page does not show the defaults beside
another run's card. On a busy machine that answer can take seconds, and a user who has started typing meanwhile
would see their values replaced. So the server sends the settings as data (:func:`fill_data`), and a function in
the page (:func:`fill_js`) applies them only where every field still holds the value the page was built with;
otherwise it keeps what the user typed and the note says whose run the card shows.
"""

from __future__ import annotations

import json
from typing import Any


def fill_data(values: dict[str, Any], fields: list[str], note: str, kept_note: str) -> dict[str, Any]:
    """What :func:`fill_js` applies: each field's new value by its position in ``fields`` (a field ``values`` lacks
    keeps its value), the note to show when the form is filled, and the one to show when the user's values stay."""
    return {"set": {str(index): values[name] for index, name in enumerate(fields) if name in values},
            "note": note, "kept": kept_note}


def fill_js(initial: list[Any]) -> str:
    """The page's function, run with the inputs ``(fill, note, *fields)`` and giving the outputs ``(note,
    *fields)``: the fill's values and note when every field still holds its ``initial`` value (compared as text, as
    the page holds numbers and strings alike), else the fields as they are and the fill's "kept" note; with no fill
    (no job to show) everything as it is."""
    return ("(fill, note, ...fields) => {\n"
            f"  const initial = {json.dumps(initial)};\n"
            "  if (!fill || !fill.set) return [note, ...fields];\n"
            "  const same = (a, b) => String(a ?? '') === String(b ?? '');\n"
            "  if (fields.some((value, i) => !same(value, initial[i]))) return [fill.kept, ...fields];\n"
            "  const set = fill.set;\n"
            "  return [fill.note, ...fields.map((value, i) => (String(i) in set ? set[String(i)] : value))];\n"
            "}")
