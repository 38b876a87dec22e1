"""An LLM judge on a small chat model, scored from its own next-token probabilities (no sampling).

Three ways to ask it, all offline with any local chat model (default: the default model):

- :meth:`Judge.scores`, pointwise: P(Yes) / (P(Yes) + P(No)) to "Is the response <instruction>?"
  (LLM-as-a-judge, Zheng et al. 2023, arXiv:2306.05685);
- :meth:`Judge.prefer`, pairwise: P(A) for "Which response is more <instruction>?", asked in both orders
  and averaged, reducing position bias as in OAIF (Guo et al. 2024, arXiv:2402.04792);
- :meth:`Judge.contrast`, pointwise and free of position bias by construction: how much more likely the
  judge finds the response when the request asks for ``<instruction>`` than when it asks for the
  opposite (a Bayes-rule "noisy channel" classifier from the model's own likelihoods, Min et al. 2022,
  arXiv:2108.04106). On a small model it agrees with a ground truth far more often than the other two,
  which read the question more than the answers (``experiments/judge_agreement.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from alignlab.models import load_model, load_tokenizer

# What the judge asks for by default, and what it contrasts that with (several requests separated by OPPOSITES_SEP,
# their log-likelihoods averaged; "": the request alone): the built-in task's wish (positive reviews), chosen by
# `python -m experiments.judge_agreement --grid` on pairs 200-299 (figures in docs/judge.md and
# docs/judge-grid.json).
DEFAULT_INSTRUCTION = "glowing praise"
DEFAULT_OPPOSITE = "a scathing review; negative"
OPPOSITES_SEP = ";"


def opposites_of(opposite: str) -> list[str]:
    """The requests ``opposite`` names, in order: several separated by ``;``; [""] (the request alone) when empty.

    >>> opposites_of("a scathing review; negative"), opposites_of(""), opposites_of(" harsh criticism ")
    (['a scathing review', 'negative'], [''], ['harsh criticism'])
    """
    return [part.strip() for part in opposite.split(OPPOSITES_SEP) if part.strip()] or [""]


class Judge:
    """LLM-as-a-judge scored from next-token probabilities, pointwise and pairwise.

    Pointwise: P(Yes) / (P(Yes) + P(No)) to "Is the response <instruction>?". Pairwise: P(A) for
    "Which response is more <instruction>?", asked in both orders and averaged.
    """

    def __init__(self, model_name: str, instruction: str = DEFAULT_INSTRUCTION, batch_size: int = 8,
                 opposite: str = DEFAULT_OPPOSITE):
        self.model_name = model_name
        self.instruction = instruction
        self.opposite = opposite
        self.batch_size = batch_size
        self._loaded = None

    def _load(self):
        if self._loaded is None:
            tokenizer = load_tokenizer(self.model_name)
            model = load_model(self.model_name).eval()
            self._loaded = model, tokenizer
        return self._loaded

    def _answer_probability(self, questions: list[str], yes: str, no: str) -> list[float]:
        """P(``yes``) against P(``no``) as the judge's first answer token, per question."""
        import torch

        model, tokenizer = self._load()
        ids = [tokenizer.encode(word, add_special_tokens=False)[0] for word in (yes, no)]
        texts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                               add_generation_prompt=True) for q in questions]
        side, tokenizer.padding_side = tokenizer.padding_side, "left"
        probabilities = []
        try:
            for start in range(0, len(texts), self.batch_size):
                batch = tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True,
                                  add_special_tokens=False).to(model.device)
                with torch.no_grad():
                    logits = model(**batch).logits[:, -1, ids].float()
                probabilities.extend(torch.softmax(logits, dim=-1)[:, 0].tolist())
        finally:
            tokenizer.padding_side = side
        return probabilities

    def scores(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        """P(the response is <instruction>), in [0, 1]."""
        questions = [f"A good response is {self.instruction}.\n\nPrompt: {p}\nResponse: {c}\n\n"
                     f"Is the response {self.instruction}? Answer Yes or No." for p, c in zip(prompts, completions)]
        return self._answer_probability(questions, "Yes", "No")

    def prefer_once(self, prompts: Sequence[str], first: Sequence[str], second: Sequence[str]) -> list[float]:
        """P(``first`` is better than ``second``) shown as Response A: one order, position bias included."""
        def question(prompt, a, b):
            return (f"A good response is {self.instruction}.\n\nPrompt: {prompt}\n\nResponse A: {a}\n\n"
                    f"Response B: {b}\n\nWhich response is more {self.instruction}? Answer A or B.")

        return self._answer_probability([question(*t) for t in zip(prompts, first, second)], "A", "B")

    def prefer(self, prompts: Sequence[str], first: Sequence[str], second: Sequence[str]) -> list[float]:
        """P(``first`` is better than ``second``), judged in both orders (first as A, then as B) and averaged."""
        in_order = self.prefer_once(prompts, first, second)
        swapped = self.prefer_once(prompts, second, first)
        return [(a + 1.0 - b) / 2 for a, b in zip(in_order, swapped)]


    def contrast(self, prompts: Sequence[str], completions: Sequence[str], opposite: str | None = None) -> list[float]:
        """Per response: the mean over its tokens of log P(token | request asking for <instruction>) minus
        log P(token | request asking for ``opposite``), by default the judge's. ``opposite`` may name several
        requests separated by ``;`` (their log-likelihoods are averaged: the response against the typical
        opposite, not one wording of it); "" is the request alone.

        Each response is scored alone, so the order two are shown in cannot matter. Positive when the
        judge reads the response as written to the instruction rather than to its opposite."""
        asked = self._log_likelihoods(prompts, completions, f" Make it {self.instruction}.")
        wishes = opposites_of(self.opposite if opposite is None else opposite)
        others = [self._log_likelihoods(prompts, completions, f" Make it {wish}." if wish else "") for wish in wishes]
        return [(a - sum(other[i][0] for other in others) / len(others)) / max(1, n)
                for i, (a, n) in enumerate(asked)]

    def _log_likelihoods(self, prompts: Sequence[str], completions: Sequence[str], wish: str) -> list[tuple]:
        """(log P(completion | chat-templated prompt + wish), completion tokens) per pair, in batches."""
        import torch

        model, tokenizer = self._load()
        rows = []
        for prompt, completion in zip(prompts, completions):
            context = tokenizer.apply_chat_template([{"role": "user", "content": f"{prompt}{wish}"}], tokenize=False,
                                                    add_generation_prompt=True)
            rows.append((tokenizer(context, add_special_tokens=False)["input_ids"],
                         tokenizer(completion, add_special_tokens=False)["input_ids"]))
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        results = []
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start:start + self.batch_size]
            width = max(len(c) + len(a) for c, a in batch)
            keep = max(len(a) for _, a in batch) + 1  # logits only where they predict an answer token
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for i, (context, answer) in enumerate(batch):  # left-padded: every answer ends at the last column
                ids[i, width - len(context) - len(answer):] = torch.tensor(context + answer)
                mask[i, width - len(context) - len(answer):] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            with torch.no_grad():
                logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                               position_ids=positions.to(model.device), logits_to_keep=keep).logits
            for i, (_, answer) in enumerate(batch):
                if not answer:
                    results.append((0.0, 0))
                    continue
                predicting = logits[i, keep - len(answer) - 1:keep - 1].float().log_softmax(-1)
                taken = predicting.gather(-1, torch.tensor(answer, device=predicting.device)[:, None])
                results.append((float(taken.sum()), len(answer)))
        return results
