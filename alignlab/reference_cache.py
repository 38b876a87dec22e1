"""Reference log-probs of preference pairs, computed once per (model, data) and kept on disk.

DPO's loss needs log π_ref(y|x) of every chosen and rejected answer (Rafailov et al. 2023, Eq. 7).
The reference never changes, so those numbers depend only on the reference weights and the tokenized
pairs. TRL can compute them in one pass before training (``precompute_ref_log_probs``), which removes
the reference forward from every step (about 30% of a DPO step on CPU, ``bench/RESULTS.md``); its own
cache is keyed by a hash of the *trainable* model, LoRA initialisation included, so it misses on every
new run. Here the key is what the numbers actually depend on: the reference weights file (path, size,
modification time), the tokenized ids of every pair, and the settings that change the sum (maximum
length, truncation, LD-DPO's ``ld_alpha``). The first run pays one forward pass per pair; every later
run on the same model and data starts training at once.

The same store keeps the probe's step-0 measurement (:mod:`alignlab.probe`): before the first step the
policy *is* the reference, so that point depends only on the base weights, the prompts and the sampling
settings, and a later run shows it at once instead of spending its first half-minute sampling.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from alignlab.models import cache_dir

COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")
ID_COLUMNS = ("prompt_ids", "chosen_ids", "rejected_ids")


def weights_identity(model) -> str | None:
    """Path, size and mtime of the weight files behind ``model`` (its base model under LoRA), or None."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    folder = Path(getattr(base.config, "_name_or_path", "") or "")
    if not folder.is_dir():
        return None
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not files:
        return None
    return ";".join(f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)


def cache_key(model, dataset, settings: dict) -> str | None:
    """The key of ``dataset``'s reference log-probs under ``model``'s reference weights, or None."""
    identity = weights_identity(model)
    if identity is None or any(c not in dataset.column_names for c in ID_COLUMNS):
        return None
    digest = hashlib.sha256(identity.encode())
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    ids = dataset.select_columns(list(ID_COLUMNS)).to_dict()
    for column in ID_COLUMNS:
        digest.update(json.dumps(ids[column]).encode())
    return digest.hexdigest()[:32]


def cache_path(key: str, kind: str = "reference-logps") -> Path:
    return cache_dir() / kind / f"{key}.json"


def load(key: str, kind: str = "reference-logps") -> dict | None:
    """The cached values of ``key``, or None (missing or unreadable)."""
    try:
        values = json.loads(cache_path(key, kind).read_text())
    except (OSError, ValueError):
        return None
    return values if isinstance(values, dict) else None


def store(key: str, values: dict, kind: str = "reference-logps") -> None:
    """Write atomically (a reader never sees half a file); a failed write only loses the cache."""
    path = cache_path(key, kind)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_text(json.dumps(values))
        partial.replace(path)
    except OSError:
        pass


def pass_phase(done: int, total: int) -> str:
    """The run's phase while the reference pre-pass runs.

    >>> pass_phase(24, 96)
    "computing the reference model's log-probs: 24 of 96 pairs (once per model and data, then cached)"
    """
    return f"computing the reference model's log-probs: {done} of {total} pairs (once per model and data, then cached)"


def cached_trainer(trainer_class: type) -> type:
    """``trainer_class`` (TRL's DPOTrainer) whose reference pre-pass reads and fills the disk cache, and says how far
    it got: the ``set_phase`` keyword (a callable taking a phase text, such as the run's
    :meth:`~alignlab.run_contract.TrainingRun.set_phase`) hears :func:`pass_phase` after each batch of the pass."""

    class CachedReferenceTrainer(trainer_class):
        __doc__ = f"{trainer_class.__name__} with reference log-probs cached across runs (alignlab.reference_cache)."

        def __init__(self, *args, set_phase=None, **kwargs):
            self._set_phase = set_phase
            self._pass = None  # (pairs done, pairs in all) while the pre-pass runs
            super().__init__(*args, **kwargs)

        def compute_ref_log_probs(self, model, batch):
            found = super().compute_ref_log_probs(model, batch)
            if self._pass is not None:
                done, total = self._pass
                self._pass = (min(done + len(found[0]), total), total)
                self._set_phase(pass_phase(*self._pass))
            return found

        def _precompute_ref_logps(self, dataset, name, batch_size):
            settings = {"max_length": self.args.max_length,
                        "truncation_mode": getattr(self.args, "truncation_mode", None),
                        "ld_alpha": getattr(self.args, "ld_alpha", None), "ref_model": self.ref_model is not None}
            key = cache_key(self.model, dataset, settings)
            cached = load(key) if key else None
            if cached is not None and all(len(cached.get(c) or []) == len(dataset) for c in COLUMNS):
                for column in COLUMNS:
                    dataset = dataset.add_column(column, cached[column])
                self.reference_cache_hit = True
                return dataset
            if self._set_phase is not None:
                self._pass = (0, len(dataset))
                self._set_phase(pass_phase(*self._pass))
            try:
                dataset = super()._precompute_ref_logps(dataset, name, batch_size)
            finally:
                self._pass = None
            if key:
                store(key, {column: list(dataset[column]) for column in COLUMNS})
            self.reference_cache_hit = False
            return dataset

    CachedReferenceTrainer.__name__ = CachedReferenceTrainer.__qualname__ = trainer_class.__name__
    return CachedReferenceTrainer
