"""``alignlab data make-prefs``: build preference pairs from a model and a reward source.

For each prompt, sample N completions from the model, score them with the reward (VADER
sentiment on the built-in task) and keep (prompt, best, worst) when the two differ by at least
``min_gap``. This is how the DPO paper built its IMDb pairs, with a sentiment classifier as judge.
More samples per prompt widen the best-worst gap. Chat prompts (message lists) give pairs in the
conversational format (each answer an assistant message), which TRL renders with the chat template.

With ``prefill_opening`` (``--prefill-opening``), a prompt that asks for a review beginning with a given opening (the
built-in task's instruction, :func:`alignlab.follow.requested_opening`) is sampled with that opening already written at
the start of the assistant's turn, as the DPO paper's IMDb pairs continue a review's prefix: every answer, chosen and
rejected alike, then begins with the opening, so the pair contrasts sentiment only and never rewards dropping the
instruction. The stored answers are whole (opening + continuation) and the prompt stays the plain request, so a run
trains and is evaluated on exactly what a chat user types.
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from alignlab import devices
from alignlab.errors import AlignLabError
from alignlab.follow import requested_opening
from alignlab.generation import SamplingSettings, render_prompt, sample, sentence_end
from alignlab.methods.base import Knob
from alignlab.models import load_model, load_tokenizer
from alignlab.rewards import get_reward

# The numbers make-prefs takes, declared once: checked (finite, in range, one line naming the setting) before
# anything is loaded or sampled.
SETTINGS = {knob.name: knob for knob in (
    Knob("samples", 8, "Completions per prompt (samples_per_prompt).", kind="int", min=2, max=256),
    Knob("max_new_tokens", 48, "Max new tokens per completion.", kind="int", min=1, max=8192),
    Knob("temperature", 0.7, "Sampling temperature (0 = greedy).", min=0.0, max=100.0),
    Knob("top_p", 0.9, "Nucleus sampling.", min=0.0, min_exclusive=True, max=1.0),
    Knob("seed", 0, "Sampling seed.", kind="int", min=0, max=2**31 - 1),
    Knob("min_gap", 0.05, "Keep a pair only if best - worst >= this.", min=0.0, max=1e6),
    Knob("limit", 0, "Use only the first N prompts (0 = all).", kind="int", min=0, max=10**9),
)}


def check_settings(**values: Any) -> dict[str, Any]:
    """The make-prefs numbers (keyword arguments named as in :data:`SETTINGS`) coerced, or AlignLabError naming
    the first bad one (NaN, ±inf, out of range, not a number)."""
    return {name: SETTINGS[name].coerce(value) for name, value in values.items()}


def card_path(output: str | Path) -> Path:
    """The data card written next to a preference file (``prefs.jsonl`` -> ``prefs.card.md``)."""
    return Path(os.path.splitext(str(output))[0] + ".card.md")


def check_output(output: str | Path, source: str | Path | None = None, force: bool = False) -> Path:
    """``output`` as a Path if make-prefs may write it (and its card) there; else AlignLabError naming output.

    Refused: the input dataset ``source`` itself, a folder, an existing file unless ``force``, and a place
    this process cannot write (a read-only folder, a file where a folder should be). Checked before any
    sampling, so a long run never ends in a write error; nothing is left behind.
    """
    text = str(output)
    if not text.strip() or "\x00" in text:
        raise AlignLabError(f"output: got {text[:40]!r}, expected a file path")
    path = Path(text).expanduser()
    targets = (path, card_path(path))
    if source is not None and "\x00" not in str(source) and Path(source).expanduser().is_file():
        given = Path(source).expanduser()
        for target in targets:
            if target.resolve() == given.resolve() or (target.exists() and os.path.samefile(target, given)):
                raise AlignLabError(f"output: {str(target)!r} is the input dataset ({source}); write the pairs to "
                                    "another file")
    if path.is_dir():
        raise AlignLabError(f"output: {text!r} is a folder, expected a file path")
    if path.exists() and not force:
        raise AlignLabError(f"output: {text!r} already exists; pass --force (force=True) to replace it")
    existing = path.parent
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise AlignLabError(f"output: cannot write {text!r}: {str(existing)!r} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
        for target in targets:
            if target.exists():
                with open(target, "ab"):  # opened for writing, not changed
                    pass
    except OSError as error:
        raise AlignLabError(f"output: cannot write {text!r} ({error.strerror or error})") from None
    return path


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
    prefill_opening: bool = False  # answers sampled with the requested opening written first (module docstring)
    prefilled: int = 0  # prompts whose answers were so prefilled


def make_prefs(model_name: str, prompts: list[str], output: str | Path, samples_per_prompt: int = 4,
               reward: str = "sentiment", max_new_tokens: int = 48, temperature: float = 0.7, top_p: float = 0.9,
               seed: int = 0, min_gap: float = 0.05, batch_size: int = 16,
               progress: Callable[[int, int], None] | None = None, source: str | Path | None = None,
               force: bool = False, dtype: str = "auto", prefill_opening: bool = False) -> PrefsReport:
    """Sample, score and write ``output`` (JSONL of prompt/chosen/rejected plus scores).

    Every setting and ``output`` are checked first (:func:`check_settings`, :func:`check_output`): an
    existing ``output`` is replaced only with ``force``, and never when it is ``source``, the dataset the
    prompts came from. The model is loaded in the precision ``dtype`` asks of the device policy
    (:func:`alignlab.devices.placement`: auto, bf16, fp16 or fp32). ``prefill_opening`` samples each answer to a
    prompt that requests an opening as a continuation of that opening (see the module's docstring).
    """

    check_settings(samples=samples_per_prompt, max_new_tokens=max_new_tokens, temperature=temperature,
                   top_p=top_p, seed=seed, min_gap=min_gap)
    check_output(output, source, force)
    if not prompts:
        raise AlignLabError("prompts: got none, expected at least one prompt")
    score = get_reward(reward)
    model = load_model(model_name, placement=devices.placement(dtype))
    tokenizer = load_tokenizer(model_name)
    settings = SamplingSettings(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)
    openings = [requested_opening(p) if prefill_opening else None for p in prompts]
    fed = [p if opening is None else render_prompt(tokenizer, p) + opening for p, opening in zip(prompts, openings)]
    completions = sample(model, tokenizer, fed, settings, batch_size=batch_size,
                         num_return_sequences=samples_per_prompt, whole_sentences=not prefill_opening,
                         progress=(lambda done: progress(done, len(prompts))) if progress else None)
    if prefill_opening:
        completions = [sentence_end(text if opening is None else opening + text)
                       for opening, text in zip(_each(openings, samples_per_prompt), completions)]
    repeated = _each(prompts, samples_per_prompt)
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
                       round(ended, 3), prefill_opening, sum(opening is not None for opening in openings))


def _each(items: list, times: int) -> list:
    """Each item repeated ``times`` times in a row (prompt-major, as :func:`alignlab.generation.sample` returns)."""
    return [item for item in items for _ in range(times)]


_ENDINGS = tuple(".!?…\"'”’)]")


def _answer(prompt, text: str):
    """A completion in the prompt's format: an assistant message for chat prompts, else plain text."""
    return [{"role": "assistant", "content": text}] if isinstance(prompt, list) else text


def write_dataset_card(report: PrefsReport, path: str | Path, command: str) -> None:
    """A short markdown card describing how a preference set was made."""
    deciles = ", ".join(f"{d:+.3f}" for d in report.reward_deciles)
    prefilled = (f"- Opening prefilled: {report.prefilled} of {report.prompts} prompts were sampled with their "
                 "requested opening already written in the assistant turn, so their chosen and rejected answers both "
                 "begin with it\n") if report.prefill_opening else ""
    kept = f"**{report.pairs} pairs**, mean gap {report.mean_gap:+.3f}"
    text = f"""# Preference set card

Made by `{command}`.

- Model: `{report.model}`; reward: `{report.reward}` (VADER compound of the completion only)
- {report.prompts} prompts x {report.samples_per_prompt} samples, at most {report.max_new_tokens} new tokens,
  temperature {report.temperature}, top_p {report.top_p}, seed {report.seed}; each completion cut back to its
  last full sentence ({report.whole_sentences:.0%} end with one)
{prefilled}- Kept best/worst when they differ by >= {report.min_gap}: {kept}
- Base-model reward over all samples: mean {report.reward_mean:+.3f}; deciles {deciles}

```json
{json.dumps(asdict(report), indent=1)}
```
"""
    Path(path).write_text(text)
