"""Benchmark cases. Each runs in a fresh child process (``bench.child``) and returns a JSON-able dict.

Training cases report the wall time between consecutive logged steps (``logging_steps=1``), the
tokens each step consumed (TRL's cumulative ``num_tokens``) and the run's state.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

PREFS = Path(__file__).resolve().parent.parent / "assets" / "positive-reviews" / "prefs.jsonl"
CHAT_MESSAGE = "I went in with low expectations and"


def _threads() -> int:
    import torch

    return torch.get_num_threads()


def _deltas(times: list[float]) -> list[float]:
    return [round(b - a, 4) for a, b in zip(times, times[1:])]


def _token_steps(cumulative: list[float]) -> list[float]:
    return [b - a for a, b in zip([0.0, *cumulative], cumulative)]


def alignlab_run(method: str, model: str, steps: int, output_dir: str, probe_every: int = 0,
                 subscriber: bool | str = False, lora: bool = True, batch_size: int = 8, seed: int = 42,
                 method_args: dict | None = None) -> dict:
    """One run through alignlab's runner (bus, JSONL log, status writes) with an optional live subscriber.

    ``subscriber``: True records each event's delivery latency; ``"notebook-figure"`` attaches the
    notebook's live plotly figure (:class:`~alignlab.ui.notebook.live.LiveFigures`), no browser.
    """
    from alignlab import RunConfig, rundir, start
    from alignlab.training import trl_arguments

    config = RunConfig(method=method, model=model, max_steps=steps, batch_size=batch_size, seed=seed, lora=lora,
                       probe_every=probe_every, output_dir=output_dir, method_args=dict(method_args or {}),
                       save_every=0)  # no periodic checkpoints: the bare TRL script saves none either
    latencies: list[float] = []
    started = time.time()
    handle = start(config)
    if subscriber == "notebook-figure":  # the lab's live plotly figure, fed from the training thread
        from alignlab.ui.notebook.live import LiveFigures

        figures = LiveFigures([method])
        figures.follow(handle)
        latencies = figures.latencies
    elif subscriber:  # what a dashboard does at least: receive every event as it is published
        handle.subscribe(lambda event: latencies.append(time.time() - event["time"]), replay=False)
    handle.wait()
    rows, _ = rundir.read_metrics(handle.run_dir)
    train = [r for r in rows
             if r["step"] > 0 and "train_runtime" not in r and not any(k.startswith("probe/") for k in r)]
    probes = [r for r in rows if "probe/seconds" in r]
    args = config.spec.config_class()(**trl_arguments(config, handle.run_dir)).to_dict()
    return {
        "state": handle.state, "error": handle.error, "run_dir": str(handle.run_dir), "threads": _threads(),
        "step_times": _deltas([r["time"] for r in train]),
        "tokens_per_step": _token_steps([r["num_tokens"] for r in train if "num_tokens" in r]),
        "first_event_s": round(rows[0]["time"] - started, 2) if rows else None,
        "first_train_step_s": round(train[0]["time"] - started, 2) if train else None,
        "last_event_s": round(rows[-1]["time"] - started, 2) if rows else None,
        "first_event_is_probe": bool(rows) and "probe/seconds" in rows[0],
        "train_loop_s": round(train[-1]["time"] - min(r["time"] for r in rows), 2) if train else None,
        "probe_seconds": [r["probe/seconds"] for r in probes],
        "subscriber_latency_s": latencies, "wall_s": round(time.time() - started, 2), "trl_args": _plain(args),
    }


def dpo_bare(model_path: str, steps: int, output_dir: str, batch_size: int = 8, seed: int = 42,
             learning_rate: float = 1e-3, beta: float = 0.5, sft_weight: float = 0.5, max_length: int = 112,
             lora_r: int = 16, lora_alpha: int = 32, extra: dict | None = None) -> dict:
    """The same DPO run as a plain TRL script: model, tokenizer, dataset, DPOConfig, DPOTrainer, train().

    ``bf16`` is off as in alignlab's CPU runs (TRL's default turns it on; ``extra`` may turn it back on).
    Settings mirror alignlab's defaults (β 0.5, DPO's loss mixed with the chosen answer's likelihood at weight 0.5),
    with the reference computed in every step (TRL's default; the overhead section runs alignlab that way too, so
    both consume the same pairs in the same order).
    """
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    class StepClock(TrainerCallback):
        def __init__(self):
            self.times, self.tokens = [], []

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.times.append(time.time())
                self.tokens.append(logs.get("num_tokens", 0.0))

    datasets.disable_progress_bars()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    rows = [json.loads(line) for line in PREFS.read_text().splitlines()]
    dataset = datasets.Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])
    args = DPOConfig(output_dir=output_dir, max_steps=steps, learning_rate=learning_rate, lr_scheduler_type="constant",
                     per_device_train_batch_size=batch_size, seed=seed, data_seed=seed, logging_steps=1,
                     save_strategy="no", report_to="none", use_cpu=True, max_length=max_length, beta=beta,
                     gradient_checkpointing=False, disable_tqdm=True, logging_nan_inf_filter=False,
                     loss_type=["sigmoid", "sft"], loss_weights=[1.0, sft_weight], **{"bf16": False, **(extra or {})})
    clock = StepClock()
    started = time.time()
    trainer = DPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=LoraConfig(r=lora_r, lora_alpha=lora_alpha, target_modules="all-linear",
                                                task_type="CAUSAL_LM"),
                         callbacks=[clock])
    try:
        trainer.train()
    except Exception as error:  # noqa: BLE001 - a variant TRL cannot run is a result too
        return {"state": "failed", "error": f"{type(error).__name__}: {error}", "threads": _threads(),
                "step_times": _deltas(clock.times), "tokens_per_step": _token_steps(clock.tokens)}
    return {"state": "finished", "threads": _threads(), "step_times": _deltas(clock.times),
            "tokens_per_step": _token_steps(clock.tokens), "wall_s": round(time.time() - started, 2),
            "trl_args": _plain(args.to_dict())}


def _plain(values: dict) -> dict:
    return {k: (v if isinstance(v, (int, float, str, bool, type(None), list)) else str(v)) for k, v in values.items()}


def model_shape(model: str) -> dict:
    """Multiply-accumulates per token of a causal LM's linear layers, its attention width, and LoRA's extra."""
    import torch

    from alignlab.config import RunConfig
    from alignlab.models import load_model

    net = load_model(model)
    config = net.config
    linear_macs = sum(m.in_features * m.out_features for m in net.modules() if isinstance(m, torch.nn.Linear))
    rank = RunConfig().lora_r  # alignlab's default adapter: this rank on every linear layer but lm_head
    lora_macs = sum(rank * (m.in_features + m.out_features) for name, m in net.named_modules()
                    if isinstance(m, torch.nn.Linear) and name != "lm_head")
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return {"linear_macs_per_token": linear_macs, "lora_macs_per_token": lora_macs,
            "layers": config.num_hidden_layers, "attention_width": config.num_attention_heads * head_dim,
            "parameters": sum(p.numel() for p in net.parameters())}


def matmul_peak(seconds: float = 2.0, tokens: int = 800, hidden: int = 576, ffn: int = 1536) -> dict:
    """Best fp32 matmul FLOP/s on this process's threads: square sizes, and one shaped like the model's MLP."""
    import torch

    def rate(a, b) -> float:
        for _ in range(3):
            a @ b
        n, begin = 0, time.perf_counter()
        while time.perf_counter() - begin < seconds:
            a @ b
            n += 1
        return 2 * a.shape[0] * a.shape[1] * b.shape[1] * n / (time.perf_counter() - begin)

    torch.manual_seed(0)
    square = {n: rate(torch.randn(n, n), torch.randn(n, n)) for n in (512, 1024, 2048)}
    shaped = rate(torch.randn(tokens, hidden), torch.randn(hidden, ffn))
    return {"threads": _threads(), "square_flops": {str(k): v for k, v in square.items()},
            "peak_flops": max(square.values()), "model_shaped_flops": shaped}


def chat_speed(run_dir: str, tokens: int = 48, reps: int = 3) -> dict:
    """Tokens/s of the side-by-side pair vs two plain ``generate`` calls on the same LoRA model.

    The pair is timed both ways: one mixed-adapter batched forward per token pair (the default) and
    one forward per side with the adapter switched off for the reference (``mixed_batch=False``).
    """
    import torch

    from alignlab.chat import ChatPair
    from alignlab.generation import SamplingSettings

    pair = ChatPair.from_run(run_dir)
    model, tokenizer = pair.model, pair.tokenizer
    settings = SamplingSettings(max_new_tokens=tokens, seed=0)
    ids = tokenizer(CHAT_MESSAGE, return_tensors="pt", add_special_tokens=False)["input_ids"]

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def plain() -> tuple[int, float]:
        begin, made = time.perf_counter(), 0
        with torch.no_grad():
            for use_adapter in (False, True):
                torch.manual_seed(0)
                if use_adapter:
                    out = model.generate(ids, do_sample=True, max_new_tokens=tokens, top_p=1.0, temperature=1.0)
                else:
                    with model.disable_adapter():
                        out = model.generate(ids, do_sample=True, max_new_tokens=tokens, top_p=1.0, temperature=1.0)
                made += count(tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True))
        return made, time.perf_counter() - begin

    def paired(mixed_batch: bool) -> tuple[int, float]:
        pair.mixed_batch = mixed_batch
        begin = time.perf_counter()
        reply = pair.generate_pair(CHAT_MESSAGE, settings)
        return count(reply.reference) + count(reply.aligned), time.perf_counter() - begin

    paired(True), paired(False), plain()  # warm up every path
    rounds = []
    for _ in range(reps):
        (pn, pt), (sn, st), (qn, qt) = paired(True), paired(False), plain()
        rounds.append({"pair_tokens_per_s": pn / pt, "per_side_tokens_per_s": sn / st, "plain_tokens_per_s": qn / qt,
                       "pair_tokens": pn, "per_side_tokens": sn, "plain_tokens": qn})
    return {"threads": _threads(), "rounds": rounds, "shares_weights": pair.shares_weights}


def chat_memory(kind: str, run_dir: str, model: str) -> dict:
    """Resident memory of: one model (``one``), the shared-weights pair (``pair``), or two copies (``two_copies``)."""
    from alignlab.chat import ChatPair
    from alignlab.generation import SamplingSettings
    from alignlab.models import load_model, load_tokenizer, load_trained

    settings = SamplingSettings(max_new_tokens=8, seed=0)
    if kind == "one":
        ChatPair(load_model(model), load_tokenizer(model)).generate_pair(CHAT_MESSAGE, settings)
    elif kind == "pair":
        ChatPair.from_run(run_dir).generate_pair(CHAT_MESSAGE, settings)
    else:
        aligned, tokenizer = load_trained(run_dir)
        ChatPair(aligned.merge_and_unload(), tokenizer, base_model_name=model).generate_pair(CHAT_MESSAGE, settings)
    return {"kind": kind}


def padding_utilisation(model: str, batch_size: int = 8, draws: int = 2000) -> dict:
    """Share of real tokens in DPO batches of the built-in pairs (chosen and rejected padded to one length).

    Random batches (what the trainer draws) against batches of pairs sorted by length (the best
    that length bucketing could do).
    """
    import random

    from alignlab.models import load_tokenizer

    tokenizer = load_tokenizer(model)
    rows = [json.loads(line) for line in PREFS.read_text().splitlines()]

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    pairs = [(count(r["prompt"]) + count(r["chosen"]) + 1, count(r["prompt"]) + count(r["rejected"]) + 1) for r in rows]

    def share(batches) -> float:
        real = sum(sum(a + b for a, b in batch) for batch in batches)
        return real / sum(2 * len(batch) * max(max(p) for p in batch) for batch in batches)

    rng = random.Random(0)
    ordered = sorted(pairs, key=max)
    return {"random_batches": share([rng.sample(pairs, batch_size) for _ in range(draws)]),
            "length_sorted_batches": share([ordered[i:i + batch_size] for i in range(0, len(ordered), batch_size)]),
            "mean_tokens_per_sequence": sum(a + b for a, b in pairs) / (2 * len(pairs))}


def sampling_speed(model: str, tokens: int, reps: int) -> dict:
    """Tokens/s of ``generate`` and of alignlab's engine against the machine's bound (:mod:`bench.sampling`)."""
    from bench.sampling import measure

    return measure(model, tokens=tokens, reps=reps)
