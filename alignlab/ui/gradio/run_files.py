"""Exporting a run's model from the Runs tab: the adapter as saved, or merged into its base model.

The run directory itself is read through :mod:`alignlab.rundir` (run ids from the browser go through
:func:`alignlab.rundir.find_run`, which accepts only runs of the app's runs folder); exports go under
the app's own data folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from alignlab import rundir
from alignlab.errors import AlignLabError

EXPORT_KINDS = ("adapter", "merged")


def export_run(run_dir: Path, exports_dir: str | Path, kind: str) -> Path:
    """Copy a run's model to ``exports_dir/<run id>-<kind>``; returns the folder.

    ``adapter``: the saved folder as is (a LoRA adapter plus tokenizer, or the full model when the
    run trained without LoRA). ``merged``: the adapter folded into the base weights with peft's
    ``merge_and_unload``, saved as a plain transformers model that loads without peft.
    """
    if kind not in EXPORT_KINDS:
        raise AlignLabError(f"export: got {kind!r}, expected one of {', '.join(EXPORT_KINDS)}")
    source = rundir.model_dir(run_dir)
    if not rundir.has_model(run_dir):
        raise AlignLabError(f"run: {run_dir.name} has no saved model yet")
    target = Path(exports_dir) / f"{run_dir.name}-{kind}"
    if target.exists():
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if kind == "adapter" or not rundir.has_adapter(run_dir):
        shutil.copytree(source, target)
        return target
    from alignlab.models import load_trained

    trust_remote_code = bool(rundir.read_config(run_dir).get("trust_remote_code"))
    model, tokenizer = load_trained(run_dir, trust_remote_code=trust_remote_code)
    merged = model.merge_and_unload()
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    merged.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    partial.rename(target)
    return target
