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

``--grid`` scores every answer once under each request of ``WISHES`` and ``OPPOSITES`` (the request alone
included), then compares every contrast the judge can be given (one wish against one to three opposites,
averaged as :meth:`alignlab.judge.Judge.contrast` averages them; the request alone only by itself) on the
pairs ``--choose`` names, and reports the one chosen there on the pairs ``--held-out`` names, which took no
part in the choice:

    python -m experiments.judge_agreement --pairs /tmp/prefs-before.jsonl --grid --out docs/judge-agreement.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

CONTRASTS = (("glowing praise", "harsh criticism"), ("glowing praise", ""), ("very positive", "very negative"),
             ("very positive", ""), ("enthusiastic and warm", "cold and dismissive"))


WISHES = ("glowing praise", "very positive", "enthusiastic and warm", "a rave review", "positive")
OPPOSITES = ("", "harsh criticism", "very negative", "cold and dismissive", "a scathing review", "negative")


def _span(text: str) -> range:
    first, last = text.split(":")
    return range(int(first), int(last))


def grid(requests: list[str], first: list[str], second: list[str], truth: list[float], model: str,
         choose: range, held_out: range) -> dict:
    """Every contrast's agreement with ``truth`` on ``choose`` and ``held_out``, and the one ``choose`` picks."""
    from itertools import combinations

    from alignlab.judge import OPPOSITES_SEP, Judge

    judge = Judge(model)
    likelihood = {}
    for wish in dict.fromkeys(WISHES + OPPOSITES):
        started = time.monotonic()
        suffix = f" Make it {wish}." if wish else ""
        likelihood[wish] = (judge._log_likelihoods(requests, first, suffix),
                            judge._log_likelihoods(requests, second, suffix))
        print(f"scored every answer under {wish or '(the request alone)'!r} in {time.monotonic() - started:.0f} s")

    def agreement(wish: str, opposites: tuple, pairs: range) -> int:
        def margin(side: int, i: int) -> float:
            wanted, tokens = likelihood[wish][side][i]
            other = sum(likelihood[o][side][i][0] for o in opposites) / len(opposites)
            return (wanted - other) / max(1, tokens)
        return sum((margin(0, i) - margin(1, i) > 0) == (truth[i] > 0) for i in pairs if truth[i] != 0)

    def counted(pairs: range) -> int:
        return sum(truth[i] != 0 for i in pairs)

    rows = [{"instruction": wish, "opposite": f"{OPPOSITES_SEP} ".join(opposites),
             "choose": agreement(wish, opposites, choose), "held_out": agreement(wish, opposites, held_out)}
            for wish in WISHES for size in (1, 2, 3) for opposites in combinations(OPPOSITES, size)
            if size == 1 or "" not in opposites]  # the request alone is an opposite on its own only
    best = max(rows, key=lambda row: row["choose"])  # the first of the best, in the grid's order
    return {"choose": [choose.start, choose.stop], "held_out": [held_out.start, held_out.stop],
            "choose_pairs": counted(choose), "held_out_pairs": counted(held_out), "chosen": best, "contrasts": rows}


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
    parser.add_argument("--grid", action="store_true", help="choose a contrast on --choose, report it on --held-out")
    parser.add_argument("--choose", type=_span, default=_span("200:300"), help="pairs the grid chooses on (A:B)")
    parser.add_argument("--held-out", type=_span, default=_span("0:200"), help="pairs it reports on (A:B)")
    args = parser.parse_args(argv)

    import torch

    from alignlab.rewards import get_reward

    torch.set_num_threads(args.threads)
    rows = [json.loads(line) for line in open(args.pairs)]
    rows = rows if args.grid else rows[args.skip:args.skip + args.limit]
    requests = [_text(row["prompt"]) for row in rows]
    first, second = [_text(row["chosen"]) for row in rows], [_text(row["rejected"]) for row in rows]
    vader = get_reward("sentiment")
    truth = [a - b for a, b in zip(vader(requests, first), vader(requests, second))]
    if args.grid:
        found = grid(requests, first, second, truth, args.model, args.choose, args.held_out)
        for row in sorted(found["contrasts"], key=lambda row: -row["choose"])[:10]:
            print(f"{row['instruction']!r} against {row['opposite'] or '(the request alone)'!r}: "
                  f"{row['choose']}/{found['choose_pairs']} on the pairs that choose, "
                  f"{row['held_out']}/{found['held_out_pairs']} held out")
        chosen = found["chosen"]
        print(f"chosen: {chosen['instruction']!r} against {chosen['opposite']!r}, agreeing with VADER on "
              f"{chosen['held_out']}/{found['held_out_pairs']} held-out pairs")
        if args.out:
            args.out.write_text(json.dumps({"pairs": args.pairs, "model": args.model, **found}, indent=1) + "\n")
        return
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
