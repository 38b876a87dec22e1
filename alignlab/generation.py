"""Batched sampling shared by make-prefs, final samples, the probe and chat.

Prompts are plain strings (continued as raw text, like the built-in task) or lists of chat
messages (rendered with the tokenizer's chat template). Sampling is seeded so the reference and
the aligned model can be compared on the same random stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence


@dataclass
class SamplingSettings:
    """How the lab samples: max new tokens, temperature (0 = greedy), nucleus top_p, seed."""

    max_new_tokens: int = 32
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0


def render_prompt(tokenizer, prompt) -> str:
    """Text fed to the model for one prompt (chat template for message lists)."""
    if isinstance(prompt, list):
        return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    return prompt


def sample(model, tokenizer, prompts: Sequence, settings: SamplingSettings, batch_size: int = 32,
           num_return_sequences: int = 1, progress=None) -> list[str]:
    """Sample completions; returns ``len(prompts) * num_return_sequences`` strings, prompt-major.

    ``progress``, if given, is called with the number of prompts done after each batch.
    """
    import torch

    texts = [render_prompt(tokenizer, p) for p in prompts]
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(settings.seed)
    completions: list[str] = []
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(device)
            greedy = settings.temperature <= 0
            with torch.no_grad():
                output = model.generate(
                    **batch, max_new_tokens=settings.max_new_tokens, do_sample=not greedy,
                    temperature=None if greedy else settings.temperature, top_p=None if greedy else settings.top_p,
                    top_k=None if greedy else 0, num_return_sequences=num_return_sequences,
                    pad_token_id=tokenizer.pad_token_id,
                )
            new_tokens = output[:, batch["input_ids"].shape[1]:]
            completions.extend(tokenizer.batch_decode(new_tokens, skip_special_tokens=True))
            if progress is not None:
                progress(min(start + batch_size, len(texts)))
    finally:
        tokenizer.padding_side = side
        torch.random.set_rng_state(generator_state)
        model.train(was_training)
    return completions
