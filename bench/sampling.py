"""Sampling speed: tokens/s of plain ``generate`` and of alignlab's engine, against the machine's bound.

    python -m bench.sampling                 # about 2 minutes on 2 cores: batches 1, 2, 8, 32, 16 tokens, 1 rep
    python -m bench.sampling --full          # 64 tokens, 3 reps
    python -m bench --sections sampling      # the same, as a section of the whole benchmark

Every path decodes the same left-padded built-in review prompts (chat template) for exactly ``tokens``
new tokens per row (no stop tokens, so all do the same work), at the lab's reading settings
(temperature 0.7, top-p 0.9). (a) ``model.generate``; (b) :func:`alignlab.decoding.decode`, the engine
behind :func:`alignlab.generation.sample`, on the model's own fp32 forward (``exact``); (c) the engine as
it runs by default, on the packed bf16 decoder where it applies (:mod:`alignlab.packed_decoder`), with
how far its next-token distributions are from fp32's (KL per token on the sampled rows). The rollout rows
(``*-groups``) decode the largest batch as an online trainer lays it out, ``GROUP`` copies of each prompt
in a row: (a) ``generate`` on it as TRL calls it, (b) the route TRL's trainers take in the lab
(:func:`alignlab.rollouts.engine_generate`), which prefills each prompt once. Each path's first call
(batch 1, a few tokens) is its warm-up, timed and reported; the end-to-end rate of a path adds its
warm-up to its timed calls.

The bound, measured in the same process at the same thread count: ``peak`` is the best fp32 matmul
FLOP/s (:func:`bench.cases.matmul_peak`), ``bandwidth`` the bytes per second of a timed copy of a
256 MiB tensor (bytes read + bytes written). For batch ``B``, prompts of ``P`` real tokens on average
and ``N`` new tokens, the least time any implementation needs is

    prefill:           max(B·P·2·MACs / peak, W / bandwidth)
    decode step t:     max(B·(2·MACs + 4·layers·width·(P+t)) / peak, (W + B·(P+t)·KV) / bandwidth),  t = 1..N-1

where MACs are the multiply-accumulates of every linear layer per token (lm_head included), width the
attention width (4·layers·width·L counts the scores and the weighted sum over L cached positions),
W the bytes of the weights read per forward (every parameter; an untied input embedding is only
looked up, so it is left out), and KV the bytes of keys and values cached per position. The bound
tokens/s is ``B·N`` over the sum: compute-bound at large B, memory-bound at small B. The bf16 bound is
the same sum with bf16's bytes (half of fp32's) and the best bf16 FLOP/s of oneDNN's packed product
(:func:`bf16_peak`): the bound of the precision the packed route computes in. Where the packed route
applies, ``products`` is what its weight products alone allow (:func:`products_seconds`): how close the
rest of the decode step comes to them, and how far oneDNN's bf16 kernels are from the bandwidth bound at
small batches.
"""

from __future__ import annotations

import sys
import time

from bench.cases import matmul_peak

BATCH_SIZES = (1, 2, 8, 32)
GROUP = 4  # completions per prompt in the rollout rows (GRPO and RLOO's default k)


def bandwidth(mib: int = 256, seconds: float = 1.0) -> float:
    """Bytes moved per second (read + write) by a timed copy of a ``mib`` MiB fp32 tensor."""
    import torch

    source = torch.randn(mib * 1024 * 1024 // 4)
    target = torch.empty_like(source)
    target.copy_(source)
    copies, begin = 0, time.perf_counter()
    while time.perf_counter() - begin < seconds:
        target.copy_(source)
        copies += 1
    return 2 * source.numel() * 4 * copies / (time.perf_counter() - begin)


def bf16_peak(seconds: float = 1.0, tokens: int = 800, hidden: int = 576, ffn: int = 1536) -> float:
    """Best bf16 FLOP/s of oneDNN's packed linear (the packed decoder's product) on model-shaped and square
    sizes; 0 where bf16 packing is not available."""
    import torch

    from alignlab.packed_decoder import packed_linear

    if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
        return 0.0

    def rate(rows: int, inner: int, out: int) -> float:
        x = torch.randn(rows, inner).to(torch.bfloat16)
        packed = torch.ops.mkldnn._reorder_linear_weight(torch.randn(out, inner).to(torch.bfloat16), rows)

        def product():
            return packed_linear(x, packed)

        for _ in range(3):
            product()
        n, begin = 0, time.perf_counter()
        while time.perf_counter() - begin < seconds / 3:
            product()
            n += 1
        return 2 * rows * inner * out * n / (time.perf_counter() - begin)

    return max(rate(tokens, hidden, 2 * ffn), rate(1024, 1024, 1024), rate(2048, 2048, 2048))


def products_seconds(model, batch: int, repeats: int = 5) -> float | None:
    """Seconds one decode step of ``batch`` rows spends in the packed decoder's weight products alone (every
    layer's and the output layer's, on the model's own packed weights; the best of ``repeats``); None where the
    packed route does not apply. ``batch`` over it is the most tokens/s the route can reach with these
    products, whatever the rest of the step costs."""
    import torch

    from alignlab.packed_decoder import decoder_for, packed_linear

    decoder = decoder_for(model, {})
    if decoder is None:
        return None
    w = decoder.weights
    width = w.heads * w.head_dim
    hidden = torch.randn(batch, 1, w.embed.shape[1]).to(torch.bfloat16)
    attended = torch.randn(batch, 1, width).to(torch.bfloat16)
    inner = torch.randn(batch, 1, w.intermediate).to(torch.bfloat16)

    def step():
        for layer in w.layers:
            for name, x in (("qkv", hidden), ("o", attended), ("gu", hidden), ("d", inner)):
                packed_linear(x, layer[name])
        packed_linear(hidden, w.head)

    step()
    best = float("inf")
    for _ in range(repeats):
        begin = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - begin)
    return best


def shape(model) -> dict:
    """What the bound needs from the model: linear MACs per token, weight bytes read, KV bytes per position."""
    import torch

    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    embedding = model.get_input_embeddings().weight
    tied = embedding is model.get_output_embeddings().weight
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    return {"linear_macs_per_token": sum(m.in_features * m.out_features for m in model.modules()
                                         if isinstance(m, torch.nn.Linear)),
            "weight_bytes": weight_bytes - (0 if tied else embedding.numel() * embedding.element_size()),
            "kv_bytes_per_position": 2 * config.num_hidden_layers * kv_heads * head_dim * embedding.element_size(),
            "layers": config.num_hidden_layers, "attention_width": config.num_attention_heads * head_dim}


def bound_tokens_per_s(model_shape: dict, peak: float, bytes_per_s: float, batch: int, prompt: float,
                       tokens: int) -> float:
    """The most tokens/s any implementation could reach here (see the module docstring)."""
    macs, weights = model_shape["linear_macs_per_token"], model_shape["weight_bytes"]
    seconds = max(batch * prompt * 2 * macs / peak, weights / bytes_per_s)
    for step in range(1, tokens):
        length = prompt + step
        flops = batch * (2 * macs + 4 * model_shape["layers"] * model_shape["attention_width"] * length)
        moved = weights + batch * length * model_shape["kv_bytes_per_position"]
        seconds += max(flops / peak, moved / bytes_per_s)
    return batch * tokens / seconds


def measure(model: str, tokens: int = 16, reps: int = 1, batch_sizes=BATCH_SIZES) -> dict:
    """Warm-up and timed calls of both paths at every batch size, and the bound; see the module docstring."""
    import copy

    import torch

    from alignlab.decoding import decode
    from alignlab.generation import READING_TEMPERATURE, READING_TOP_P, render_prompt
    from alignlab.models import load_model, load_tokenizer
    from alignlab.packed_decoder import applies, bf16_drift, sampling_mode
    from alignlab.rollouts import engine_generate as routed
    from alignlab.rollouts import engine_settings
    from alignlab.task import task_prompts

    def engine_generate_call(model, **kwargs):
        return routed(model, kwargs["input_ids"], kwargs["attention_mask"], **engine_settings((), kwargs))

    net, tokenizer = load_model(model), load_tokenizer(model)
    net.eval()
    tokenizer.padding_side = "left"
    prompts = [render_prompt(tokenizer, p) for p in task_prompts("eval")]
    no_stop = copy.deepcopy(net.generation_config)
    no_stop.eos_token_id = None
    pad = tokenizer.pad_token_id or 0

    def batch_of(size: int):
        return tokenizer([prompts[i % len(prompts)] for i in range(size)], return_tensors="pt", padding=True,
                         add_special_tokens=False)

    def generate(batch, new: int) -> None:
        with torch.no_grad():
            net.generate(**batch, generation_config=no_stop, max_new_tokens=new, min_new_tokens=new, do_sample=True,
                         temperature=READING_TEMPERATURE, top_p=READING_TOP_P, top_k=0, pad_token_id=pad)

    def engine(batch, new: int) -> None:
        decode(net, batch["input_ids"], batch["attention_mask"], new, READING_TEMPERATURE, READING_TOP_P,
               torch.Generator().manual_seed(0), stop_ids=(), pad_id=pad)

    def exact(batch, new: int) -> None:
        with sampling_mode("exact"):
            engine(batch, new)

    def generate_groups(batch, new: int) -> None:  # a rollout batch as TRL lays it out: k copies of each prompt
        generate({name: value.repeat_interleave(GROUP, dim=0) for name, value in batch.items()}, new)

    def engine_groups(batch, new: int) -> None:  # the same batch through the online trainers' route
        config = copy.deepcopy(no_stop)
        config.update(max_new_tokens=new, do_sample=True, temperature=READING_TEMPERATURE, top_p=READING_TOP_P,
                      top_k=0, pad_token_id=pad)
        engine_generate_call(net, **{name: value.repeat_interleave(GROUP, dim=0) for name, value in batch.items()},
                             generation_config=config)

    paths = {"generate": generate, "exact": exact, "engine": engine}
    warmup = {}
    for name, run in paths.items():
        torch.manual_seed(0)
        begin = time.perf_counter()
        run(batch_of(1), 4)
        warmup[name] = time.perf_counter() - begin
    peak = matmul_peak(seconds=1.0)["peak_flops"]
    peak_bf16 = bf16_peak()
    bytes_per_s = bandwidth()
    model_shape = shape(net)
    half = {**model_shape, "weight_bytes": model_shape["weight_bytes"] / 2,
            "kv_bytes_per_position": model_shape["kv_bytes_per_position"] / 2}
    packed = applies(net)
    rows = []
    for size in batch_sizes:
        batch = batch_of(size)
        prompt = float(batch["attention_mask"].sum()) / size
        for rep in range(reps):
            for name, run in paths.items():
                torch.manual_seed(rep)
                begin = time.perf_counter()
                run(batch, tokens)
                rows.append({"path": name, "batch": size, "rep": rep, "seconds": time.perf_counter() - begin,
                             "tokens": size * tokens})
        rows.append({"path": "bound", "batch": size, "prompt_tokens": prompt,
                     "tokens_per_s": bound_tokens_per_s(model_shape, peak, bytes_per_s, size, prompt, tokens)})
        products = products_seconds(net, size) if packed else None
        if products:
            rows.append({"path": "products", "batch": size, "seconds_per_step": products,
                         "tokens_per_s": size / products})
        if peak_bf16:
            rows.append({"path": "bound-bf16", "batch": size, "prompt_tokens": prompt,
                         "tokens_per_s": bound_tokens_per_s(half, peak_bf16, bytes_per_s, size, prompt, tokens)})
    prompts_per_group_batch = max(1, max(batch_sizes) // GROUP)
    batch = batch_of(prompts_per_group_batch)
    for rep in range(reps):
        for name, run in {"generate": generate_groups, "engine": engine_groups}.items():
            torch.manual_seed(rep)
            begin = time.perf_counter()
            run(batch, tokens)
            rows.append({"path": f"{name}-groups", "batch": prompts_per_group_batch * GROUP, "group": GROUP,
                         "rep": rep, "seconds": time.perf_counter() - begin,
                         "tokens": prompts_per_group_batch * GROUP * tokens})
    drift = None
    if packed:  # how far the packed route's next-token distributions are from fp32's, on sampled rows
        batch = batch_of(8)
        sampled = decode(net, batch["input_ids"], batch["attention_mask"], 32, READING_TEMPERATURE, READING_TOP_P,
                         torch.Generator().manual_seed(0), stop_ids=(), pad_id=pad).tokens
        drift = bf16_drift(net, torch.cat([batch["input_ids"], sampled], 1),
                           torch.cat([batch["attention_mask"], torch.ones_like(sampled)], 1))
    return {"threads": torch.get_num_threads(), "tokens": tokens, "reps": reps, "warmup_s": warmup,
            "peak_flops": peak, "peak_flops_bf16": peak_bf16, "bandwidth_bytes_per_s": bytes_per_s,
            "shape": model_shape, "route": "packed bf16" if packed else "model forward",
            "kl_fp32_to_engine_per_token": drift, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.sampling [--full] [bench options]``: the sampling section alone, merged into results.json."""
    from bench.__main__ import main as bench_main

    argv = list(sys.argv[1:] if argv is None else argv)
    full = "--full" in argv
    argv = [a for a in argv if a != "--full"]
    return bench_main(["--sections", "sampling", "--keep-other-sections", *(["--sampling-full"] if full else []),
                       *argv])


if __name__ == "__main__":
    raise SystemExit(main())
