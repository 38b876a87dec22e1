"""Fluency guards: is a higher reward a better review, or a reward hack?

A sentiment reward can be raised by repeating one happy word ("great great great"). Three cheap
figures make that visible beside every reward gain:

- ``distinct``: distinct words / words within a completion (1.0 = no repeats), averaged;
- ``words``: mean length in words;
- ``perplexity``: the *reference* model's perplexity of the completion given its prompt, i.e.
  exp(mean negative log-likelihood per token). Text the base model finds natural scores low; a
  degenerate or off-distribution completion scores high (the usual fluency proxy, as in the
  "GeDi" and "DExperts" controlled-generation evaluations, with the base model as scorer).

>>> distinct_ratio(["great great great great", "a fine film"])
0.625
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from alignlab.generation import render_prompt

_WORD = re.compile(r"[\w']+")


@dataclass(frozen=True)
class Fluency:
    """Fluency figures of a set of completions."""

    distinct: float
    words: float
    perplexity: float

    def as_dict(self) -> dict[str, float | None]:
        """The figures rounded, as files keep them; perplexity None where it was not measured (plain JSON has no
        NaN)."""
        return {"distinct": round(self.distinct, 4), "words": round(self.words, 2),
                "perplexity": round(self.perplexity, 3) if math.isfinite(self.perplexity) else None}


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def distinct_ratio(completions: Sequence[str]) -> float:
    """Mean over completions of distinct words / words (empty completions are skipped)."""
    ratios = [len(set(w)) / len(w) for w in map(words, completions) if w]
    return statistics.fmean(ratios) if ratios else 0.0


def completion_nll(model, tokenizer, prompts: Sequence, completions: Sequence[str], batch_size: int = 32
                   ) -> tuple[float, int]:
    """Summed negative log-likelihood of the completions' tokens under ``model``, and their token count."""
    import torch


    device = next(model.parameters()).device
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(prompts), batch_size):
            rows = []
            for prompt, completion in zip(prompts[start:start + batch_size], completions[start:start + batch_size]):
                prompt_ids = tokenizer(render_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"]
                completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
                if completion_ids:
                    rows.append((prompt_ids, completion_ids))
            if not rows:
                continue
            width = max(len(p) + len(c) for p, c in rows)
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
            input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
            attention = torch.zeros_like(input_ids)
            targets = torch.zeros_like(input_ids, dtype=torch.bool)
            for i, (p, c) in enumerate(rows):  # right padding: positions start at 0 for every row
                input_ids[i, :len(p) + len(c)] = torch.tensor(p + c)
                attention[i, :len(p) + len(c)] = 1
                targets[i, len(p):len(p) + len(c)] = True
            input_ids, attention, targets = input_ids.to(device), attention.to(device), targets.to(device)
            with torch.no_grad():
                logits = model(input_ids=input_ids, attention_mask=attention).logits[:, :-1].float()
            logprobs = torch.log_softmax(logits, dim=-1).gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)
            mask = targets[:, 1:]
            total -= float((logprobs * mask).sum())
            count += int(mask.sum())
    finally:
        model.train(was_training)
    return total, count


def fluency(completions: Sequence[str], prompts: Sequence | None = None, scorer=None, tokenizer=None) -> Fluency:
    """Distinct-word ratio and length; perplexity under ``scorer`` (the reference model) when given."""
    perplexity = float("nan")
    if scorer is not None and prompts is not None:
        nll, count = completion_nll(scorer, tokenizer, prompts, completions)
        perplexity = math.exp(nll / count) if count else float("nan")
    lengths = [len(words(text)) for text in completions]
    return Fluency(distinct_ratio(completions), statistics.fmean(lengths) if lengths else 0.0, perplexity)
