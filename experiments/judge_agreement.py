"""How often an LLM judge on the default model agrees with the ground-truth reward, by how it is asked.

OAIF (Guo et al. 2024) needs an annotator whose preferences track the reward we care about. On the built-in
task that reward is VADER sentiment, and the judge is the 135M default model. This measures, on preference
pairs whose two answers VADER scores differently, the share of pairs where each formulation prefers the answer
VADER prefers:

- ``yes-no``: alignlab's pointwise judge (:class:`alignlab.rewards.Judge`), P(Yes) to "Is the response
  <instruction>?" (Zheng et al. 2023), compared between the two answers;
- ``pairwise``: the same judge shown both answers, both orders averaged (what online DPO uses today);
- ``contrast``: the judge's own likelihood of the answer under two requests, the task's prompt plus "Make it
  <wanted>." against plus "Make it <opposite>.", as a per-token mean log-ratio: a Bayes-rule classifier from
  the judge's token probabilities (the noisy-channel view, Min et al. 2022). Each answer is scored alone, so
  it has no position bias by construction.

    python -m experiments.judge_agreement --pairs assets/positive-reviews/prefs.jsonl --skip 200 --limit 100
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

WANTED, OPPOSITE = "glowing praise", "harsh criticism"


def _text(value) -> str:
    return value[-1]["content"] if isinstance(value, list) else str(value)


def contrast_scores(model, tokenizer, requests: list[str], answers: list[str]) -> list[float]:
    """Per answer: mean over its tokens of log P(token | request + wanted) - log P(token | request + opposite)."""
    import torch

    scores = []
    for request, answer in zip(requests, answers):
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
        sides = []
        for wish in (WANTED, OPPOSITE):
            context = tokenizer.apply_chat_template([{"role": "user", "content": f"{request} Make it {wish}."}],
                                                    tokenize=False, add_generation_prompt=True)
            context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logits = model(torch.tensor([context_ids + answer_ids])).logits[0, len(context_ids) - 1:-1]
            log_probs = logits.float().log_softmax(-1).gather(1, torch.tensor(answer_ids)[:, None])
            sides.append(log_probs.sum().item())
        scores.append((sides[0] - sides[1]) / max(1, len(answer_ids)))
    return scores


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default="assets/positive-reviews/prefs.jsonl")
    parser.add_argument("--skip", type=int, default=0, help="leave out the first N pairs")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)

    import torch

    from alignlab.models import load_model, load_tokenizer
    from alignlab.rewards import get_reward

    torch.set_num_threads(args.threads)
    rows = [json.loads(line) for line in open(args.pairs)][args.skip:args.skip + args.limit]
    requests = [_text(row["prompt"]) for row in rows]
    first, second = [_text(row["chosen"]) for row in rows], [_text(row["rejected"]) for row in rows]
    vader = get_reward("sentiment")
    truth = [a - b for a, b in zip(vader(requests, first), vader(requests, second))]
    kept = [i for i, gap in enumerate(truth) if gap != 0]
    judge = get_reward(f"judge:{args.model}", instruction="a very positive movie review")
    model, tokenizer = load_model(args.model).eval(), load_tokenizer(args.model)
    results = {}
    for name, decide in {
        "yes-no": lambda: [a - b for a, b in zip(judge(requests, first), judge(requests, second))],
        "pairwise": lambda: [p - 0.5 for p in judge.prefer(requests, first, second)],
        "contrast": lambda: [a - b for a, b in zip(contrast_scores(model, tokenizer, requests, first),
                                                   contrast_scores(model, tokenizer, requests, second))],
    }.items():
        started = time.monotonic()
        margins = decide()
        agree = sum((margins[i] > 0) == (truth[i] > 0) for i in kept)
        results[name] = {"agree": agree, "pairs": len(kept), "share": agree / len(kept),
                         "seconds": round(time.monotonic() - started, 1)}
        print(f"{name:9s} agrees with VADER on {agree}/{len(kept)} pairs ({agree / len(kept):.0%}), "
              f"{results[name]['seconds']} s")
    if args.out:
        args.out.write_text(json.dumps({"pairs": args.pairs, "skip": args.skip, "model": args.model,
                                        "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
