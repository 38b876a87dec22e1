"""``alignlab data make-prefs``: build preference pairs from a model and a reward source.

For each prompt, sample N completions from the model, score them with the reward (VADER
sentiment on the built-in task) and keep (prompt, best, worst) when the two differ by at least
``min_gap``. This is how the DPO paper built its IMDb pairs, with a sentiment classifier as judge.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from alignlab.errors import AlignLabError


@dataclass
class PrefsReport:
    """What a make-prefs run did: counts and the spread of base-model rewards."""

    model: str
    reward: str
    prompts: int
    samples_per_prompt: int
    pairs: int
    max_new_tokens: int
    temperature: float
    seed: int
    min_gap: float
    reward_mean: float
    reward_deciles: list[float]
    mean_gap: float


def make_prefs(model_name: str, prompts: list[str], output: str | Path, samples_per_prompt: int = 4,
               reward: str = "sentiment", max_new_tokens: int = 32, temperature: float = 1.0, seed: int = 0,
               min_gap: float = 0.05, batch_size: int = 16,
               progress: Callable[[int, int], None] | None = None) -> PrefsReport:
    """Sample, score and write ``output`` (JSONL of prompt/chosen/rejected plus scores)."""
    from alignlab.generation import SamplingSettings, sample
    from alignlab.models import load_model, load_tokenizer
    from alignlab.rewards import get_reward

    if samples_per_prompt < 2:
        raise AlignLabError(f"samples_per_prompt: got {samples_per_prompt}, expected at least 2")
    if not prompts:
        raise AlignLabError("prompts: got none, expected at least one prompt")
    score = get_reward(reward)
    model = load_model(model_name)
    tokenizer = load_tokenizer(model_name)
    settings = SamplingSettings(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    completions = sample(model, tokenizer, prompts, settings, batch_size=batch_size,
                         num_return_sequences=samples_per_prompt,
                         progress=(lambda done: progress(done, len(prompts))) if progress else None)
    repeated = [p for p in prompts for _ in range(samples_per_prompt)]
    scores = score(repeated, completions)
    rows, gaps = [], []
    for index, prompt in enumerate(prompts):
        group = list(zip(scores[index * samples_per_prompt:(index + 1) * samples_per_prompt],
                         completions[index * samples_per_prompt:(index + 1) * samples_per_prompt]))
        best = max(group, key=lambda pair: pair[0])
        worst = min(group, key=lambda pair: pair[0])
        if best[0] - worst[0] >= min_gap and best[1].strip() and worst[1].strip() and best[1] != worst[1]:
            rows.append({"prompt": prompt, "chosen": best[1], "rejected": worst[1],
                         "chosen_score": round(best[0], 4), "rejected_score": round(worst[0], 4)})
            gaps.append(best[0] - worst[0])
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    deciles = statistics.quantiles(scores, n=10) if len(scores) > 1 else list(scores)
    return PrefsReport(model_name, reward, len(prompts), samples_per_prompt, len(rows), max_new_tokens,
                       temperature, seed, min_gap, round(statistics.fmean(scores), 4),
                       [round(d, 4) for d in deciles], round(statistics.fmean(gaps), 4) if gaps else 0.0)


def write_card(report: PrefsReport, path: str | Path, command: str) -> None:
    """A short markdown card describing how a preference set was made."""
    deciles = ", ".join(f"{d:+.3f}" for d in report.reward_deciles)
    text = f"""# Preference set card

Made by `{command}`.

- Model: `{report.model}`; reward: `{report.reward}` (VADER compound of the completion only)
- {report.prompts} prompts x {report.samples_per_prompt} samples, {report.max_new_tokens} new tokens,
  temperature {report.temperature}, seed {report.seed}
- Kept best/worst when they differ by >= {report.min_gap}: **{report.pairs} pairs**, mean gap {report.mean_gap:+.3f}
- Base-model reward over all samples: mean {report.reward_mean:+.3f}; deciles {deciles}

```json
{json.dumps(asdict(report), indent=1)}
```
"""
    Path(path).write_text(text)
