"""Reference log-probs of preference pairs, computed once per (model, data) and kept on disk.

DPO's loss needs log π_ref(y|x) of every chosen and rejected answer (Rafailov et al. 2023, Eq. 7).
The reference never changes, so those numbers depend only on the reference weights and the tokenized
pairs. TRL can compute them in one pass before training (``precompute_ref_log_probs``), which removes
the reference forward from every step (about 30% of a DPO step on CPU, ``bench/RESULTS.md``); its own
cache is keyed by a hash of the *trainable* model, LoRA initialisation included, so it misses on every
new run. Here the key is what the numbers actually depend on: the reference weights file (path, size,
modification time), the tokenized ids of every pair, and the settings that change the sum (maximum
length, truncation, LD-DPO's ``ld_alpha``). The first run computes them as its steps need them (no pre-pass
before step 1) and stores them when every pair has them; every later run on the same model and data reads them
and runs only the policy in each step. Step 1 of a cold LoRA run needs no reference pass at all: the adapter is
still zero, so the policy is the reference and its own forward gives the numbers (:func:`adapter_is_untrained`).

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


LAZY = True  # on a cache miss, compute each pair's reference log-probs in the step that first uses it


SHARE_UNTRAINED = True  # while the adapter is untrained, take the reference's log-probs from the policy's forward


def adapter_is_untrained(model) -> bool:
    """Whether ``model`` is a LoRA model that still computes exactly its base model: plain LoRA (no DoRA, no
    modules copied for training), every ``lora_B`` all zeros, as PEFT initialises it (Hu et al. 2021, Sec. 4.1:
    ΔW = BA is zero at the start). Then the policy *is* the reference, bit for bit: each adapted layer adds an
    exact zero to its base output."""
    import torch

    unwrapped = getattr(model, "module", model)
    configs = getattr(unwrapped, "peft_config", None)
    if not configs or len(configs) != 1:
        return False
    config = next(iter(configs.values()))
    if getattr(config, "peft_type", None) != "LORA" or getattr(config, "use_dora", False) or getattr(
            config, "modules_to_save", None) or getattr(config, "trainable_token_indices", None):
        return False
    found = False
    with torch.no_grad():
        for name, parameter in unwrapped.named_parameters():
            if "lora_B" in name or "lora_embedding_B" in name:
                found = True
                if bool(parameter.any()):
                    return False
    return found


def _filling(chosen, rejected, completion_mask):
    """A forward hook that writes the summed per-token log-probs of the forward it sees (TRL's
    ``compute_ref_log_probs`` sum, without LD-DPO) into ``chosen`` and ``rejected``, detached: the reference's
    numbers when the policy still is the reference, read by the loss after that forward."""
    import torch

    def fill(module, args, output):
        with torch.no_grad():
            logps = output.log_probs[:, -(completion_mask.size(1) - 1):].sum(dim=1)
            first, second = logps.detach().chunk(2, dim=0)
            chosen.copy_(first)
            rejected.copy_(second)

    return fill


def _pair_key(input_ids, attention_mask, row: int, rows: int) -> str:
    """A pair's identity in a collated DPO batch: its chosen (row ``row``) and rejected (row ``rows + row``) ids,
    padding left out."""
    kept = [input_ids[i][attention_mask[i].bool()].tolist() for i in (row, rows + row)]
    return hashlib.sha256(json.dumps(kept).encode()).hexdigest()


def cached_trainer(trainer_class: type) -> type:
    """``trainer_class`` (TRL's DPOTrainer) whose reference log-probs come from the disk cache, or on a miss are
    computed as the training steps need them (:data:`LAZY`) and stored once every pair has them.

    TRL's own pre-pass runs every pair through the reference before step 1: minutes of silence on a CPU before the
    first curve point, for work the steps would do anyway. Lazily, a step whose batch lacks them computes them with
    TRL's own ``compute_ref_log_probs`` (the pre-pass's function: the same numbers), keeps them by the pair's ids
    and trains on them; when training ends with every pair filled, they are stored under the same key the pre-pass
    would have used, so the next run on the same model and data reads them. Datasets other than the training one
    keep TRL's pre-pass."""
    import math

    class CachedReferenceTrainer(trainer_class):
        __doc__ = f"{trainer_class.__name__} with reference log-probs cached across runs (alignlab.reference_cache)."

        _lazy: dict | None = None  # on a miss: the key, each pair's rows by its ids, the values found so far

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
            self.reference_cache_hit = False
            if LAZY and name == "train" and key:
                rows: dict[str, list[int]] = {}
                for index in range(len(dataset)):
                    batch = self.data_collator([dataset[index]])
                    rows.setdefault(_pair_key(batch["input_ids"], batch["attention_mask"], 0, 1), []).append(index)
                self._lazy = {"key": key, "rows": rows, "values": {c: [math.nan] * len(dataset) for c in COLUMNS}}
                for column in COLUMNS:  # the collator passes them on; a NaN asks the step to compute them
                    dataset = dataset.add_column(column, [math.nan] * len(dataset))
                return dataset
            dataset = super()._precompute_ref_logps(dataset, name, batch_size)
            if key:
                store(key, {column: list(dataset[column]) for column in COLUMNS})
            return dataset

        def compute_loss(self, model, inputs, *args, **kwargs):
            import torch

            if self._lazy is None or "ref_chosen_logps" not in inputs or not bool(
                    torch.isnan(inputs["ref_chosen_logps"]).any()):
                return super().compute_loss(model, inputs, *args, **kwargs)
            if (self.ref_model is None and self.ld_alpha is None and SHARE_UNTRAINED
                    and self.accelerator.num_processes == 1 and adapter_is_untrained(model)):
                # The policy is still the reference: its own forward gives the reference's numbers. One process
                # only: sharded weights' processes must all take the same path, each holding a part of lora_B.
                chosen, rejected = (torch.full_like(inputs[column], math.nan) for column in COLUMNS)
                inputs = {**inputs, COLUMNS[0]: chosen, COLUMNS[1]: rejected}
                hook = model.register_forward_hook(_filling(chosen, rejected, inputs["completion_mask"]))
                try:
                    result = super().compute_loss(model, inputs, *args, **kwargs)
                finally:
                    hook.remove()
            else:
                chosen, rejected = self.compute_ref_log_probs(self.ref_model or self.model, inputs)
                inputs = {**inputs, COLUMNS[0]: chosen.detach(), COLUMNS[1]: rejected.detach()}
                result = super().compute_loss(model, inputs, *args, **kwargs)
            pairs = len(chosen)
            for row in range(pairs):
                found = _pair_key(inputs["input_ids"], inputs["attention_mask"], row, pairs)
                for index in self._lazy["rows"].get(found, []):
                    self._lazy["values"][COLUMNS[0]][index] = float(chosen[row])
                    self._lazy["values"][COLUMNS[1]][index] = float(rejected[row])
            return result

        def train(self, *args, **kwargs):
            try:
                return super().train(*args, **kwargs)
            finally:  # a stopped or failed run stores nothing: only a complete set is a cache entry
                lazy, self._lazy = self._lazy, None
                if lazy and not any(math.isnan(value) for column in COLUMNS for value in lazy["values"][column]):
                    store(lazy["key"], lazy["values"])

    CachedReferenceTrainer.__name__ = CachedReferenceTrainer.__qualname__ = trainer_class.__name__
    return CachedReferenceTrainer
