"""``alignlab data make-prefs``: build preference pairs from a model and a reward source.

For each prompt, sample N completions from the model, score them with the reward (VADER
sentiment on the built-in task) and keep (prompt, best, worst) when the two differ by at least
``min_gap``. This is how the DPO paper built its IMDb pairs, with a sentiment classifier as judge.
More samples per prompt widen the best-worst gap. Chat prompts (message lists) give pairs in the
conversational format (each answer an assistant message), which TRL renders with the chat template.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from alignlab.errors import AlignLabError
from alignlab.generation import SamplingSettings, sample
from alignlab.models import load_model, load_tokenizer
from alignlab.rewards import get_reward


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
    top_p: float
    seed: int
    min_gap: float
    reward_mean: float
    reward_deciles: list[float]
    mean_gap: float
    whole_sentences: float  # share of completions that end with a full sentence


def make_prefs(model_name: str, prompts: list[str], output: str | Path, samples_per_prompt: int = 4,
               reward: str = "sentiment", max_new_tokens: int = 48, temperature: float = 0.7, top_p: float = 0.9,
               seed: int = 0, min_gap: float = 0.05, batch_size: int = 16,
               progress: Callable[[int, int], None] | None = None) -> PrefsReport:
    """Sample, score and write ``output`` (JSONL of prompt/chosen/rejected plus scores)."""

    if samples_per_prompt < 2:
        raise AlignLabError(f"samples_per_prompt: got {samples_per_prompt}, expected at least 2")
    if not prompts:
        raise AlignLabError("prompts: got none, expected at least one prompt")
    score = get_reward(reward)
    model = load_model(model_name)
    tokenizer = load_tokenizer(model_name)
    settings = SamplingSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
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
            rows.append({"prompt": prompt, "chosen": _answer(prompt, best[1]), "rejected": _answer(prompt, worst[1]),
                         "chosen_score": round(best[0], 4), "rejected_score": round(worst[0], 4)})
            gaps.append(best[0] - worst[0])
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    deciles = statistics.quantiles(scores, n=10) if len(scores) > 1 else list(scores)
    ended = sum(text.rstrip().endswith(_ENDINGS) for text in completions) / len(completions)
    return PrefsReport(model_name, reward, len(prompts), samples_per_prompt, len(rows), max_new_tokens,
                       temperature, top_p, seed, min_gap, round(statistics.fmean(scores), 4),
                       [round(d, 4) for d in deciles], round(statistics.fmean(gaps), 4) if gaps else 0.0,
                       round(ended, 3))


_ENDINGS = tuple(".!?…\"'”’)]")


def _answer(prompt, text: str):
    """A completion in the prompt's format: an assistant message for chat prompts, else plain text."""
    return [{"role": "assistant", "content": text}] if isinstance(prompt, list) else text


def write_card(report: PrefsReport, path: str | Path, command: str) -> None:
    """A short markdown card describing how a preference set was made."""
    deciles = ", ".join(f"{d:+.3f}" for d in report.reward_deciles)
    text = f"""# Preference set card

Made by `{command}`.

- Model: `{report.model}`; reward: `{report.reward}` (VADER compound of the completion only)
- {report.prompts} prompts x {report.samples_per_prompt} samples, at most {report.max_new_tokens} new tokens,
  temperature {report.temperature}, top_p {report.top_p}, seed {report.seed}; each completion cut back to its
  last full sentence ({report.whole_sentences:.0%} end with one)
- Kept best/worst when they differ by >= {report.min_gap}: **{report.pairs} pairs**, mean gap {report.mean_gap:+.3f}
- Base-model reward over all samples: mean {report.reward_mean:+.3f}; deciles {deciles}

```json
{json.dumps(asdict(report), indent=1)}
```
"""
    Path(path).write_text(text)
