"""How often an LLM judge on the default model agrees with the ground-truth reward, by how it is asked.

OAIF (Guo et al. 2024) needs an annotator whose preferences track the reward we care about. On the built-in
task that reward is VADER sentiment, and the judge is the 135M default model. This measures, on preference
pairs whose two answers VADER scores differently, the share of pairs where each formulation prefers the answer
VADER prefers:

- ``yes-no``: ``judge-pairwise``'s pointwise score, P(Yes) to "Is the response <instruction>?" (Zheng et al. 2023),
  compared between the two answers;
- ``pairwise``: ``judge-pairwise`` shown both answers, both orders averaged;
- ``contrast <wish> | <opposite>``: ``judge`` (:meth:`alignlab.judge.Judge.contrast`), the judge's own likelihood
  of each answer under the request plus "Make it <wish>." against plus "Make it <opposite>." (or the request
  alone), per token: a Bayes-rule classifier from the judge's token probabilities (the noisy-channel view, Min
  et al. 2022). Each answer is scored alone, so it has no position bias by construction.

    python -m experiments.judge_agreement --pairs assets/positive-reviews/prefs.jsonl --skip 200 --limit 100
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

CONTRASTS = (("glowing praise", "harsh criticism"), ("glowing praise", ""), ("very positive", "very negative"),
             ("very positive", ""), ("enthusiastic and warm", "cold and dismissive"))


def _text(value) -> str:
    return value[-1]["content"] if isinstance(value, list) else str(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", default="assets/positive-reviews/prefs.jsonl")
    parser.add_argument("--skip", type=int, default=0, help="leave out the first N pairs")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    parser.add_argument("--only-contrast", action="store_true", help="leave out the yes-no and pairwise questions")
    args = parser.parse_args(argv)

    import torch

    from alignlab.rewards import get_reward

    torch.set_num_threads(args.threads)
    rows = [json.loads(line) for line in open(args.pairs)][args.skip:args.skip + args.limit]
    requests = [_text(row["prompt"]) for row in rows]
    first, second = [_text(row["chosen"]) for row in rows], [_text(row["rejected"]) for row in rows]
    vader = get_reward("sentiment")
    truth = [a - b for a, b in zip(vader(requests, first), vader(requests, second))]
    kept = [i for i, gap in enumerate(truth) if gap != 0]
    asked = get_reward(f"judge-pairwise:{args.model}", instruction="a very positive movie review")
    formulations = {} if args.only_contrast else {
        "yes-no": lambda: [a - b for a, b in zip(asked(requests, first), asked(requests, second))],
        "pairwise": lambda: [p - 0.5 for p in asked.prefer(requests, first, second)],
    }
    for wish, opposite in CONTRASTS:
        judge = get_reward(f"judge:{args.model}", instruction=wish, opposite=opposite)
        formulations[f"contrast {wish} | {opposite or '(the request alone)'}"] = (
            lambda judge=judge: [a - b for a, b in zip(judge(requests, first), judge(requests, second))])
    results = {}
    for name, decide in formulations.items():
        started = time.monotonic()
        margins = decide()
        agree = sum((margins[i] > 0) == (truth[i] > 0) for i in kept)
        results[name] = {"agree": agree, "pairs": len(kept), "share": agree / len(kept),
                         "seconds": round(time.monotonic() - started, 1)}
        print(f"{name} agrees with VADER on {agree}/{len(kept)} pairs ({agree / len(kept):.0%}), "
              f"{results[name]['seconds']} s")
    if args.out:
        args.out.write_text(json.dumps({"pairs": args.pairs, "skip": args.skip, "model": args.model,
                                        "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
