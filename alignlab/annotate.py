"""An AI annotator that votes the way people do, into the same votes file: OAIF's annotator, offline.

Guo et al. 2024 ("Direct Language Model Alignment from Online AI Feedback", arXiv:2402.04792) let an LLM
annotator pick the better of two responses to a prompt. An LLM judge tends to prefer whichever response it is
shown first (position bias), so it is asked with the responses in both orders, as RLAIF's labeller is (Lee et al.
2023, arXiv:2309.00267). Here the annotator votes on what people vote on in the chats (:mod:`alignlab.votes`):
for each held-out prompt of a run, the run's aligned model and its reference answer with the same sampling settings
and the same seed (:meth:`alignlab.chat.ChatPair.generate_pair`, the chat's own path), and a reward source decides
which answer is better:

- a **pairwise** source (the LLM judge, ``judge[:<model>]``) is asked twice, once with the aligned answer shown
  as A and once with the reference's shown as A. The vote is decisive only when both orders pick the same
  answer; when they disagree, the order decided, not the answers, and the vote is a tie (the swap rule of
  MT-Bench's pairwise judge, Zheng et al. 2023, arXiv:2306.05685). Ties are left out of training, so only
  order-consistent preferences train. The vote records both answers, their mean P(aligned better) and whether the
  two orders agreed;
- a **pointwise** source (``sentiment``, ``length``, ``reward-model:<run>``) scores each answer alone, so the
  order cannot matter: it is judged once, and the vote says so (:data:`POINTWISE_NOTE`).

Each vote is a row of the votes file exactly as a person's (:meth:`alignlab.votes.Round.record`, appended with
:func:`alignlab.votes.append_vote`), with the voter named ``ai:<reward source>`` and the annotator's record under
``annotator`` (:func:`alignlab.votes.is_ai_vote`). So ``--dataset votes:<run>`` trains on people's and AI votes
alike, and ``alignlab votes RUN`` shows each apart and how often they agree.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from alignlab.config import config_of
from alignlab.errors import AlignLabError
from alignlab.generation import SamplingSettings, prompt_text
from alignlab.held_out import held_out_of_run
from alignlab.rewards import RewardSource, get_reward
from alignlab.rundir import find, has_model, votes_path
from alignlab.votes import AI_VOTER_PREFIX, Round, Tally, append_vote, tally

POINTWISE_NOTE = "pointwise: each answer is scored alone, so the order they are shown in cannot matter; judged once"


@dataclass
class Judgement:
    """The annotator's verdict on one pair: ``outcome`` (aligned, reference or tie) and its ``record`` (the vote's
    ``annotator`` field: source, kind, and for a pairwise source both orders' answers)."""

    outcome: str
    record: dict


def _probability(value: float, source: str) -> float:
    value = float(value)
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise AlignLabError(f"reward: pairwise source {source!r} returned {value}, expected a probability in [0, 1]")
    return value


def _winner(p_aligned: float) -> str:
    return "aligned" if p_aligned > 0.5 else "reference" if p_aligned < 0.5 else "tie"


def judge_pair(source: RewardSource, prompt: str, reference: str, aligned: str,
               scores: Sequence[float] | None = None) -> Judgement:
    """Let ``source`` decide between the ``reference`` and the ``aligned`` answer to ``prompt``.

    A pairwise source (one with ``prefer``) answers in both orders (OAIF, Guo et al. 2024): with the aligned
    answer first, then with the reference's first; ``prefer_once`` asks one order as shown, a source with only
    ``prefer`` is asked both orders all the same. The outcome is the answer both orders chose, or a tie when they
    disagree (position bias decided; Zheng et al. 2023) or either is undecided (P = 0.5). A pointwise source
    compares its two scores (``scores``: (reference, aligned) when already computed); equal scores are a tie.
    """
    ask = getattr(source, "prefer_once", None) or source.prefer
    if ask is not None:
        aligned_first = _probability(ask([prompt], [aligned], [reference])[0], source.name)
        reference_first = _probability(ask([prompt], [reference], [aligned])[0], source.name)
        p_aligned = (aligned_first + 1.0 - reference_first) / 2
        winners = _winner(aligned_first), _winner(1.0 - reference_first)
        return Judgement(winners[0] if winners[0] == winners[1] else "tie", {
            "source": source.name, "kind": "pairwise",
            "orders": [{"first": "aligned", "p_first_better": aligned_first},
                       {"first": "reference", "p_first_better": reference_first}],
            "p_aligned": p_aligned,
            "orders_agree": winners[0] == winners[1]})
    reference_score, aligned_score = scores if scores is not None else source([prompt, prompt], [reference, aligned])
    outcome = "aligned" if aligned_score > reference_score else "reference" if aligned_score < reference_score \
        else "tie"
    return Judgement(outcome, {"source": source.name, "kind": "pointwise",
                               "scores": {"reference": reference_score, "aligned": aligned_score},
                               "orders": [], "order_note": POINTWISE_NOTE})


@dataclass
class Annotation:
    """What :func:`annotate_run` wrote: the run, the voter, the votes file and the votes appended to it."""

    run_id: str
    voter: str
    path: Path
    prompts_available: int
    votes: list[dict] = field(default_factory=list)

    @property
    def tally(self) -> Tally:
        return tally(self.votes)

    @property
    def orders_agreeing(self) -> tuple[int, int]:
        """(pairs whose two orders picked the same winner, pairs judged in both orders); the others are ties."""
        both = [vote["annotator"] for vote in self.votes if vote["annotator"]["kind"] == "pairwise"]
        return sum(record["orders_agree"] for record in both), len(both)


def pick_prompts(prompts: list, count: int, seed: int) -> list:
    """``count`` of ``prompts`` drawn with ``seed``, in their order (all of them for 0 or more than there are)."""
    if count < 0:
        raise AlignLabError(f"prompts: got {count}, expected an integer >= 0 (0 = every held-out prompt)")
    if not count or count >= len(prompts):
        return list(prompts)
    return [prompts[index] for index in sorted(random.Random(seed).sample(range(len(prompts)), count))]


def annotate_run(run: str | Path, reward: str | None = None, prompts: int = 0, seed: int = 0,
                 runs_dir: str | Path | None = None, settings: SamplingSettings | None = None,
                 progress: Callable[[int, int], None] | None = None, dtype: str = "auto") -> Annotation:
    """Vote on ``prompts`` held-out prompts (0: all) of ``run`` (a run id in ``runs_dir``, the lab's runs folder when
    None, or a run directory) with the reward source ``reward`` (default: the run's own), appending each vote to the
    run's votes file as it is cast.

    Both models answer every prompt with ``settings`` (the chat's defaults, seeded ``seed``); ``seed`` also draws
    the prompts. ``progress(done, total)`` is called once the models are loaded, then after each prompt. The run's
    model is loaded in the precision ``dtype`` asks of the device policy (:func:`alignlab.devices.placement`).
    AlignLabError before anything is sampled for a run that is not there, has no saved model or trains a scorer,
    and for a bad reward name or count.
    """
    from alignlab.chat import ChatPair

    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise AlignLabError(f"seed: got {seed!r}, expected an integer >= 0")
    run_dir = find(run, runs_dir)
    config = config_of(run_dir)
    if config.spec.model_kind != "causal-lm":
        raise AlignLabError(f"run: {run_dir.name} was trained with method {config.method!r}, which trains a scorer; "
                            "expected a run whose model writes answers")
    if not has_model(run_dir):
        raise AlignLabError(f"run: {run_dir.name} has no saved model yet (still training, or it failed); "
                            "annotate a finished or stopped run")
    available = held_out_of_run(run_dir, config).prompts
    chosen = pick_prompts(available, prompts, seed)
    source = get_reward(reward or config.reward, instruction=config.judge_instruction, runs_dir=run_dir.parent,
                        opposite=config.judge_opposite)
    settings = settings or SamplingSettings(seed=seed)
    path = votes_path(run_dir.parent, run_dir.name)
    pair = ChatPair.from_run(run_dir, reward=source, dtype=dtype)
    orders = random.Random(seed)  # each vote's A/B order, kept in it as for a person's
    sampling = {"max_new_tokens": settings.max_new_tokens, "temperature": settings.temperature,
                "top_p": settings.top_p, "seed": settings.seed}
    result = Annotation(run_dir.name, AI_VOTER_PREFIX + source.name, path, len(available))
    if progress is not None:
        progress(0, len(chosen))  # checked and loaded: sampling starts
    for done, prompt in enumerate(chosen, start=1):
        message = prompt_text(prompt)
        reply = pair.generate_pair(message, settings)
        verdict = judge_pair(source, message, reply.reference, reply.aligned,
                             (reply.reference_reward, reply.aligned_reward))
        blind = Round(run_dir.name, message, pair.mode, reply.reference, reply.aligned, config.model, run_dir.name,
                      sampling, order_seed=orders.getrandbits(32))
        choice = verdict.outcome if verdict.outcome == "tie" else "AB"[blind.order.index(verdict.outcome)]
        vote = {**blind.record(choice, result.voter), "annotator": verdict.record}
        append_vote(path, vote)
        result.votes.append(vote)
        if progress is not None:
            progress(done, len(chosen))
    return result
