"""The engine's fast route on a CPU: a Llama-family decoder whose weights are packed once in bfloat16.

Decoding a small model on a CPU is bound by its matrix products; a Python-level forward adds little
(``bench/sampling.py`` and ``bench/README.md`` give the measurements). What this route changes:

- **bf16 weights, packed for oneDNN** (``torch.ops.mkldnn._reorder_linear_weight``): on CPUs with
  bf16 matrix units (AMX, AVX512-BF16) a batch-8 product runs about 3x faster than fp32's (a whole
  decode step about 2.3x), and the packed weights work for any batch size. The gain is measured once
  per process (:func:`available`): where bf16 is not faster than fp32 (most laptops without
  AVX512-BF16) the route stays off and the engine runs the model's own forward.
- **fused projections**: q, k and v are one product, gate and up another.
- **LoRA unmerged**: the base weights are packed once per model (a LoRA run never changes them) and each
  adapter's ``B·A`` is applied as two thin products per projection, so a probe during training repacks
  nothing. PEFT's ``adapter_names`` (the chat's reference row on ``__base__`` and the aligned row on the
  adapter, one batch) is honoured row by row.

The sampled distribution differs from fp32's by bf16 rounding only: on the default model the
KL(fp32 ‖ bf16) of the next-token distribution is about 0.002 nats per token (``bench/sampling.py``
prints it), two orders of magnitude below what a DPO run moves the policy. Log-probabilities a caller
optimises or scores are never taken from this route: :func:`alignlab.decoding.decode` rescores with the
model's own forward when asked for them. ``ALIGNLAB_SAMPLING=exact`` turns the route off.
"""

from __future__ import annotations

import contextlib
import os
import threading
import weakref

SAMPLING_ENV = "ALIGNLAB_SAMPLING"  # "fast" (default: this route where it applies) or "exact" (the model's forward)
ARCHITECTURES = ("llama", "mistral")  # decoder layouts this route implements (RMSNorm, RoPE, GQA, SwiGLU)
STATIC_ROPE = ("default", "linear", "llama3")  # rotary types whose frequencies do not depend on the length
SPEEDUP_NEEDED = 1.5  # bf16 must beat fp32 by this much on a batch-8 product for the route to be used

_lock = threading.Lock()
_packs: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # base model -> (weights key, PackedWeights)
_available: bool | None = None


_forced: list[str] = []  # innermost sampling_mode() setting, over the environment


def wanted() -> bool:
    """Whether the fast route may be used: :func:`sampling_mode`'s setting, else ``ALIGNLAB_SAMPLING``
    (anything but ``exact`` means yes)."""
    mode = _forced[-1] if _forced else os.environ.get(SAMPLING_ENV, "fast")
    return mode.strip().lower() != "exact"


@contextlib.contextmanager
def sampling_mode(mode: str):
    """Inside, every decode in this process uses ``mode``: ``"exact"`` (the model's own forward) or ``"fast"``
    (this route where it applies). For benchmarks and tests that compare the two; it is process-wide."""
    if mode not in ("exact", "fast"):
        raise ValueError(f"sampling mode must be 'exact' or 'fast', not {mode!r}")
    _forced.append(mode)
    try:
        yield
    finally:
        _forced.pop()


def available() -> bool:
    """Whether bf16 products beat fp32 ones here by :data:`SPEEDUP_NEEDED` (measured once per process, ~0.1 s)."""
    global _available
    if _available is None:
        _available = _measure_bf16_speedup() >= SPEEDUP_NEEDED
    return _available


def _measure_bf16_speedup() -> float:
    import time

    import torch

    try:
        if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            return 0.0
        weights = [torch.randn(3072, 576) for _ in range(8)]
        packed = [torch.ops.mkldnn._reorder_linear_weight(w.to(torch.bfloat16), 8) for w in weights]
        x = torch.randn(8, 576)
        x16 = x.to(torch.bfloat16)

        def timed(run) -> float:  # the fastest of five: other work on the machine slows single calls, not all
            run()
            times = []
            for _ in range(5):
                begin = time.perf_counter()
                run()
                times.append(time.perf_counter() - begin)
            return min(times)

        fp32 = timed(lambda: [torch.nn.functional.linear(x, w) for w in weights])
        bf16 = timed(lambda: [packed_linear(x16, p) for p in packed])
        return fp32 / bf16
    except (RuntimeError, AttributeError):
        return 0.0


def packed_linear(x, packed):
    """``x`` (bf16) times a weight packed by ``torch.ops.mkldnn._reorder_linear_weight``: oneDNN's packed product."""
    import torch

    return torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")


def base_of(model):
    """The transformers model under a PEFT wrapper (or ``model`` itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def applies(model) -> bool:
    """Whether :func:`decoder_for` would give a decoder for ``model`` (layout, device, adapters, setting)."""
    return wanted() and _supported(model) and available()


def route_name(model) -> str:
    """``"packed-bf16"`` where this route samples ``model``, else ``"model-forward"``: cached samples (the step-0
    probe) are keyed by it, since the two routes draw different tokens from the same seed."""
    return "packed-bf16" if applies(model) else "model-forward"


def _supported(model) -> bool:
    config = getattr(base_of(model), "config", None)
    if config is None or getattr(config, "model_type", None) not in ARCHITECTURES:
        return False
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    base = base_of(model)
    try:
        device = next(base.parameters()).device
    except StopIteration:
        return False
    return (device.type == "cpu" and getattr(config, "hidden_act", "silu") == "silu"
            and not getattr(config, "attention_bias", False) and not getattr(config, "mlp_bias", False)
            and getattr(config, "pretraining_tp", 1) == 1 and getattr(config, "sliding_window", None) is None
            and rope.get("rope_type", "default") in STATIC_ROPE and hasattr(base, "model")
            and hasattr(base.model, "rotary_emb") and _plain_ends(base)
            and all(_adapters_supported(layer) for layer in _projections(base)))


def _plain_ends(base) -> bool:
    """The embedding and the output layer carry no adapter (this route reads their weights as they are)."""
    import torch

    return (type(base.model.embed_tokens) is torch.nn.Embedding and type(base.lm_head) is torch.nn.Linear
            and base.lm_head.bias is None)


def _projections(base) -> list:
    return [module for layer in base.model.layers for module in (
        layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj, layer.self_attn.o_proj,
        layer.mlp.gate_proj, layer.mlp.up_proj, layer.mlp.down_proj)]


def _adapters_supported(module) -> bool:
    """A plain linear layer, or a PEFT LoRA linear whose adapters are vanilla LoRA (no DoRA, no LoRA bias)."""
    import torch

    if isinstance(module, torch.nn.Linear):
        return module.bias is None
    base_layer = getattr(module, "base_layer", None)
    if not isinstance(base_layer, torch.nn.Linear) or base_layer.bias is not None or not hasattr(module, "lora_A"):
        return False
    if getattr(module, "fan_in_fan_out", False):
        return False
    return all(name not in getattr(module, "lora_variant", {}) and module.lora_B[name].bias is None
               for name in module.lora_A)


def decoder_for(model, forward_kwargs: dict) -> PackedDecoder | None:
    """A :class:`PackedDecoder` computing what ``model(**forward_kwargs)`` computes, or None where this route
    does not apply (another layout, a GPU, the exact setting, forward arguments other than PEFT's
    ``adapter_names`` for adapters it knows)."""
    if set(forward_kwargs) - {"adapter_names"} or not applies(model):
        return None
    base = base_of(model)
    row_adapters = forward_kwargs.get("adapter_names")
    adapters = _adapters(base, row_adapters)
    if adapters is None:
        return None
    return PackedDecoder(_weights(base), adapters, row_adapters)


def _adapters(base, row_adapters) -> list | None:
    """Per layer, the LoRA factors to add: ``{"qkv"|"o"|"gu"|"d": (A, B, names)}`` (A stacked over the adapters
    and fused projections, B block-diagonal with each adapter's scaling folded in); None if a row names an
    adapter that is not there."""
    import torch

    layers = []
    for layer in base.model.layers:
        groups = {"qkv": (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj),
                  "o": (layer.self_attn.o_proj,), "gu": (layer.mlp.gate_proj, layer.mlp.up_proj),
                  "d": (layer.mlp.down_proj,)}
        factors = {}
        for group, modules in groups.items():
            pieces, names = [], []  # (output offset, A, scaled B, adapter name)
            offset = 0
            for module in modules:
                out = (module.base_layer if hasattr(module, "base_layer") else module).out_features
                for name in _names_in_use(module, row_adapters):
                    if name not in module.lora_A:
                        return None
                    scaled_b = module.lora_B[name].weight * module.scaling[name]
                    pieces.append((offset, module.lora_A[name].weight, scaled_b))
                    names.append(name)
                offset += out
            if pieces:
                rank = sum(a.shape[0] for _, a, _ in pieces)
                a_stack = torch.cat([a for _, a, _ in pieces]).to(torch.bfloat16)
                b_block = torch.zeros(offset, rank, dtype=torch.bfloat16)
                column = 0
                for start, a, b in pieces:
                    b_block[start:start + b.shape[0], column:column + a.shape[0]] = b
                    column += a.shape[0]
                factors[group] = (a_stack, b_block, _columns_of(pieces, names))
        layers.append(factors)
    return layers


def _names_in_use(module, row_adapters) -> list[str]:
    if not hasattr(module, "lora_A") or getattr(module, "merged", False):
        return []
    if row_adapters is not None:  # PEFT's mixed batch: each row its own adapter (or "__base__")
        return sorted({name for name in row_adapters if name != "__base__"})
    if module.disable_adapters:
        return []
    return [name for name in module.active_adapters if name in module.lora_A]


def _columns_of(pieces, names) -> list[tuple[int, int, str]]:
    """(first, last + 1, adapter) column ranges of the stacked rank dimension."""
    columns, start = [], 0
    for (_, a, _), name in zip(pieces, names):
        columns.append((start, start + a.shape[0], name))
        start += a.shape[0]
    return columns


def _weights(base) -> PackedWeights:
    """The packed base weights of ``base``, repacked only when a weight tensor was replaced or changed."""
    key = tuple((p.data_ptr(), p._version) for p in _base_tensors(base))
    with _lock:
        cached = _packs.get(base)
        if cached is not None and cached[0] == key:
            return cached[1]
        weights = PackedWeights(base)
        _packs[base] = (key, weights)
        return weights


def _linear_weight(module):
    return (module.base_layer if hasattr(module, "base_layer") else module).weight


def _base_tensors(base) -> list:
    tensors = [base.model.embed_tokens.weight, base.model.norm.weight, base.lm_head.weight]
    for layer in base.model.layers:
        tensors += [layer.input_layernorm.weight, layer.post_attention_layernorm.weight]
    return tensors + [_linear_weight(module) for module in _projections(base)]


class PackedWeights:
    """A base model's weights in bf16: norms and embedding as tensors, products packed for oneDNN."""

    def __init__(self, base):
        import torch

        def pack(*modules):
            weight = torch.cat([_linear_weight(m).detach() for m in modules]).to(torch.bfloat16)
            return torch.ops.mkldnn._reorder_linear_weight(weight, 1)

        config = base.config
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.eps = config.rms_norm_eps
        self.intermediate = config.intermediate_size
        with torch.no_grad():
            self.layers = [{
                "n1": _bf16(layer.input_layernorm.weight),
                "n2": _bf16(layer.post_attention_layernorm.weight),
                "qkv": pack(layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj),
                "o": pack(layer.self_attn.o_proj),
                "gu": pack(layer.mlp.gate_proj, layer.mlp.up_proj),
                "d": pack(layer.mlp.down_proj),
            } for layer in base.model.layers]
            self.norm = _bf16(base.model.norm.weight)
            self.embed = _bf16(base.model.embed_tokens.weight)
            self.head = pack(base.lm_head)
            rotary = base.model.rotary_emb
            self.inv_freq = rotary.inv_freq.detach().float().clone()
            self.rope_scale = float(getattr(rotary, "attention_scaling", 1.0))


class KVCache:
    """Keys and values of every layer, ``rows x kv_heads x capacity x head_dim`` in bf16, filled up to ``length``.

    Has the two batch operations :func:`alignlab.decoding.stream` calls on a transformers cache."""

    def __init__(self, layers: int, rows: int, kv_heads: int, capacity: int, head_dim: int):
        import torch

        self.keys = [torch.empty(rows, kv_heads, capacity, head_dim, dtype=torch.bfloat16) for _ in range(layers)]
        self.values = [torch.empty_like(k) for k in self.keys]
        self.length = 0

    def batch_repeat_interleave(self, repeats: int) -> None:
        self.keys = [k.repeat_interleave(repeats, dim=0) for k in self.keys]
        self.values = [v.repeat_interleave(repeats, dim=0) for v in self.values]

    def batch_select_indices(self, indices) -> None:
        self.keys = [k[indices] for k in self.keys]
        self.values = [v[indices] for v in self.values]


class PackedDecoder:
    """One model's forward on packed bf16 weights (plus unmerged LoRA factors), for decoding only."""

    def __init__(self, weights: PackedWeights, adapters: list, row_adapters: list | None):
        self.weights, self.adapters = weights, adapters
        self.row_adapters = row_adapters

    def new_cache(self, rows: int, capacity: int) -> KVCache:
        w = self.weights
        return KVCache(len(w.layers), rows, w.kv_heads, capacity, w.head_dim)

    def forward(self, input_ids, attention_mask, position_ids, cache: KVCache, row_adapters=None,
                all_positions: bool = False):
        """Logits (float32) of the last position of each row (rows x vocabulary; every new position, rows x new x
        vocabulary, with ``all_positions``), writing the new keys and values into ``cache``.

        ``attention_mask`` covers the cached positions and the new ones (1 = attend), as transformers takes it.
        """
        import torch
        import torch.nn.functional as F

        w = self.weights
        rows, new = input_ids.shape
        start, end = cache.length, cache.length + new
        masks = self._row_masks(row_adapters if row_adapters is not None else self.row_adapters, rows)
        angles = position_ids[..., None].float() * w.inv_freq
        cos = (torch.cat([angles, angles], -1).cos() * w.rope_scale).to(torch.bfloat16)[:, None]
        sin = (torch.cat([angles, angles], -1).sin() * w.rope_scale).to(torch.bfloat16)[:, None]
        keep = attention_mask[:, None, None, :end].bool()
        if new > 1:  # causal within the new positions; a padded row attends to itself (no empty softmax)
            causal = torch.ones(new, end, dtype=torch.bool).tril(diagonal=start)
            itself = torch.arange(end)[None, :] == (start + torch.arange(new))[:, None]
            keep = (keep & causal) | itself
        q_width, kv_width = w.heads * w.head_dim, w.kv_heads * w.head_dim
        with torch.no_grad():
            x = F.embedding(input_ids, w.embed)
            for index, (layer, lora) in enumerate(zip(w.layers, self.adapters)):
                h = _rms(x, layer["n1"], w.eps)
                qkv = self._linear(h, layer["qkv"], lora.get("qkv"), masks)
                q = qkv[..., :q_width].view(rows, new, w.heads, w.head_dim).transpose(1, 2)
                k = qkv[..., q_width:q_width + kv_width].view(rows, new, w.kv_heads, w.head_dim).transpose(1, 2)
                v = qkv[..., q_width + kv_width:].view(rows, new, w.kv_heads, w.head_dim).transpose(1, 2)
                cache.keys[index][:, :, start:end] = _rotate(k, cos, sin)
                cache.values[index][:, :, start:end] = v
                attended = F.scaled_dot_product_attention(
                    _rotate(q, cos, sin), cache.keys[index][:, :, :end], cache.values[index][:, :, :end],
                    attn_mask=keep, enable_gqa=True)
                x = x + self._linear(attended.transpose(1, 2).reshape(rows, new, q_width), layer["o"],
                                     lora.get("o"), masks)
                h = _rms(x, layer["n2"], w.eps)
                gate_up = self._linear(h, layer["gu"], lora.get("gu"), masks)
                x = x + self._linear(F.silu(gate_up[..., :w.intermediate]) * gate_up[..., w.intermediate:],
                                     layer["d"], lora.get("d"), masks)
            cache.length = end
            if all_positions:
                return packed_linear(_rms(x, w.norm, w.eps), w.head).float()
            return packed_linear(_rms(x[:, -1:], w.norm, w.eps), w.head)[:, -1].float()

    def _row_masks(self, row_adapters, rows: int) -> dict | None:
        """Per adapter, a rows x 1 x 1 mask of the rows it applies to (None: every adapter on every row). An adapter
        the decoder was built with and no row names any more (its rows finished and left the batch) gets an
        all-zero mask: its factors stay in the products and add nothing."""
        import torch

        if row_adapters is None:
            return None
        return {name: torch.tensor([[[float(n == name)]] for n in row_adapters], dtype=torch.bfloat16)
                for name in set(row_adapters) | set(self.row_adapters or ())}

    @staticmethod
    def _linear(x, packed, lora, masks):
        out = packed_linear(x, packed)
        if lora is None:
            return out
        a_stack, b_block, columns = lora
        low = x @ a_stack.t()
        if masks is not None:
            for first, last, name in columns:
                low[..., first:last] *= masks[name]
        return out + low @ b_block.t()


def bf16_drift(model, input_ids, attention_mask) -> float:
    """Mean KL(model ‖ packed bf16 decoder) of the next-token distributions over the real positions of
    ``input_ids`` (left-padded rows), in nats per token: how far this route's sampling is from the model's."""
    import torch

    decoder = decoder_for(model, {})
    if decoder is None:
        raise ValueError("the packed decoder does not apply to this model here")
    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        exact = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions).logits.float()
        cache = decoder.new_cache(input_ids.shape[0], input_ids.shape[1])
        packed = decoder.forward(input_ids, attention_mask, positions, cache, all_positions=True)
    exact, packed = exact.log_softmax(-1), packed.log_softmax(-1)
    per_position = (exact.exp() * (exact - packed)).sum(-1)
    real = attention_mask.bool()
    return float(per_position[real].mean())


def _bf16(weight):
    """A bf16 copy of a weight tensor (the model itself is left as it is)."""
    import torch

    return weight.detach().to(torch.bfloat16)


def _rms(x, weight, eps: float):
    import torch

    return (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps)).to(x.dtype) * weight


def _rotate(x, cos, sin):
    import torch

    half = x.shape[-1] // 2
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin
