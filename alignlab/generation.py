"""Batched sampling shared by make-prefs, final samples and the evaluation, on the lab's engine.

:func:`sample` is the entry point; the decode loop itself (shared with the probe, the chat and PPO's
rollouts) is :mod:`alignlab.decoding`.

Prompts are plain strings (continued as raw text) or lists of chat messages (rendered with the
tokenizer's chat template, as the built-in task does). Sampling is seeded so the reference and the
aligned model can be compared on the same random stream. A completion ends at the first special
token the model emits (``<|im_end|>``, or a new ``<|im_start|>`` turn), and :func:`sentence_end`
cuts a completion that ran out of tokens back to its last full sentence, so what a user reads stops
at a sentence boundary rather than mid-word.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# The lab's sampling settings for text people read (samples, eval, make-prefs): temperature 0.7 with
# nucleus 0.9 reads as coherent sentences from a 135M model; temperature 1 (the probe's, for an unbiased
# KL estimate) drifts off topic within a sentence.
READING_TEMPERATURE = 0.7
READING_TOP_P = 0.9
_SENTENCE_END = re.compile(r"[.!?…][\"'”’)\]]*(?=\s|$)")


@dataclass
class SamplingSettings:
    """How the lab samples: max new tokens, temperature (0 = greedy), nucleus top_p, seed."""

    max_new_tokens: int = 48
    temperature: float = READING_TEMPERATURE
    top_p: float = READING_TOP_P
    seed: int = 0


def render_prompt(tokenizer, prompt) -> str:
    """Text fed to the model for one prompt (chat template for message lists)."""
    if isinstance(prompt, list):
        return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    return prompt


def prompt_text(prompt) -> str:
    """What a person reads as the prompt: the text, or the last user message of a message list."""
    if isinstance(prompt, list):
        users = [m.get("content", "") for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return users[-1] if users else ""
    return str(prompt)


def stop_token_ids(model, tokenizer) -> list[int]:
    """Token ids that end a completion: the configured EOS ids and the tokenizer's special tokens.

    An instruct model sometimes closes its turn with ``<|im_start|>`` instead of ``<|im_end|>``;
    anything after a special token is a new turn, not part of the answer.
    """
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = set(configured if isinstance(configured, list) else [] if configured is None else [configured])
    ids.update(i for i in (tokenizer.eos_token_id, *tokenizer.all_special_ids) if i is not None)
    ids.discard(tokenizer.unk_token_id)
    return sorted(ids)


def sentence_end(text: str) -> str:
    """``text`` cut after its last full sentence; unchanged when it has no sentence end at all.

    >>> sentence_end("A warm, funny film. The ending drags on and")
    'A warm, funny film.'
    """
    text = text.strip()
    ends = list(_SENTENCE_END.finditer(text))
    return text[:ends[-1].end()] if ends else text


def sample(model, tokenizer, prompts: Sequence, settings: SamplingSettings, batch_size: int = 32,
           num_return_sequences: int = 1, progress=None, whole_sentences: bool = True,
           synced_gpus: bool = False) -> list[str]:
    """Sample completions; returns ``len(prompts) * num_return_sequences`` strings, prompt-major.

    Decoded by the lab's engine (:mod:`alignlab.decoding`) from a ``torch.Generator`` seeded with
    ``settings.seed`` (the global random state is untouched); greedy at temperature 0 gives the same tokens as
    ``model.generate``. ``whole_sentences`` cuts each completion back to its last full sentence
    (:func:`sentence_end`). ``progress``, if given, is called with the number of prompts done after each batch.
    ``batch_size`` counts prompts: each batch decodes ``batch_size * num_return_sequences`` rows.
    ``synced_gpus``: every process of a run with sharded weights samples together (see :mod:`alignlab.distributed`);
    that path runs ``model.generate``, which keeps the processes' forward passes in step.
    """
    import torch

    from alignlab.decoding import decode, merged_lora

    texts = [render_prompt(tokenizer, p) for p in prompts]
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    completions: list[str] = []
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    stops = stop_token_ids(model, tokenizer)
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    try:
        with merged_lora(model):
            for start in range(0, len(texts), batch_size):
                batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                                  add_special_tokens=False).to(device)
                if synced_gpus:
                    rows = _generate_synced(model, tokenizer, batch, settings, num_return_sequences, stops, generator)
                else:
                    rows = decode(model, batch["input_ids"], batch["attention_mask"], settings.max_new_tokens,
                                  settings.temperature, settings.top_p, generator, stops, num_return_sequences,
                                  pad_id=tokenizer.pad_token_id or 0).tokens.tolist()
                completions.extend(_until_stop(row, stops, tokenizer) for row in rows)
                if progress is not None:
                    progress(min(start + batch_size, len(texts)))
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    return [sentence_end(text) for text in completions] if whole_sentences else completions


def _generate_synced(model, tokenizer, batch, settings: SamplingSettings, num_return_sequences: int,
                     stops: list[int], generator) -> list[list[int]]:
    """``model.generate`` with ``synced_gpus`` (sharded weights), seeded from ``generator``."""
    import torch

    greedy = settings.temperature <= 0
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
        output = model.generate(
            **batch, max_new_tokens=settings.max_new_tokens, do_sample=not greedy,
            temperature=None if greedy else settings.temperature, top_p=None if greedy else settings.top_p,
            top_k=None if greedy else 0, num_return_sequences=num_return_sequences,
            pad_token_id=tokenizer.pad_token_id, eos_token_id=stops, synced_gpus=True,
        )
    return output[:, batch["input_ids"].shape[1]:].tolist()


def _until_stop(token_ids: list[int], stops: list[int], tokenizer) -> str:
    for index, token in enumerate(token_ids):
        if token in stops:
            token_ids = token_ids[:index]
            break
    return tokenizer.decode(token_ids, skip_special_tokens=True)
