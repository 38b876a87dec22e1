"""Scoring the completions of an online step: TRL's full pass against one pass per prompt (alignlab.shared_prompt).

    python -m bench.scoring                         # default model, the built-in task's lengths, 1 thread
    python -m bench.scoring --threads 2 --reps 5
    python -m bench.scoring --model tiny-random --reps 1   # checks the bench runs

The rows are what an RLOO or GRPO step at the defaults scores: ``--prompts`` training prompts of the built-in task
in its chat format, ``--k`` completions of each (random tokens, ``--completion`` of them, a few rows ended early),
on the model with a LoRA adapter whose weights are not zero, patched with TRL's fused head as TRL's trainers patch
it. Both ways are timed in the same process, alternately: a scoring pass without gradients (the policy before the
update, the reference) and a training pass (forward and backward). Printed: the median seconds of each, their ratio,
and how far apart the two ways' log-probs, entropies and gradients are.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def rows(tokenizer, prompts: int, k: int, completion: int, vocab: int, seed: int = 0):
    """``(input_ids, attention_mask)``: each of the first ``prompts`` training prompts of the built-in task
    (chat-rendered, left-padded) k times in a
    row, then ``completion`` random tokens, right-padded so that every k-th row ends at half length."""
    import torch

    from alignlab.generation import render_prompt
    from alignlab.task import task_prompts

    texts = [render_prompt(tokenizer, prompt) for prompt in task_prompts()[:prompts]]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    generator = torch.Generator().manual_seed(seed)
    completions = torch.randint(5, vocab, (prompts * k, completion), generator=generator)
    ids = torch.cat([batch["input_ids"].repeat_interleave(k, 0), completions], 1)
    mask = torch.cat([batch["attention_mask"].repeat_interleave(k, 0), torch.ones_like(completions)], 1)
    mask[::k, -(completion // 2):] = 0
    return ids, mask


def policy(model_name: str):
    """The model in float32 with TRL's fused head (log-probs and entropies) and a LoRA adapter (r 16, all linear
    layers, weights not zero, so the adapter changes the numbers)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from trl.trainer.utils import add_fused_lm_head

    from alignlab.models import load_model

    torch.manual_seed(0)
    model = load_model(model_name)
    add_fused_lm_head(model, temperature=1.0, outputs=("log_probs", "entropy"))
    return get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                            init_lora_weights=False))


def full_pass(model, ids, mask, completion: int):
    """What TRL's RLOO and GRPO compute: every row whole, the completion's tokens labelled."""
    labels = ids.masked_fill(mask == 0, -100)
    labels[:, :-completion] = -100
    out = model(input_ids=ids, attention_mask=mask, labels=labels, fused_lm_head=True)
    return out.log_probs[:, -completion:], out.entropy[:, -completion:]


def measure(model_name: str, prompts: int, k: int, completion: int, reps: int) -> dict:
    """Both ways timed alternately ``reps`` times each (after one untimed call each), and their differences."""
    import torch

    from alignlab.models import load_tokenizer
    from alignlab.shared_prompt import grouped_logps

    model, tokenizer = policy(model_name), load_tokenizer(model_name)
    ids, mask = rows(tokenizer, prompts, k, completion, model.config.vocab_size)
    scored = mask[:, -completion:]
    ways = {"full pass": lambda: full_pass(model, ids, mask, completion),
            "one pass per prompt": lambda: grouped_logps(model, ids, mask, completion, True)}
    results = {name: {"scoring_s": [], "training_s": []} for name in ways}
    outputs = {}
    for rep in range(reps + 1):
        for name, score in ways.items():
            begin = time.perf_counter()
            with torch.no_grad():
                score()
            scoring = time.perf_counter() - begin
            model.zero_grad()
            begin = time.perf_counter()
            logps, entropies = score()
            ((logps * scored).sum() + 0.1 * (entropies * scored).sum()).backward()
            training = time.perf_counter() - begin
            if rep:  # the first of each is a warm-up
                results[name]["scoring_s"].append(scoring)
                results[name]["training_s"].append(training)
            else:
                outputs[name] = (logps.detach(), entropies.detach(), {n: p.grad.clone() for n, p in
                                                                      model.named_parameters() if p.requires_grad})
    (full_logps, full_entropy, full_grads), (logps, entropy, grads) = outputs.values()
    kept = scored.bool()
    medians = {name: {key: statistics.median(values) for key, values in times.items()}
               for name, times in results.items()}
    full, shared = medians.values()
    return {"model": model_name, "rows": len(ids), "prompt_tokens": ids.shape[1] - completion, "k": k,
            "completion_tokens": completion, "threads": torch.get_num_threads(), "reps": reps, "median_s": medians,
            "scoring_speedup": full["scoring_s"] / shared["scoring_s"],
            "training_speedup": full["training_s"] / shared["training_s"],
            "max_logprob_difference": (full_logps - logps)[kept].abs().max().item(),
            "max_entropy_difference": (full_entropy - entropy)[kept].abs().max().item(),
            "max_gradient_difference_relative": max(((full_grads[n] - grads[n]).abs().max()
                                                     / full_grads[n].abs().max()).item() for n in full_grads)}


def report(result: dict) -> str:
    """The measurement as Markdown."""
    lines = [f"{result['model']}: {result['rows']} rows ({result['rows'] // result['k']} prompts x k {result['k']}), "
             f"prompt {result['prompt_tokens']} tokens, completion {result['completion_tokens']}, "
             f"{result['threads']} thread(s), median of {result['reps']}", "",
             "| way | scoring pass, no gradients (s) | training pass, forward + backward (s) |", "|---|---:|---:|"]
    for name, medians in result["median_s"].items():
        lines.append(f"| {name} | {medians['scoring_s']:.3f} | {medians['training_s']:.3f} |")
    lines += ["", f"one pass per prompt: {result['scoring_speedup']:.2f}x faster scoring, "
              f"{result['training_speedup']:.2f}x faster training pass",
              f"largest difference: log-prob {result['max_logprob_difference']:.2e}, entropy "
              f"{result['max_entropy_difference']:.2e}, gradient {result['max_gradient_difference_relative']:.2e} "
              "of the largest"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import torch

    parser = argparse.ArgumentParser(prog="python -m bench.scoring", description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=2, help="distinct prompts (RLOO's and GRPO's default: 2)")
    parser.add_argument("--k", type=int, default=4, help="completions per prompt (num_generations)")
    parser.add_argument("--completion", type=int, default=45, help="completion tokens (the defaults' mean)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the figures here as JSON")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = measure(args.model, args.prompts, args.k, args.completion, args.reps)
    print(report(result))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
