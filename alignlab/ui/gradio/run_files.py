"""What the Runs tab does with a run directory: find it by id, read its samples, export its model.

Run ids come from the browser, so :func:`find_run` only accepts ids of directories that exist in the
app's runs folder; exports go under the app's own data folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from alignlab.errors import AlignLabError

EXPORT_KINDS = ("adapter", "merged")


def find_run(runs_dir: str | Path, run_id: str) -> Path:
    """The directory of ``run_id`` in ``runs_dir``; AlignLabError for anything else (paths included)."""
    runs_dir = Path(runs_dir)
    names = {path.name for path in runs_dir.iterdir() if (path / "config.json").exists()} if runs_dir.exists() else set()
    if run_id not in names:
        raise AlignLabError(f"run: no run {run_id!r} in {runs_dir}")
    return runs_dir / run_id


def read_samples(run_dir: Path) -> list[dict]:
    """The run's ``samples.jsonl`` rows (reference vs aligned completions), [] if it has none yet."""
    path = run_dir / "samples.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def export_run(run_dir: Path, exports_dir: str | Path, kind: str) -> Path:
    """Copy a run's model to ``exports_dir/<run id>-<kind>``; returns the folder.

    ``adapter``: the saved folder as is (a LoRA adapter plus tokenizer, or the full model when the
    run trained without LoRA). ``merged``: the adapter folded into the base weights with peft's
    ``merge_and_unload``, saved as a plain transformers model that loads without peft.
    """
    if kind not in EXPORT_KINDS:
        raise AlignLabError(f"export: got {kind!r}, expected one of {', '.join(EXPORT_KINDS)}")
    source = run_dir / "model"
    if not source.exists():
        raise AlignLabError(f"run: {run_dir.name} has no saved model yet")
    target = Path(exports_dir) / f"{run_dir.name}-{kind}"
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if kind == "adapter" or not (source / "adapter_config.json").exists():
        shutil.copytree(source, target)
        return target
    from alignlab.models import load_trained

    config = json.loads((run_dir / "config.json").read_text())
    model, tokenizer = load_trained(run_dir, trust_remote_code=bool(config.get("trust_remote_code")))
    merged = model.merge_and_unload()
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    merged.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(target)
    return target
