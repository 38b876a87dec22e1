"""Score a finished run: mean reward of the aligned vs the reference model on held-out prompts.

Both models sample with the same settings and the same seed, so the only difference between the
two columns is the training. With LoRA the reference is the adapter-disabled model.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Comparison:
    """Mean reward (and its standard error) of aligned vs reference completions."""

    run_id: str
    reward: str
    prompts: int
    samples_per_prompt: int
    aligned_mean: float
    aligned_sem: float
    reference_mean: float
    reference_sem: float

    @property
    def gain(self) -> float:
        return self.aligned_mean - self.reference_mean


def _mean_sem(values: list[float]) -> tuple[float, float]:
    sem = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return statistics.fmean(values), sem


def compare_run(run_dir: str | Path, reward: str | None = None, samples_per_prompt: int = 2, seed: int = 1234,
                max_new_tokens: int | None = None, temperature: float = 1.0) -> Comparison:
    """Sample aligned and reference completions for every held-out prompt and score them."""
    from alignlab.chat import reference_of
    from alignlab.generation import SamplingSettings, sample
    from alignlab.models import load_trained
    from alignlab.rewards import get_reward
    from alignlab.runner import config_of
    from alignlab.training import held_out_prompts

    config = config_of(run_dir)
    source = get_reward(reward or config.reward)
    model, tokenizer = load_trained(run_dir, config.trust_remote_code)
    prompts = held_out_prompts(config)
    settings = SamplingSettings(max_new_tokens=max_new_tokens or config.max_completion_length,
                                temperature=temperature, seed=seed)
    repeated = [p for p in prompts for _ in range(samples_per_prompt)]
    aligned = source(repeated, sample(model, tokenizer, prompts, settings, num_return_sequences=samples_per_prompt))
    with reference_of(model, config) as reference:
        base = source(repeated, sample(reference, tokenizer, prompts, settings,
                                       num_return_sequences=samples_per_prompt))
    aligned_mean, aligned_sem = _mean_sem(aligned)
    base_mean, base_sem = _mean_sem(base)
    return Comparison(Path(run_dir).name, source.name, len(prompts), samples_per_prompt,
                      round(aligned_mean, 4), round(aligned_sem, 4), round(base_mean, 4), round(base_sem, 4))
