"""What changed: reference vs aligned answers to a few held-out prompts, side by side, each with its reward.

After a run, the quickest way to see what training did is to read it. :func:`run_changes` (a run
directory) and :func:`model_changes` (a trained model in memory, as the notebook Lab holds it) pick
:data:`CHANGE_PROMPTS` held-out prompts at random with a fixed seed, so they are neither the prompts
the model trained on nor hand-picked ones that flatter it, and the same seed picks the same prompts.
Both models answer each prompt with the same sampling settings and seed (:func:`side_by_side`, also
what a run's end-of-run samples are), and the run's reward source scores every answer.

Each row is a dict with ``prompt`` (the text a person reads), ``reference``, ``reference_reward``,
``aligned`` and ``aligned_reward``, the same keys as a run's samples file; where the run's task can tell
(:mod:`alignlab.follow`), ``reference_followed`` and ``aligned_followed`` too: whether each answer followed the
prompt's instruction.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

from alignlab.config import RunConfig, config_of
from alignlab.follow import FollowCheck, check_for, followed
from alignlab.generation import SamplingSettings, prompt_text, sample
from alignlab.held_out import held_out_of_run
from alignlab.models import load_trained
from alignlab.reference import reference_of
from alignlab.rewards import RewardSource, reward_for

CHANGE_PROMPTS = 3  # prompts shown: enough to see a pattern, few enough to read in class
PICK_SEED = 0  # picks the prompts (not cherry-picked: the same seed picks the same ones for every run)


def pick_prompts(prompts: Sequence, count: int = CHANGE_PROMPTS, seed: int = PICK_SEED) -> list:
    """``count`` distinct prompts drawn at random from ``prompts`` with ``seed`` (all of them when there are
    fewer), in the order drawn.

    >>> pick_prompts(["a", "b", "c", "d", "e"], 3, seed=0) == pick_prompts(["a", "b", "c", "d", "e"], 3, seed=0)
    True
    """
    chosen = random.Random(seed).sample(range(len(prompts)), min(count, len(prompts)))
    return [prompts[index] for index in chosen]


def side_by_side(model, tokenizer, config: RunConfig, prompts: Sequence, reward: RewardSource,
                 synced_gpus: bool = False, check: FollowCheck | None = None) -> list[dict]:
    """The reference's and the aligned model's answers to ``prompts`` (same reading settings and the run's seed,
    so only training differs), each scored by ``reward`` and, for a prompt ``check`` can tell, marked followed or
    not (:mod:`alignlab.follow`). With LoRA the reference is the adapter switched off.
    ``synced_gpus``: every process of a run with sharded weights samples together."""
    settings = SamplingSettings(max_new_tokens=config.max_completion_length, seed=config.seed)
    aligned = sample(model, tokenizer, prompts, settings, synced_gpus=synced_gpus)
    with reference_of(model, config) as reference:
        base = sample(reference, tokenizer, prompts, settings, synced_gpus=synced_gpus)
    aligned_scores, base_scores = reward(prompts, aligned), reward(prompts, base)
    aligned_followed, base_followed = followed(check, prompts, aligned), followed(check, prompts, base)
    rows = [{"prompt": prompt_text(prompt), "reference": base[i], "reference_reward": base_scores[i],
             "aligned": aligned[i], "aligned_reward": aligned_scores[i]} for i, prompt in enumerate(prompts)]
    for row, reference_answer, aligned_answer in zip(rows, base_followed, aligned_followed):
        if reference_answer is not None:  # None: the check cannot tell for this prompt
            row.update(reference_followed=reference_answer, aligned_followed=aligned_answer)
    return rows


def model_changes(model, tokenizer, config: RunConfig, held_out: Sequence, count: int = CHANGE_PROMPTS,
                  seed: int = PICK_SEED, reward: RewardSource | None = None) -> list[dict]:
    """What changed in ``model`` (trained from ``config``): ``count`` of its run's ``held_out`` prompts picked with
    ``seed`` (:func:`pick_prompts`), answered by the reference and by ``model``, scored by ``reward`` (the run's
    own reward source by default)."""
    prompts = pick_prompts(held_out, count, seed)
    return side_by_side(model, tokenizer, config, prompts, reward or reward_for(config),
                        check=check_for(config.dataset))


def run_changes(run_dir: str | Path, count: int = CHANGE_PROMPTS, seed: int = PICK_SEED) -> list[dict]:
    """What changed in a finished or stopped run: its saved model loaded and read as :func:`model_changes` does.
    AlignLabError when the run has no saved model yet."""
    config = config_of(run_dir)
    model, tokenizer = load_trained(run_dir, config.trust_remote_code)
    return model_changes(model, tokenizer, config, held_out_of_run(run_dir, config).prompts, count, seed)
