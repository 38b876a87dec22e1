"""Exporting a run's model from the Runs tab: the adapter as saved, or merged into its base model.

The run directory itself is read through :mod:`alignlab.rundir` (run ids from the browser go through
:func:`alignlab.rundir.find_run`, which accepts only runs of the app's runs folder); exports go under
the app's own data folder. The export itself, model card and hub id of the base included, is
:func:`alignlab.publish.export_run`, the one ``alignlab export`` runs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from alignlab.errors import AlignLabError
from alignlab.publish import export_run as export_to

EXPORT_KINDS = ("adapter", "merged")


def export_run(run_dir: Path, exports_dir: str | Path, kind: str) -> Path:
    """Export a run's model to ``exports_dir/<run id>-<kind>`` (replacing an earlier export); returns the folder.

    ``adapter``: the saved folder (a LoRA adapter plus tokenizer, or the full model when the run trained
    without LoRA) with the model card. ``merged``: the adapter folded into the base weights with peft's
    ``merge_and_unload``, saved as a plain transformers model that loads without peft.
    """
    if kind not in EXPORT_KINDS:
        raise AlignLabError(f"export: got {kind!r}, expected one of {', '.join(EXPORT_KINDS)}")
    target = Path(exports_dir) / f"{run_dir.name}-{kind}"
    if target.exists():
        shutil.rmtree(target)
    return export_to(run_dir, target, merged=kind == "merged")
