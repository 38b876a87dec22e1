"""The metric explainer: what a DPO-family run's curves mean, said with the run's own numbers.

The questions learners ask most of a preference run are about its implicit rewards: what ``rewards/chosen`` is,
why it is negative or falling, what the margin and the accuracy count, and why the loss sits at 0.693. Both UIs
show these answers beside the panels (:func:`explain`, as markdown through :func:`markdown`), computed from the
run's metric rows (:func:`alignlab.rundir.read_metrics`' rows, or a live run's), so the numbers in the words are
the ones on the curves.

Covered: DPO and its loss variants (sigmoid, IPO, hinge, ...), KTO, SimPO (and CPO) and ORPO: the runs that log
TRL's ``rewards/chosen``, ``rewards/rejected`` and ``rewards/margins``. Pure text from rows; no UI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CHOSEN, REJECTED, MARGIN, ACCURACY = "rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"
LOGPS_CHOSEN = "logps/chosen"
LN2 = math.log(2)
STUCK = 0.005  # a loss within this of its zero-margin value has not moved
RECENT = 5  # the accuracy is read over the last this many logged steps (one batch each is noisy)

# What a method's rewards/chosen is, in words; ``{beta}`` is the run's β.
REWARDS = {
    "dpo": "β·log(π/π_ref) of the answer: how many nats more (positive) or less (negative) likely the policy makes "
           "it than the frozen reference does, times β = {beta}. It is 0 for every answer at the start (the policy "
           "is the reference)",
    "kto": "β·log(π/π_ref) of the answer, as in DPO (β = {beta}); KTO sees answers one at a time, labelled "
           "desirable (chosen) or undesirable (rejected), and compares each with a running estimate of the KL "
           "rather than with its pair",
    "simpo": "β × the answer's average log-probability per token (β = {beta}). SimPO keeps no reference, so it is "
             "negative from the start and only differences mean anything",
    "orpo": "λ × the answer's average log-probability per token (λ = TRL's β = {beta}). ORPO keeps no reference, so "
            "it is negative from the start and only differences mean anything",
}
REFERENCE_FREE = {"simpo", "orpo"}


@dataclass(frozen=True)
class Point:
    """One explanation: a short title and its text."""

    title: str
    text: str


def _rows_with(rows: list[dict], *keys: str) -> list[dict]:
    return [row for row in rows if all(row.get(key) is not None for key in keys)]


def start_loss(method: str, method_args: dict) -> tuple[float, str] | None:
    """The loss of a batch whose margin is 0 (where a run starts, its policy being the reference) and how that
    value comes about, for the losses whose value there is known; None for the others.

    >>> start_loss("dpo", {"loss_type": "sigmoid", "beta": 0.1})[0] == math.log(2)
    True
    >>> start_loss("dpo", {"loss_type": "ipo", "beta": 0.1})
    (25.0, 'IPO pulls the per-token log-ratio margin towards 1/(2β) = 5 with a squared loss: (0 − 5)² = 25')
    """
    beta = float(method_args.get("beta", 0.1))
    loss_type = method_args.get("loss_type", "sigmoid")
    if method == "dpo" and float(method_args.get("sft_weight", 0) or 0) > 0:
        return None  # the chosen answer's likelihood term is added: the start depends on the answers (_mixed_loss)
    if method == "dpo" and loss_type == "sigmoid":
        return LN2, "−log σ(0) = ln 2 ≈ 0.693: the loss of a coin flip between chosen and rejected"
    if method == "dpo" and loss_type == "ipo":
        target = 1 / (2 * beta)
        return target ** 2, (f"IPO pulls the per-token log-ratio margin towards 1/(2β) = {target:g} with a squared "
                             f"loss: (0 − {target:g})² = {target ** 2:g}")
    if method == "dpo" and loss_type == "hinge":
        return 1.0, "the hinge max(0, 1 − β·margin) is 1 at margin 0"
    if method == "simpo" and loss_type == "simpo":
        gamma = float(method_args.get("simpo_gamma", 1.0))
        return math.log1p(math.exp(gamma)), (f"−log σ(−γ) = {math.log1p(math.exp(gamma)):.3f} with γ = {gamma:g}: "
                                             "SimPO asks for a margin of γ, so a margin of 0 is already a loss above "
                                             "ln 2")
    if method == "kto":
        return 0.5, "1 − σ(0) = 0.5 per answer at the start (rewards and KL estimate both 0)"
    return None


def _rewards(method: str, method_args: dict, first: dict, last: dict) -> Point:
    words = REWARDS[method].format(beta=f"{float(method_args.get('beta', 0.1)):g}")
    return Point("Chosen and rejected rewards", (
        f"The implicit reward is {words}. This run, step {last['step']}: chosen {last[CHOSEN]:+.3f}, rejected "
        f"{last[REJECTED]:+.3f} (step {first['step']}: {first[CHOSEN]:+.3f} and {first[REJECTED]:+.3f})."))


def _margin(first: dict, last: dict) -> Point:
    moved = last[MARGIN] - first[MARGIN]
    trend = "grown" if moved > 0 else "shrunk" if moved < 0 else "not moved"
    return Point("Margin", (
        f"Chosen minus rejected reward, averaged over the batch: {last[MARGIN]:+.3f} at step {last['step']}, "
        f"{trend} from {first[MARGIN]:+.3f} at step {first['step']}. It is what the loss pushes up; a rising margin "
        "is the run learning the preference."))


def _accuracy(rows: list[dict]) -> Point | None:
    logged = _rows_with(rows, ACCURACY)
    if not logged:
        return None
    last = logged[-1]
    recent = logged[-RECENT:]
    mean = sum(row[ACCURACY] for row in recent) / len(recent)
    return Point("Accuracy", (
        f"The share of the batch's pairs whose chosen reward beats the rejected one: {last[ACCURACY]:.0%} at step "
        f"{last['step']}, {mean:.0%} over the last {len(recent)} logged step{'s' if len(recent) > 1 else ''}. A tie "
        "counts as wrong, so it reads 0% at the start, not 50%; one batch holds few pairs, so it jumps in big steps. "
        "It says the order is right, not by how much: the margin says that."))


def _mixed_loss(method_args: dict, rows: list[dict]) -> Point | None:
    """A DPO loss with the chosen answer's likelihood term (``sft_weight`` α > 0, RPO): why it does not start at
    ln 2."""
    logged = _rows_with(rows, "loss")
    if not logged:
        return None
    alpha, first, last = float(method_args["sft_weight"]), logged[0], logged[-1]
    return Point("Loss: DPO plus the chosen answer's likelihood",
                 f"The loss adds α = {alpha:g} × the chosen answer's negative log-likelihood per token to DPO's "
                 f"−log σ(β·margin), which is ln 2 ≈ 0.693 at margin 0. So it does not start at 0.693: this run's "
                 f"was {first['loss']:.4f} at step {first['step']} and {last['loss']:.4f} at step {last['step']}. "
                 "The likelihood term keeps the chosen answers likely (their opening and wording included) while the "
                 "margin and the accuracy show the preference being learned.")


def _loss(method: str, method_args: dict, rows: list[dict]) -> Point | None:
    """What the loss's starting value is and whether this run has left it ("stuck at 0.693")."""
    if method == "dpo" and float(method_args.get("sft_weight", 0) or 0) > 0:
        return _mixed_loss(method_args, rows)
    known = start_loss(method, method_args)
    logged = _rows_with(rows, "loss")
    if known is None or not logged:
        return None
    value, why = known
    last = logged[-1]
    stuck = abs(last["loss"] - value) <= STUCK * max(1.0, value)
    margin = f" (margin {last[MARGIN]:+.3f})" if last.get(MARGIN) is not None else ""
    if stuck:
        state = (f"This run is still there at step {last['step']}: loss {last['loss']:.4f}{margin}. The policy has "
                 "not yet separated chosen from rejected: the learning rate may be too low, β too small (the margin "
                 "is scaled by β), the steps too few, or chosen and rejected too alike to tell apart.")
    elif last["loss"] < value:
        state = f"This run has left it: loss {last['loss']:.4f} at step {last['step']}{margin}."
    else:
        state = (f"This run's loss is above it: {last['loss']:.4f} at step {last['step']}{margin}: the batch holds "
                 "pairs it ranks the wrong way, and those cost more than the right ones earn.")
    sigmoid = method == "dpo" and method_args.get("loss_type", "sigmoid") == "sigmoid"
    if sigmoid and last.get(MARGIN) is not None and not stuck:
        coin = -math.log(1 / (1 + math.exp(-last[MARGIN])))
        state += (f" A batch whose every pair had the mean margin would cost −log σ({last[MARGIN]:+.3f}) = "
                  f"{coin:.3f}; the pairs' margins spread, and −log σ is convex, so the batch's loss is higher.")
    title = "Loss at 0.693 (ln 2)" if sigmoid else f"Loss at {value:.3g}"
    return Point(title, f"At margin 0 the loss is {why}. {state}")


def _chosen_falls(method: str, first: dict, last: dict) -> Point:
    """Why the chosen reward may fall while the margin grows, with whether this run does it."""
    fell, grew = last[CHOSEN] < first[CHOSEN], last[MARGIN] > first[MARGIN]
    if method in REFERENCE_FREE:
        why = ("the loss sees only the difference, so it is met as well by making the rejected answer much less "
               "likely as by making the chosen one more likely; probability moves to text that is neither")
    else:
        why = ("the loss sees only the margin, so pushing the rejected answer down faster than the chosen one meets "
               "it as well as raising the chosen; both usually lose probability to text that is in neither (often "
               "shorter or more stock), which is drift from the reference: watch the drift panel")
    if fell and grew:
        seen = (f"This run does it: chosen {first[CHOSEN]:+.3f} → {last[CHOSEN]:+.3f} while the margin grew "
                f"{first[MARGIN]:+.3f} → {last[MARGIN]:+.3f} (step {first['step']} → {last['step']}).")
    else:
        direction = "fell" if fell else "rose" if last[CHOSEN] > first[CHOSEN] else "held"
        seen = (f"Here the chosen reward {direction} ({first[CHOSEN]:+.3f} → {last[CHOSEN]:+.3f}) and the margin "
                f"{'grew' if grew else 'did not grow'} ({first[MARGIN]:+.3f} → {last[MARGIN]:+.3f}).")
    worry = ""
    if last.get(LOGPS_CHOSEN) is not None and first.get(LOGPS_CHOSEN) is not None:
        worry = (f" Worry only if the chosen answer's own log-probability collapses (here "
                 f"{first[LOGPS_CHOSEN]:.1f} → {last[LOGPS_CHOSEN]:.1f} nats).")
    return Point("Chosen reward falls while the margin grows", f"That is normal: {why}. {seen}{worry}")


def explain(method: str, method_args: dict, rows: list[dict]) -> list[Point] | None:
    """The explanations of a DPO-family run's metrics from its ``rows`` (``method_args``: its knobs, for β and the
    loss type): rewards, margin, accuracy, the loss's starting value (0.693 for DPO) and why the chosen reward may
    fall while the margin grows, each with the run's numbers. None for another method, or before the run has
    logged its rewards."""
    if method not in REWARDS:
        return None
    logged = _rows_with(rows, CHOSEN, REJECTED, MARGIN)
    if not logged:
        return None
    first, last = logged[0], logged[-1]
    points = [_rewards(method, method_args, first, last), _margin(first, last), _accuracy(rows),
              _loss(method, method_args, rows), _chosen_falls(method, first, last)]
    return [point for point in points if point is not None]


def markdown(points: list[Point] | None) -> str:
    """The explanations as markdown: one bold title and its text a paragraph ("" for none).

    >>> markdown([Point("Margin", "Chosen minus rejected.")])
    '**Margin.** Chosen minus rejected.'
    """
    return "\n\n".join(f"**{point.title}.** {point.text}" for point in points or ())
