"""``python -m bench.gpu_smoke``: a few bf16 steps of DPO and RLOO on a CUDA GPU, and what users wait for there.

    python -m bench.gpu_smoke                           # the default model, 5 steps each, bf16
    python -m bench.gpu_smoke --steps 10 --out gpu.json

For each of DPO and RLOO it runs one short alignlab run (``--dtype bf16`` by default, through the lab's device
policy, :mod:`alignlab.devices`) and reports seconds per optimizer step (median after the first step), the
peak GPU memory the run allocated, then on the DPO run the evaluation's speed (held-out prompts scored per
second, both models sampling) and the side-by-side chat's speed (tokens per second of the pair). On a machine
without CUDA it says so in one line and exits 0; ``--cpu`` measures there anyway, to check the section itself
runs (those figures are not GPU figures and say so).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.cases import CHAT_MESSAGE

METHODS = ("dpo", "rloo")  # each at the lab's defaults but for --steps and --dtype


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_smoke", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="model name, hub id or local path")
    parser.add_argument("--steps", type=int, default=5, help="optimizer steps per method (at least 2)")
    parser.add_argument("--dtype", default="bf16", choices=("auto", "bf16", "fp16", "fp32"),
                        help="the runs' --dtype (default bf16)")
    parser.add_argument("--batch-size", type=int, default=8, help="examples per step (the lab's default: 8)")
    parser.add_argument("--new-tokens", type=int, default=48,
                        help="max new tokens of the runs' samples, the eval and each side of the timed chat")
    parser.add_argument("--out", default=None, help="also write the figures as JSON to this file")
    parser.add_argument("--work", default=None, help="folder for the runs (default: a temporary one)")
    parser.add_argument("--cpu", action="store_true", help="measure without CUDA too (checks the section runs)")
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error(f"--steps: got {args.steps}, expected at least 2 (the first step is not timed)")
    if args.batch_size < 4 or args.batch_size % 4:
        parser.error(f"--batch-size: got {args.batch_size}, expected a multiple of 4 (RLOO samples 4 per prompt)")
    if args.new_tokens < 1:
        parser.error(f"--new-tokens: got {args.new_tokens}, expected at least 1")
    return args


def _peak_memory_gib(cuda: bool) -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 3) if cuda else None


def train(method: str, args: argparse.Namespace, output_dir: str, cuda: bool) -> dict:
    """One short run of ``method``: its state, seconds per step and peak GPU memory."""
    import torch

    from alignlab import RunConfig, rundir, start

    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    config = RunConfig(method=method, model=args.model, max_steps=args.steps, dtype=args.dtype, probe_every=0,
                       save_every=0, output_dir=output_dir, batch_size=args.batch_size,
                       max_completion_length=args.new_tokens)
    started = time.perf_counter()
    handle = start(config, background=False)
    rows, _ = rundir.read_metrics(handle.run_dir)
    times = [row["time"] for row in rows if row["step"] > 0 and "train_runtime" not in row]
    steps = [later - earlier for earlier, later in zip(times, times[1:])]
    return {"method": method, "state": handle.state, "error": handle.error, "run_dir": str(handle.run_dir),
            "s_per_step": round(statistics.median(steps), 4) if steps else None, "steps_timed": len(steps),
            "peak_memory_gib": _peak_memory_gib(cuda), "wall_s": round(time.perf_counter() - started, 2)}


def eval_speed(run_dir: str, tokens: int) -> dict:
    """Held-out prompts per second of ``alignlab eval`` (one sample per prompt from each model, with fluency)."""
    from alignlab.evaluate import compare_run

    started = time.perf_counter()
    result = compare_run(run_dir, samples_per_prompt=1, max_new_tokens=tokens)
    seconds = time.perf_counter() - started
    return {"prompts": result.prompts, "seconds": round(seconds, 2),
            "prompts_per_s": round(result.prompts / seconds, 3), "gain": result.gain}


def chat_speed(run_dir: str, tokens: int) -> dict:
    """Tokens per second of the side-by-side chat (both columns), after one warm-up exchange."""
    from alignlab.chat import ChatPair
    from alignlab.generation import SamplingSettings

    pair = ChatPair.from_run(run_dir)
    settings = SamplingSettings(max_new_tokens=tokens, seed=0)
    pair.generate_pair(CHAT_MESSAGE, settings)
    started = time.perf_counter()
    reply = pair.generate_pair(CHAT_MESSAGE, settings)
    seconds = time.perf_counter() - started
    made = sum(len(pair.tokenizer(text, add_special_tokens=False)["input_ids"])
               for text in (reply.reference, reply.aligned))
    return {"tokens": made, "seconds": round(seconds, 3), "tokens_per_s": round(made / seconds, 1)}


def measure(args: argparse.Namespace, cuda: bool) -> dict:
    """Every figure of the section, in one dict."""
    import torch

    from alignlab.devices import DeviceFacts

    facts = DeviceFacts.detect()
    work = args.work or tempfile.mkdtemp(prefix="gpu-smoke-")
    runs = {method: train(method, args, str(Path(work) / "runs"), cuda) for method in METHODS}
    figures = {"device": facts.name, "work": work, "gpu": cuda, "dtype": args.dtype, "model": args.model,
               "steps": args.steps, "torch": torch.__version__, "runs": runs}
    if runs["dpo"]["state"] == "finished":
        figures["eval"] = eval_speed(runs["dpo"]["run_dir"], args.new_tokens)
        figures["chat"] = chat_speed(runs["dpo"]["run_dir"], args.new_tokens)
    return figures


def table(figures: dict) -> str:
    """The figures as a few readable lines."""
    lines = [f"GPU smoke on {figures['device']} ({figures['dtype']}, {figures['model']}, {figures['steps']} steps; "
             f"runs in {figures['work']})"
             + ("" if figures["gpu"] else " - NOT A GPU: these are CPU figures")]
    for run in figures["runs"].values():
        memory = "n/a" if run["peak_memory_gib"] is None else f"{run['peak_memory_gib']} GiB"
        lines.append(f"  {run['method']:5} {run['state']:9} {run['s_per_step']} s/step, peak memory {memory}"
                     + (f" ({run['error']})" if run["error"] else ""))
    if "eval" in figures:
        lines.append(f"  eval  {figures['eval']['prompts']} prompts in {figures['eval']['seconds']} s "
                     f"({figures['eval']['prompts_per_s']} prompts/s)")
        lines.append(f"  chat  {figures['chat']['tokens_per_s']} tokens/s (both columns)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the section; 0 when every run finished (or there is no GPU to measure), 1 otherwise."""
    import torch

    args = parse_args(argv)
    cuda = torch.cuda.is_available()
    if not cuda and not args.cpu:
        print("gpu_smoke: no CUDA GPU on this machine, nothing measured (--cpu measures on the CPU anyway)")
        return 0
    figures = measure(args, cuda)
    print(table(figures))
    if args.out:
        Path(args.out).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0 if all(run["state"] == "finished" for run in figures["runs"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
