"""The lab's decode loop: one path from a batch of prompt ids to sampled tokens, used by every sampler.

:func:`alignlab.generation.sample` (samples, eval, make-prefs), the probe, the chat's streaming pair
and PPO's rollouts all call :func:`stream` or :func:`decode`, so one speed-up serves them all. What
makes it faster than ``model.generate`` on a CPU (``bench/sampling.py`` measures it):

- the prompts are prefilled once and, for ``k`` return sequences, the cache is expanded k-fold after
  the prefill instead of prefilling every prompt k times;
- logits are computed for the last position only;
- rows that reached a stop token leave the batch (their cache rows are dropped), so the forward
  passes shrink as completions end;
- sampling at ``top_p == 1`` draws straight from the softmax (no sort), and nucleus sampling takes only
  the 256 (else 1024) most likely tokens of a row when they hold the nucleus, the full vocabulary otherwise;
- on a CPU with bf16 matrix units, a Llama-family model runs on packed bf16 weights with its LoRA
  adapters unmerged (:mod:`alignlab.packed_decoder`); elsewhere a LoRA model samples with its adapter
  folded into the weights (:func:`merged_lora`) through the model's own forward;
- no logits processors, stopping criteria or output bookkeeping beyond what is asked for.

On the model's own forward (a GPU, another layout, or ``ALIGNLAB_SAMPLING=exact``), greedy decoding
(temperature 0) picks the same tokens as ``model.generate`` greedy; sampling draws from the same
distribution (temperature, then nucleus top-p; Holtzman et al. 2019) from the given ``torch.Generator``,
so it is reproducible, though not the same random stream as ``generate``. On the packed route the
distribution is the bf16 model's, a KL of about 0.002 nats per token from fp32's on the default model;
log-probabilities asked of :func:`decode` are still the model's own (rescored by :func:`token_logprobs`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

NUCLEUS_CANDIDATES = (256, 1024)  # tokens taken first for top-p, then for the rows they left short; the full
# vocabulary is sorted only for rows whose 1024 most likely tokens hold < top_p (a top-256 of a 49k vocabulary
# costs a quarter of a top-1024: bench/sampling.py's batch 32)


@dataclass
class Decoded:
    """What :func:`decode` returns: ``tokens`` (rows x steps, ``pad`` after a row's stop token; the stop token
    itself kept), ``lengths`` (tokens per row, the stop token included) and, when asked, ``logprobs`` (each
    token's log-probability under the model's unprocessed logits, 0 after the row ended)."""

    tokens: object
    lengths: list[int]
    logprobs: object | None = None


@dataclass
class Step:
    """One decode step of :func:`stream`: the rows (of the expanded batch) that took a token, and those tokens."""

    rows: list[int]
    tokens: list[int]
    logprobs: object | None = None


def stream(model, input_ids, attention_mask, max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0,
           generator=None, stop_ids: Sequence[int] = (), num_return_sequences: int = 1, want_logprobs: bool = False,
           **forward_kwargs) -> Iterator[Step]:
    """Decode token by token from left-padded prompts; yields one :class:`Step` per new token position.

    Row ``i * num_return_sequences + j`` is the j-th completion of prompt ``i`` (prompt-major). A row
    stops after its first token in ``stop_ids`` (that token is yielded) or after ``max_new_tokens``.
    ``generator``: a ``torch.Generator``, or a list of one per row (each row then draws its own stream).
    ``forward_kwargs`` go to every forward pass (e.g. PEFT's ``adapter_names``, one per row).
    """
    from alignlab.packed_decoder import decoder_for

    yield from _steps(model, decoder_for(model, forward_kwargs), input_ids, attention_mask, max_new_tokens,
                      temperature, top_p, generator, stop_ids, num_return_sequences, want_logprobs, forward_kwargs)


def _steps(model, packed, input_ids, attention_mask, max_new_tokens: int, temperature: float, top_p: float,
           generator, stop_ids: Sequence[int], k: int, want_logprobs: bool, forward_kwargs: dict) -> Iterator[Step]:
    """:func:`stream`'s loop, on ``packed`` (a :class:`~alignlab.packed_decoder.PackedDecoder`) or, when it is
    None, the model's own forward."""
    import torch

    rows = torch.arange(input_ids.shape[0] * k, device=input_ids.device)
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    forward, cache = _route(model, packed, input_ids.shape[0], input_ids.shape[1], max_new_tokens)
    logits = forward(input_ids, attention_mask, position_ids, cache, forward_kwargs)
    if k > 1:  # one prefill per prompt, shared by its k completions
        cache.batch_repeat_interleave(k)
        logits = logits.repeat_interleave(k, dim=0)
        attention_mask = attention_mask.repeat_interleave(k, dim=0)
        position_ids = position_ids.repeat_interleave(k, dim=0)
        forward_kwargs = {name: _rows(value, torch.arange(len(rows)) // k) for name, value in forward_kwargs.items()}
    generators = list(generator) if isinstance(generator, (list, tuple)) else None
    stops = torch.tensor(sorted(set(stop_ids)), dtype=torch.long, device=input_ids.device)
    position = position_ids[:, -1:]
    for step in range(max_new_tokens):
        scores = logits.float()
        tokens = pick(scores, temperature, top_p, generators if generators is not None else generator)
        logprobs = (torch.log_softmax(scores, dim=-1).gather(-1, tokens[:, None]).squeeze(-1)
                    if want_logprobs else None)
        yield Step(rows.tolist(), tokens.tolist(), logprobs)
        if step == max_new_tokens - 1:
            return
        alive = ~torch.isin(tokens, stops)
        if not bool(alive.any()):
            return
        if not bool(alive.all()):  # finished rows leave the batch
            keep = alive.nonzero().squeeze(-1)
            cache.batch_select_indices(keep)
            rows, tokens, attention_mask, position = rows[keep], tokens[keep], attention_mask[keep], position[keep]
            forward_kwargs = {name: _rows(value, keep) for name, value in forward_kwargs.items()}
            if generators is not None:
                generators = [generators[i] for i in keep.tolist()]
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones(len(rows), 1)], dim=1)
        position = position + 1
        logits = forward(tokens[:, None], attention_mask, position, cache, forward_kwargs)


def _route(model, packed, rows: int, prompt_length: int, max_new_tokens: int):
    """``(forward, cache)`` for a decode of ``rows`` prompts of ``prompt_length`` positions and ``max_new_tokens``
    more: the packed bf16 decoder when given (:func:`alignlab.packed_decoder.decoder_for`), else the model's own
    forward on a :func:`reserved_cache`. ``forward(input_ids, attention_mask, position_ids, cache, forward_kwargs)``
    returns the float logits of each row's last position."""
    import torch

    if packed is not None:
        def packed_forward(input_ids, attention_mask, position_ids, cache, kwargs):
            return packed.forward(input_ids, attention_mask, position_ids, cache, kwargs.get("adapter_names"))

        return packed_forward, packed.new_cache(rows, prompt_length + max_new_tokens)
    argument = cache_argument(model)

    def own_forward(input_ids, attention_mask, position_ids, cache, kwargs):
        with torch.no_grad():
            output = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                           use_cache=True, logits_to_keep=1, **{argument: cache}, **kwargs)
        return output.logits[:, -1]

    return own_forward, reserved_cache(max_new_tokens)


def decode(model, input_ids, attention_mask, max_new_tokens: int, temperature: float = 1.0, top_p: float = 1.0,
           generator=None, stop_ids: Sequence[int] = (), num_return_sequences: int = 1, pad_id: int = 0,
           want_logprobs: bool = False, **forward_kwargs) -> Decoded:
    """All of :func:`stream` at once, as a padded ``(prompts * num_return_sequences) x steps`` tensor."""
    import torch

    from alignlab.packed_decoder import decoder_for

    count = input_ids.shape[0] * num_return_sequences
    columns, logprob_columns, lengths = [], [], [0] * count
    packed = decoder_for(model, forward_kwargs)
    rescore = want_logprobs and packed is not None  # bf16 logits are not the model's
    want_logprobs = want_logprobs and not rescore
    for step in _steps(model, packed, input_ids, attention_mask, max_new_tokens, temperature, top_p, generator,
                       stop_ids, num_return_sequences, want_logprobs, forward_kwargs):
        index = torch.tensor(step.rows, device=input_ids.device)
        column = torch.full((count,), pad_id, dtype=torch.long, device=input_ids.device)
        column[index] = torch.tensor(step.tokens, device=input_ids.device)
        columns.append(column)
        for row in step.rows:
            lengths[row] += 1
        if want_logprobs:
            logprob_column = torch.zeros(count, device=input_ids.device)
            logprob_column[index] = step.logprobs
            logprob_columns.append(logprob_column)
    tokens = torch.stack(columns, dim=1) if columns else torch.empty(count, 0, dtype=torch.long)
    logprobs = torch.stack(logprob_columns, dim=1) if want_logprobs and columns else None
    if rescore:
        logprobs = token_logprobs(model, input_ids.repeat_interleave(num_return_sequences, dim=0),
                                  attention_mask.repeat_interleave(num_return_sequences, dim=0), tokens, lengths,
                                  **forward_kwargs)
    return Decoded(tokens, lengths, logprobs)


def token_logprobs(model, input_ids, attention_mask, tokens, lengths: list[int], rows_per_pass: int = 8,
                   **forward_kwargs):
    """Each token of ``tokens`` (rows x steps, after the left-padded prompts) scored by the model's own forward:
    its log-probability under the unprocessed logits, 0 past the row's ``lengths``. ``rows_per_pass`` rows
    go through the model at a time, so the logits tensor stays small."""
    import torch

    steps = tokens.shape[1]
    scored = torch.zeros(tokens.shape, dtype=torch.float32, device=tokens.device)
    if steps == 0:
        return scored
    filled = torch.arange(steps, device=tokens.device)[None, :] < torch.tensor(lengths, device=tokens.device)[:, None]
    sequences = torch.cat([input_ids, tokens], dim=1)
    mask = torch.cat([attention_mask, filled.long()], dim=1)
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        for start in range(0, len(sequences), rows_per_pass):
            part = slice(start, start + rows_per_pass)
            kwargs = {name: _rows(value, torch.arange(len(sequences))[part]) for name, value in forward_kwargs.items()}
            logits = model(input_ids=sequences[part], attention_mask=mask[part], position_ids=positions[part],
                           logits_to_keep=steps + 1, **kwargs).logits[:, :-1].float()  # those predicting ``tokens``
            picked = torch.log_softmax(logits, dim=-1).gather(-1, tokens[part, :, None]).squeeze(-1)
            scored[part] = picked * filled[part]
    return scored


@contextlib.contextmanager
def merged_lora(model):
    """Inside: a PEFT LoRA model computes with its active adapters folded into its base weights.

    The unmerged forward adds two small matmuls (and PEFT's bookkeeping) per adapted layer per
    step; merged, a decode step costs what the base model's does. Each adapted layer's base weight
    is swapped for ``W + ΔW`` and the original tensor is put back afterwards, untouched (bit for bit:
    no ``W + ΔW - ΔW`` round trip). The adapters are disabled meanwhile, so they are not applied twice.
    The model's lock (:func:`alignlab.reference.lock_for`) is held throughout, so a chat reading the model
    from another thread waits rather than see a half-swapped model. Anything else (no adapter, adapters
    already disabled or merged, non-linear LoRA layers) is left as it is.
    """
    import torch

    from alignlab.packed_decoder import applies
    from alignlab.reference import lock_for

    layers = _lora_linears(model)
    if not layers or applies(model):  # the packed decoder adds the adapters itself, unmerged
        yield model
        return
    originals = []
    with lock_for(model):
        try:
            with torch.no_grad():
                for layer in layers:
                    weight = layer.base_layer.weight
                    originals.append((weight, weight.data))
                    for name in [name for name in layer.active_adapters if name in layer.lora_A]:
                        weight.data = weight.data + layer.get_delta_weight(name).to(weight.dtype)
            with model.disable_adapter():
                yield model
        finally:
            for weight, original in originals:
                weight.data = original


def _lora_linears(model) -> list:
    """The LoRA linear layers of ``model`` when all of its adapters can be merged for sampling, else []."""
    import torch

    try:
        from peft.tuners.lora import Linear, LoraLayer
    except ImportError:
        return []
    if not hasattr(model, "disable_adapter"):
        return []
    layers = [m for m in model.modules() if isinstance(m, LoraLayer)]
    mergeable = all(isinstance(m, Linear) and isinstance(m.base_layer, torch.nn.Linear) and not m.disable_adapters
                    and not m.merged for m in layers)
    return layers if mergeable else []


def pick(scores, temperature: float, top_p: float, generator=None):
    """Next token of each row of ``scores`` (rows x vocabulary): argmax at temperature 0, else a draw from
    the softmax of ``scores / temperature`` restricted to the nucleus: the smallest set of most likely
    tokens whose probability reaches ``top_p`` (a token stays if the mass before it is below ``top_p``).

    The draw is by inverse CDF: one uniform number per row, located in the cumulative probabilities of the
    candidates (the most likely tokens, as many as hold the nucleus: :func:`_nucleus`). That is the same
    distribution as ``torch.multinomial`` at a fraction of its cost, which draws one exponential number per
    vocabulary entry."""
    import torch

    if temperature <= 0:
        return scores.argmax(-1)
    probs = torch.softmax(scores / temperature, dim=-1)
    order = None
    if top_p < 1.0:
        probs, order = _nucleus(probs, top_p)
    cumulative = probs.cumsum(-1)
    if not bool(torch.isfinite(cumulative[:, -1]).all()):  # a NaN or inf anywhere in a row reaches its total
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")  # as multinomial says
    if isinstance(generator, list):
        uniform = torch.cat([torch.rand(1, generator=g, device=probs.device) for g in generator])
    else:
        uniform = torch.rand(probs.shape[0], generator=generator, device=probs.device)
    target = (uniform * cumulative[:, -1])[:, None]
    index = torch.searchsorted(cumulative, target, right=True).clamp(max=probs.shape[-1] - 1)
    chosen = index if order is None else order.gather(-1, index)
    return chosen.squeeze(-1)


def _nucleus(probs, top_p: float):
    """The nucleus of each row as (probabilities, token ids), most likely first; tokens outside it have 0.

    The nucleus is a prefix of the row sorted by probability, so it lies within any most-likely-first
    candidate set that holds ``top_p`` of the mass: each row takes the first of ``NUCLEUS_CANDIDATES`` that
    does, or the whole sorted vocabulary. Rows narrower than the widest are padded with probability 0, which
    is never drawn."""
    import torch.nn.functional as F

    vocabulary = probs.shape[-1]
    top, order = probs.topk(min(NUCLEUS_CANDIDATES[0], vocabulary), dim=-1)  # sorted, descending
    for wider in [*NUCLEUS_CANDIDATES[1:], vocabulary]:
        short = top.sum(-1) < top_p  # a flatter row: its nucleus reaches past these candidates
        if wider <= top.shape[-1] or not bool(short.any()):
            break
        rows = short.nonzero().squeeze(-1)
        wide = min(wider, vocabulary)
        more = probs[rows].topk(wide, dim=-1) if wide < vocabulary else probs[rows].sort(dim=-1, descending=True)
        top, order = F.pad(top, (0, wide - top.shape[-1])), F.pad(order, (0, wide - order.shape[-1]))
        top[rows], order[rows] = more[0], more[1]
    return top.masked_fill(top.cumsum(-1) - top >= top_p, 0.0), order


def reserved_cache(reserve: int):
    """A transformers ``DynamicCache`` whose layers keep room for ``reserve`` more positions.

    transformers' dynamic layer concatenates every new key and value onto the old ones, copying the
    whole cache at every step (quadratic in the length). These layers write each step's keys and values
    into spare room reserved when the layer grows (``reserve`` positions more than it needs, so a
    decode of ``reserve`` tokens allocates once) and hand attention a view of the filled part."""
    from transformers import DynamicCache
    from transformers.cache_utils import Cache, DynamicLayer

    class ReservedLayer(DynamicLayer):
        def lazy_initialization(self, key_states, value_states) -> None:
            super().lazy_initialization(key_states, value_states)
            self.length, self.key_room, self.value_room = 0, None, None

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            end = self.length + key_states.shape[-2]
            if self.key_room is None or end > self.key_room.shape[-2]:
                self.key_room = _grown(self.key_room, key_states, self.length, end + reserve)
                self.value_room = _grown(self.value_room, value_states, self.length, end + reserve)
            self.key_room[..., self.length:end, :] = key_states
            self.value_room[..., self.length:end, :] = value_states
            self.length = end
            self.keys, self.values = self.key_room[..., :end, :], self.value_room[..., :end, :]
            return self.keys, self.values

        def batch_repeat_interleave(self, repeats: int) -> None:
            if self.get_seq_length() > 0:
                self.key_room = self.key_room.repeat_interleave(repeats, dim=0)
                self.value_room = self.value_room.repeat_interleave(repeats, dim=0)
                self.keys, self.values = self.key_room[..., :self.length, :], self.value_room[..., :self.length, :]

        def batch_select_indices(self, indices) -> None:
            if self.get_seq_length() > 0:
                self.key_room, self.value_room = self.key_room[indices, ...], self.value_room[indices, ...]
                self.keys, self.values = self.key_room[..., :self.length, :], self.value_room[..., :self.length, :]

    cache = DynamicCache()
    Cache.__init__(cache, layer_class_to_replicate=ReservedLayer)
    return cache


def _grown(room, states, length: int, capacity: int):
    """A new buffer of ``capacity`` positions shaped like ``states``, holding the first ``length`` of ``room``."""
    grown = states.new_empty(*states.shape[:-2], capacity, states.shape[-1])
    if room is not None and length:
        grown[..., :length, :] = room[..., :length, :]
    return grown


def _rows(value, index):
    """The rows ``index`` of a per-row forward argument (a tensor or a list such as PEFT's ``adapter_names``)."""
    if isinstance(value, list):
        return [value[i] for i in index.tolist()]
    return value[index] if hasattr(value, "index_select") else value


def cache_argument(model) -> str:
    """The forward argument that takes the KV cache: ``cache`` in transformers 5 (``past_key_values`` is
    deprecated there and warns on every call), ``past_key_values`` in models that predate it."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"
