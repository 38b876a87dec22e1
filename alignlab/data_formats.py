"""The formats a method can declare (``MethodSpec.data_format``), and turning rows of one into another.

- ``preference``: prompt, chosen, rejected
- ``unpaired``: prompt, completion, label (bool: good or bad), derived from pairs for KTO
- ``sft``: prompt, completion (derived from pairs by keeping the chosen answer)
- ``prompt``: prompt only (for online methods that generate their own completions)
"""

from __future__ import annotations

import json

FORMATS = {
    "preference": ("prompt", "chosen", "rejected"),
    "unpaired": ("prompt", "completion", "label"),
    "sft": ("prompt", "completion"),
    "prompt": ("prompt",),
}
# What each stored format can be turned into.
DERIVABLE = {
    "preference": ("preference", "unpaired", "sft", "prompt"),
    "unpaired": ("unpaired", "sft", "prompt"),
    "sft": ("sft", "prompt"),
    "prompt": ("prompt",),
}


def convert(stored: str, rows: list[dict], wanted: str) -> list[dict]:
    """Rows of the ``stored`` format as rows of the ``wanted`` one (one of :data:`DERIVABLE`'s for it): pairs give
    their chosen answer (sft) or each answer with its label (unpaired), labelled rows their good answers (sft), and
    any rows their distinct prompts (prompt)."""
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
