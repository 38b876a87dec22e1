"""Prompts that leave no room for a completion: with the model's tokenizer, the rows whose prompt alone fills
``max_length`` tokens are counted before a run starts (:func:`check_prompt_lengths`) and left out of training
(:func:`rows_that_fit`).
"""

from __future__ import annotations

import warnings
from typing import Any

from alignlab.errors import AlignLabError, AlignLabWarning

PROMPT_SLACK = 4  # tokens a tokenizer may add beyond one per byte of text (BOS/EOS, a leading-space piece)


def prompt_fills(rows: list[dict], tokenizer: Any, max_length: int, source: str = "dataset") -> list[int]:
    """Token count of each row's prompt where it alone fills ``max_length``, else 0 (no completion token would be
    left to learn from). Cheap: each distinct prompt is rendered once, and only one with enough bytes to reach
    ``max_length`` is tokenised (no token is shorter than a byte)."""
    tokens: dict[str, int] = {}
    counts = []
    for number, row in enumerate(rows, start=1):
        prompt = row["prompt"]
        text = prompt
        if isinstance(prompt, list):
            try:
                text = tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
            except Exception as error:  # noqa: BLE001 - no chat template, or a template that rejects the turns
                reason = (str(error).splitlines() or [""])[0]
                raise AlignLabError(f"dataset: {source} row {number} column prompt: the model's chat template cannot "
                                    f"render it ({type(error).__name__}: {reason}), expected conversational data "
                                    "only with a model that has a chat template") from None
        if text not in tokens:
            reachable = len(text.encode("utf-8")) + PROMPT_SLACK >= max_length
            count = len(tokenizer(text, add_special_tokens=not isinstance(prompt, list))["input_ids"]) \
                if reachable else 0
            tokens[text] = count if count >= max_length else 0
        counts.append(tokens[text])
    return counts


def check_prompt_lengths(source: str, rows: list[dict], tokenizer: Any, max_length: int) -> None:
    """Refuse rows when every prompt alone fills ``max_length`` tokens; warn with the count when some do.

    Such a row leaves no completion token to learn from; training leaves it out (:func:`rows_that_fit`, as TRL's
    DPO trainer does by itself; its ORPO and CPO trainers would keep it with an empty completion, whose loss is
    NaN), so data whose every prompt is too long would fail later on an empty dataset.
    """
    counts = prompt_fills(rows, tokenizer, max_length, source)
    too_long = sum(1 for count in counts if count)
    if not too_long:
        return
    longest = max(counts)
    if too_long == len(rows):
        raise AlignLabError(f"max_length: got {max_length}, but every prompt of {source} alone fills it (all "
                            f"{len(rows)} rows, the longest {longest} tokens), so no row would be left to train on; "
                            f"expected a max_length above {longest} with room for the completion")
    warnings.warn(f"dataset: {source}: the prompt alone fills max_length ({max_length} tokens) in {too_long} of "
                  f"{len(rows)} rows (the longest {longest} tokens), and training leaves those rows out; raise "
                  f"max_length above {longest} to keep them", AlignLabWarning, stacklevel=2)


def rows_that_fit(rows: list[dict], tokenizer: Any, max_length: int) -> list[dict]:
    """The rows whose prompt leaves room for at least one completion token within ``max_length``."""
    return [row for row, count in zip(rows, prompt_fills(rows, tokenizer, max_length), strict=True) if not count]
