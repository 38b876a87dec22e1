"""Datasets: the built-in ``positive-reviews`` task, loading from files or the HF cache, formats.

Formats a method can declare (``MethodSpec.data_format``):

- ``preference``: prompt, chosen, rejected
- ``unpaired``: prompt, completion, label (bool: good or bad), derived from pairs for KTO
- ``sft``: prompt, completion (derived from pairs by keeping the chosen answer)
- ``prompt``: prompt only (for online methods that generate their own completions)

Accepted sources: a built-in name, a local ``.jsonl``/``.json``/``.csv``/``.parquet`` file, or a
Hugging Face dataset id already in the local cache. Rows may be plain text or conversational
(lists of ``{"role", "content"}``), and pairs may be ``chosen``/``rejected`` transcripts in the
``\\n\\nHuman: ... \\n\\nAssistant: ...`` form of the classic HH preference data.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from alignlab.errors import AlignLabError

BUILTIN_TASK = "positive-reviews"
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
    """The project's ``assets/`` folder (``$ALIGNLAB_ASSETS`` overrides)."""
    return Path(os.environ.get("ALIGNLAB_ASSETS", Path(__file__).resolve().parent.parent / "assets"))


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


def read_jsonl(path: Path) -> list[dict]:
    """Read a JSONL file; a broken line raises AlignLabError with its line number."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
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


def _read_source(source: str, purpose: str) -> list[dict]:
    if source == BUILTIN_TASK:
        if purpose == "prompt":
            return [{"prompt": p} for p in task_prompts("train")]
        return read_jsonl(task_dir() / "prefs.jsonl")
    path = Path(source).expanduser()
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".jsonl":
            return read_jsonl(path)
        if suffix == ".json":
            data = json.loads(path.read_text())
            return data if isinstance(data, list) else data.get("data", [])
        if suffix in (".csv", ".parquet"):
            import pandas

            frame = pandas.read_csv(path) if suffix == ".csv" else pandas.read_parquet(path)
            return frame.to_dict(orient="records")
        raise AlignLabError(f"dataset: {source!r} has suffix {suffix!r}, expected .jsonl, .json, .csv or .parquet")
    if path.exists():
        raise AlignLabError(f"dataset: {source!r} is a folder, expected a file or dataset name")
    return _read_hub_cache(source)


def _read_hub_cache(source: str) -> list[dict]:
    import datasets

    name, _, split = source.partition(":")
    try:
        loaded = datasets.load_dataset(name, split=split or "train", download_mode="reuse_cache_if_exists")
    except Exception:  # noqa: BLE001 - any failure means it is not available offline
        raise AlignLabError(
            f"dataset: got {source!r}, expected {BUILTIN_TASK!r}, a .jsonl/.json/.csv/.parquet file, or a Hugging "
            "Face dataset id already in the local cache (NAME or NAME:SPLIT)"
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


def _normalise(rows: list[dict]) -> tuple[str, list[dict]]:
    """Detect the stored format and bring rows to the canonical columns."""
    columns = set(rows[0])
    if {"chosen", "rejected"} <= columns:
        if "prompt" not in columns:
            if isinstance(rows[0]["chosen"], str) and "Assistant:" in rows[0]["chosen"]:
                rows = [{"chosen": parse_transcript(r["chosen"]), "rejected": parse_transcript(r["rejected"])}
                        for r in rows]
            if not isinstance(rows[0]["chosen"], list):
                raise AlignLabError(
                    "dataset: has chosen/rejected but no prompt column and they are not transcripts or message lists; "
                    + ACCEPTED
                )
            from trl.data_utils import extract_prompt

            rows = [extract_prompt(r) for r in rows]
        rows = [{"prompt": r["prompt"], "chosen": r["chosen"], "rejected": r["rejected"]} for r in rows]
        return "preference", rows
    if {"prompt", "completion", "label"} <= columns:
        return "unpaired", [{"prompt": r["prompt"], "completion": r["completion"], "label": bool(r["label"])}
                            for r in rows]
    if {"prompt", "completion"} <= columns:
        return "sft", [{"prompt": r["prompt"], "completion": r["completion"]} for r in rows]
    if "messages" in columns:
        out = []
        for r in rows:
            messages = r["messages"]
            out.append({"prompt": messages[:-1], "completion": messages[-1:]})
        return "sft", out
    if "prompt" in columns:
        return "prompt", [{"prompt": r["prompt"]} for r in rows]
    raise AlignLabError(f"dataset: columns {sorted(columns)} match no known format; " + ACCEPTED)


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


def load_rows(source: str, data_format: str, method: str = "") -> list[dict]:
    """Rows of ``source`` in ``data_format``, converting when possible, else a clear error."""
    if data_format not in FORMATS:
        raise ValueError(data_format)
    rows = _read_source(source, data_format)
    if not rows:
        raise AlignLabError(f"dataset: {source!r} is empty, expected at least one row")
    stored, rows = _normalise(rows)
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


def load_dataset(source: str, data_format: str, method: str = ""):
    """``load_rows`` as a ``datasets.Dataset`` (what TRL trainers take)."""
    import datasets

    return datasets.Dataset.from_list(load_rows(source, data_format, method))


HELD_OUT_ROWS = 64  # a user dataset's last rows serve as its held-out prompts


def held_out_prompts(source: str) -> list:
    """Held-out prompts for samples, the probe and the eval: the built-in task's eval split, else the
    prompts of the dataset's last :data:`HELD_OUT_ROWS` rows."""
    if source == BUILTIN_TASK:
        return task_prompts("eval")
    return [row["prompt"] for row in load_rows(source, "prompt")[-HELD_OUT_ROWS:]]
