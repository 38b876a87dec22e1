"""Scoring the completions of a prompt with one pass over the prompt.

GRPO (Shao et al. 2024, "DeepSeekMath", arXiv:2402.03300) and RLOO (Ahmadian et al. 2024, arXiv:2402.14740)
sample k completions of each prompt, so each prompt stands in k rows of a batch (in a row when sampled, shuffled
for the training pass). TRL's trainers score every row with a full forward pass: the policy's log-probs before
the update (RLOO's KL penalty), the reference's, and the training forward itself. On the built-in task the prompt
is about 55 of a row's ~100 tokens, so at k = 4 most of each pass recomputes prompts already computed.

:func:`grouped_logps` computes each distinct prompt once (all but its last token, into a key/value cache), gives
every row its prompt's cache, and runs the last prompt token and the completion of every row on it. Each
completion token sees the same keys and values at the same positions as in the full pass, so the log-probs (and
entropies) are the full pass's up to floating-point rounding, and gradients flow through the shared prompt pass
into the weights as they would through k copies of it. :func:`shared_prompt_trainer` gives a TRL trainer class
that scores this way when it can, ``batch_size`` rows at a time as TRL does, and hands every other call (no
repeated prompt, images, a mixture-of-experts loss, several processes, activation checkpointing) to TRL unchanged.

Online DPO (Guo et al. 2024, "Direct Language Model Alignment from Online AI Feedback", arXiv:2402.04792) samples
two completions of each prompt and scores both with the policy and the reference:
:func:`grouped_completion_logprobs` and :func:`shared_prompt_pairs_trainer` do the same for its pairs.
"""

from __future__ import annotations

from typing import Any

from alignlab.decoding import cache_argument


def _prompt_cache(model, prompts, prompt_masks):
    """``(cache, argument)``: the key/value cache of each row's prompt but its last token, each distinct prompt
    (ids and mask alike) computed once, and the forward argument that takes it; None when no prompt repeats or the
    prompts are shorter than two tokens."""
    import torch
    from transformers import DynamicCache

    if prompts.shape[1] < 2:
        return None
    distinct, row_prompt = torch.unique(torch.cat([prompts, prompt_masks], dim=1), dim=0, return_inverse=True)
    if len(distinct) == len(prompts):
        return None
    length = prompts.shape[1]
    argument = cache_argument(model)
    cache = DynamicCache()
    model(input_ids=distinct[:, :length - 1], attention_mask=distinct[:, length:-1], use_cache=True,
          logits_to_keep=1, **{argument: cache})
    cache.batch_select_indices(row_prompt)  # each row's prompt, repeated as often as it appears
    return cache, argument


def grouped_logps(model, input_ids, attention_mask, logits_to_keep: int, compute_entropy: bool = False):
    """Per-token log-probs (and entropies, or None) of the last ``logits_to_keep`` tokens of each row, as TRL's
    ``model(..., labels=..., fused_lm_head=True)`` gives them (a model patched by TRL's ``add_fused_lm_head``; RLOO
    and GRPO), with each distinct prompt (the columns before those tokens, padding included) computed once,
    wherever its rows stand in the batch. None when no prompt repeats or the prompts are shorter than two tokens:
    then the caller scores the rows the usual way."""
    prompt_length = input_ids.shape[1] - logits_to_keep
    shared = _prompt_cache(model, input_ids[:, :prompt_length], attention_mask[:, :prompt_length])
    if shared is None:
        return None
    cache, argument = shared
    tail = input_ids[:, prompt_length - 1:]
    labels = tail.masked_fill(attention_mask[:, prompt_length - 1:] == 0, -100)
    labels[:, 0] = -100  # the last prompt token is input only: the first label is the completion's first token
    outputs = model(input_ids=tail, attention_mask=attention_mask, labels=labels, fused_lm_head=True,
                    **{argument: cache})
    entropies = outputs.entropy[:, -logits_to_keep:] if compute_entropy else None
    return outputs.log_probs[:, -logits_to_keep:], entropies


def grouped_completion_logprobs(model, prompt_ids, prompt_mask, completion_ids, completion_mask):
    """Each completion token's log-probability under the model's full softmax, as TRL's online DPO scores its
    pairs (both completions of a prompt), with each distinct prompt computed once; None as for
    :func:`grouped_logps`."""
    import torch

    shared = _prompt_cache(model, prompt_ids, prompt_mask)
    if shared is None:
        return None
    cache, argument = shared
    tail = torch.cat([prompt_ids[:, -1:], completion_ids], dim=1)
    mask = torch.cat([prompt_mask, completion_mask], dim=1)
    logits = model(input_ids=tail, attention_mask=mask, **{argument: cache}).logits[:, :-1]
    return torch.take_along_dim(logits.log_softmax(dim=-1), completion_ids.unsqueeze(-1), dim=2).squeeze(-1)


def _plain_model(trainer) -> bool:
    """Whether the trainer's model can take the two calls of :func:`grouped_logps`: one process (DDP, FSDP and
    DeepSpeed count the calls before a backward pass) and no activation checkpointing (which turns the prompt
    pass's cache off)."""
    return trainer.accelerator.num_processes == 1 and not trainer.args.gradient_checkpointing


def shared_prompt_trainer(trainer_class: type) -> type:
    """``trainer_class`` (TRL's RLOOTrainer or GRPOTrainer) scoring repeated prompts once (:func:`grouped_logps`)."""

    class SharedPromptTrainer(trainer_class):
        __doc__ = f"{trainer_class.__name__} that computes each prompt of a group once (alignlab.shared_prompt)."

        def _get_per_token_logps_and_entropies(self, model, input_ids, attention_mask, logits_to_keep,
                                               batch_size=None, compute_entropy=False, compute_aux_loss=False,
                                               **other: Any):
            if not compute_aux_loss and all(value is None for value in other.values()) and _plain_model(self):
                import torch

                size = batch_size or len(input_ids)  # rows a pass, as TRL scores them
                with self.accelerator.autocast():
                    parts = [grouped_logps(model, input_ids[start:start + size], attention_mask[start:start + size],
                                           logits_to_keep, compute_entropy) for start in range(0, len(input_ids), size)]
                if all(part is not None for part in parts):
                    logps, entropies = zip(*parts)
                    return torch.cat(logps), torch.cat(entropies) if compute_entropy else None, None
            return super()._get_per_token_logps_and_entropies(
                model, input_ids, attention_mask, logits_to_keep, batch_size=batch_size,
                compute_entropy=compute_entropy, compute_aux_loss=compute_aux_loss, **other)

    SharedPromptTrainer.__name__ = SharedPromptTrainer.__qualname__ = trainer_class.__name__
    return SharedPromptTrainer


def shared_prompt_pairs_trainer(trainer_class: type) -> type:
    """``trainer_class`` (TRL's OnlineDPOTrainer) scoring the two completions of each prompt on one pass over the
    prompt (:func:`grouped_completion_logprobs`), after TRL's own left truncation to ``max_length``."""

    class SharedPromptPairsTrainer(trainer_class):
        __doc__ = f"{trainer_class.__name__} that computes each prompt of a pair once (alignlab.shared_prompt)."

        def _forward(self, model, prompt_ids, prompt_mask, completion_ids, completion_mask, vision_inputs=None):
            if vision_inputs is None and _plain_model(self):
                cut = max(prompt_ids.size(1) + completion_ids.size(1) - self.max_length, 0)
                scored = grouped_completion_logprobs(model, prompt_ids[:, cut:], prompt_mask[:, cut:],
                                                     completion_ids, completion_mask)
                if scored is not None:
                    return scored
            return super()._forward(model, prompt_ids, prompt_mask, completion_ids, completion_mask, vision_inputs)

    SharedPromptPairsTrainer.__name__ = SharedPromptPairsTrainer.__qualname__ = trainer_class.__name__
    return SharedPromptPairsTrainer
