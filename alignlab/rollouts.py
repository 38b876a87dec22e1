"""The online trainers' rollouts through the lab's decode engine.

TRL's RLOO, GRPO and online DPO trainers sample their rollouts with ``model.generate(input_ids=...,
attention_mask=..., generation_config=...)`` on the unwrapped policy and read the completion after the
prompt columns, truncated after the first stop token. :func:`route_generate` gives the policy a
``generate`` with that contract that runs :func:`alignlab.decoding.decode` instead, so a rollout gets
what every other sampler in the lab gets:

- the k copies of a prompt that GRPO and RLOO put in a batch, and the two that online DPO samples, are
  prefilled once and share the cache;
- rows that finished leave the batch;
- a LoRA policy samples with its adapter folded into the weights (:func:`alignlab.decoding.merged_lora`).

On-policy stays exact: the engine samples from the same distribution (temperature, then nucleus top-p)
and the trainers still compute, in their own training forward, the log-probabilities they optimise.
Settings the engine does not implement (top-k, min-p, a repetition penalty, beams, suppressed tokens,
...) hand the call to transformers' ``generate`` unchanged.
"""

from __future__ import annotations

from alignlab.decoding import decode, merged_lora

# GenerationConfig fields the engine honours, with the values that leave every other processor off.
NEUTRAL = {"top_k": (None, 0), "min_p": (None,), "repetition_penalty": (None, 1.0), "num_beams": (None, 1),
           "num_return_sequences": (None, 1), "suppress_tokens": (None,), "bad_words_ids": (None,),
           "no_repeat_ngram_size": (None, 0), "min_new_tokens": (None, 0), "typical_p": (None, 1.0),
           "epsilon_cutoff": (None, 0.0), "eta_cutoff": (None, 0.0), "begin_suppress_tokens": (None,),
           "forced_eos_token_id": (None,), "forced_bos_token_id": (None,), "sequence_bias": (None,),
           "renormalize_logits": (None, False), "guidance_scale": (None, 1.0)}
ACCEPTED_ARGUMENTS = {"input_ids", "attention_mask", "generation_config"}


def route_generate(model) -> None:
    """Give ``model`` (a transformers or PEFT model) a ``generate`` that samples with the lab's engine
    whenever :func:`engine_settings` accepts the call, and with transformers' own ``generate`` otherwise.
    A model without ``generate`` (PPO's policy-and-value pair, which samples with the engine already) is left
    as it is."""
    original = getattr(model, "generate", None)
    if original is None:
        return

    def generate(*args, **kwargs):
        settings = engine_settings(args, kwargs)
        if settings is None:
            return original(*args, **kwargs)
        return engine_generate(model, kwargs["input_ids"], kwargs.get("attention_mask"), **settings)

    generate.__doc__ = "``generate`` through alignlab's decode engine (see :mod:`alignlab.rollouts`)."
    model.generate = generate


def engine_settings(args: tuple, kwargs: dict) -> dict | None:
    """The engine's settings for a ``generate(**kwargs)`` call, or None when the call asks for anything
    the engine does not do (then transformers' ``generate`` must answer it)."""
    config = kwargs.get("generation_config")
    if args or config is None or set(kwargs) - ACCEPTED_ARGUMENTS or kwargs.get("input_ids") is None:
        return None
    if not config.max_new_tokens or config.cache_implementation not in (None, "dynamic"):
        return None
    if any(getattr(config, name, None) not in allowed for name, allowed in NEUTRAL.items()):
        return None
    stops = config.eos_token_id
    stops = [] if stops is None else [stops] if isinstance(stops, int) else list(stops)
    return {"max_new_tokens": config.max_new_tokens, "stop_ids": stops,
            "temperature": (config.temperature or 1.0) if config.do_sample else 0.0,
            "top_p": config.top_p if config.do_sample and config.top_p is not None else 1.0,
            "pad_id": config.pad_token_id if config.pad_token_id is not None else (stops[0] if stops else 0)}


def engine_generate(model, input_ids, attention_mask, max_new_tokens: int, stop_ids, temperature: float,
                    top_p: float, pad_id: int):
    """What ``generate`` returns (prompt columns, then the completions padded with ``pad_id`` after their
    stop token), sampled by :func:`alignlab.decoding.decode` from the global torch random state.

    When the batch is k copies of each of n prompts, either in a row (how GRPO and RLOO lay out their groups)
    or as k blocks of the n prompts (online DPO's two samples of each prompt), the n prompts are prefilled once
    each and decoded as k return sequences, which are then put back in the batch's order."""
    import torch

    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    prompts, masks, k, blocks = _groups(input_ids, attention_mask)
    with merged_lora(model) as sampler:
        decoded = decode(sampler, prompts, masks, max_new_tokens, temperature, top_p, None, stop_ids,
                         num_return_sequences=k, pad_id=pad_id)
    tokens = decoded.tokens  # prompt-major: row i * k + j is prompt i's j-th completion
    if blocks:  # the batch is block-major: row j * n + i
        tokens = tokens.view(prompts.shape[0], k, -1).transpose(0, 1).reshape(input_ids.shape[0], -1)
    return torch.cat([input_ids, tokens.to(input_ids.device)], dim=1)


def _groups(input_ids, attention_mask):
    """``(prompts, masks, k, blocks)``: the batch as k copies of each of its distinct rows, either consecutive
    (``blocks`` False: the first prompt k times, then the second) or as k blocks of all of them (``blocks`` True:
    every prompt, then every prompt again); ``(batch, mask, 1, False)`` when it is neither."""
    rows = input_ids.shape[0]
    for k in range(rows, 1, -1):
        if rows % k:
            continue
        firsts = input_ids[::k]
        if (input_ids.equal(firsts.repeat_interleave(k, dim=0))
                and attention_mask.equal(attention_mask[::k].repeat_interleave(k, dim=0))):
            return firsts, attention_mask[::k], k, False
        n = rows // k
        if input_ids.equal(input_ids[:n].repeat(k, 1)) and attention_mask.equal(attention_mask[:n].repeat(k, 1)):
            return input_ids[:n], attention_mask[:n], k, True
    return input_ids, attention_mask, 1, False
