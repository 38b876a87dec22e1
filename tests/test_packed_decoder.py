"""The engine's packed bf16 route (alignlab.packed_decoder) against the model's own forward: tiny-random, with
and without LoRA; the default model slow. Skipped where bf16 is not faster than fp32 (the route is off there)."""

from __future__ import annotations

import pytest
import torch

from alignlab import packed_decoder
from alignlab.decoding import decode, merged_lora, stream, token_logprobs
from alignlab.generation import render_prompt
from alignlab.models import load_model, load_tokenizer
from alignlab.task import task_prompts

pytestmark = pytest.mark.skipif(not packed_decoder.available(), reason="bf16 products are not faster than fp32 here")


def lora(model, seed: int = 0):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)  # a non-zero adapter, so it changes the answers
    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))


def prompts_batch(tokenizer, count: int = 4, new_tokens: int = 0):
    tokenizer.padding_side = "left"
    return tokenizer([render_prompt(tokenizer, p) for p in task_prompts("eval")[:count]], return_tensors="pt",
                     padding=True, add_special_tokens=False)


def sampled_rows(model, batch, new_tokens: int = 16):
    """Prompts with sampled continuations, as (input_ids, attention_mask), to compare distributions on."""
    tokens = decode(model, batch["input_ids"], batch["attention_mask"], new_tokens,
                    generator=torch.Generator().manual_seed(0)).tokens
    return (torch.cat([batch["input_ids"], tokens], 1),
            torch.cat([batch["attention_mask"], torch.ones_like(tokens)], 1))


def test_the_packed_route_draws_from_the_models_distribution_up_to_bf16_rounding():
    model, tokenizer = load_model("tiny-random").eval(), load_tokenizer("tiny-random")
    batch = prompts_batch(tokenizer)
    assert packed_decoder.decoder_for(model, {}) is not None
    assert packed_decoder.bf16_drift(model, *sampled_rows(model, batch)) < 1e-3
    adapted = lora(model).eval()
    drift = packed_decoder.bf16_drift(adapted, *sampled_rows(adapted, batch))
    with adapted.disable_adapter():  # the adapter moves the distribution far more than bf16 does
        base_rows = sampled_rows(adapted, batch)
    assert drift < 1e-3
    assert packed_decoder.bf16_drift(adapted, *base_rows) < 1e-3


def test_an_unmerged_adapter_gives_what_the_peft_model_computes_greedy():
    model, tokenizer = load_model("tiny-random").eval(), load_tokenizer("tiny-random")
    adapted = lora(model).eval()
    batch = prompts_batch(tokenizer)

    def greedy():
        with merged_lora(adapted) as sampler:
            return decode(sampler, batch["input_ids"], batch["attention_mask"], 10, temperature=0.0).tokens

    fast = greedy()
    with packed_decoder.sampling_mode("exact"):
        exact = greedy()
        with adapted.disable_adapter():
            base = greedy()
    assert torch.equal(fast, exact) and not torch.equal(fast, base)


def test_a_mixed_batch_runs_each_row_on_its_own_adapter():
    model, tokenizer = load_model("tiny-random").eval(), load_tokenizer("tiny-random")
    adapted = lora(model).eval()
    batch = prompts_batch(tokenizer, count=2)
    ids, mask = batch["input_ids"], batch["attention_mask"]

    def tokens(model, ids, mask, **kwargs):
        return [step.tokens for step in stream(model, ids, mask, 8, temperature=0.0, **kwargs)]

    assert packed_decoder.decoder_for(adapted, {"adapter_names": ["__base__", "default"]}) is not None
    mixed = tokens(adapted, ids, mask, adapter_names=["__base__", "default"])
    with adapted.disable_adapter():
        reference = tokens(adapted, ids[:1], mask[:1])
    aligned = tokens(adapted, ids[1:], mask[1:])
    assert [pair[0] for pair in mixed] == [row[0] for row in reference]
    assert [pair[1] for pair in mixed] == [row[0] for row in aligned]


def test_log_probabilities_asked_of_the_packed_route_are_the_models_own():
    model, tokenizer = load_model("tiny-random").eval(), load_tokenizer("tiny-random")
    adapted = lora(model).eval()
    batch = prompts_batch(tokenizer, count=3)
    with merged_lora(adapted) as sampler:
        decoded = decode(sampler, batch["input_ids"], batch["attention_mask"], 6, stop_ids=[],
                         generator=torch.Generator().manual_seed(1), num_return_sequences=2, want_logprobs=True)
    with packed_decoder.sampling_mode("exact"):
        rescored = token_logprobs(
            adapted, batch["input_ids"].repeat_interleave(2, 0), batch["attention_mask"].repeat_interleave(2, 0),
            decoded.tokens, decoded.lengths)
    assert decoded.logprobs.shape == decoded.tokens.shape
    assert torch.allclose(decoded.logprobs, rescored, atol=1e-5)


def test_the_base_weights_are_packed_once_until_one_changes():
    model = load_model("tiny-random").eval()
    adapted = lora(model).eval()
    base = packed_decoder.base_of(adapted)
    first = packed_decoder._weights(base)
    with torch.no_grad():
        for name, parameter in adapted.named_parameters():
            if "lora_B" in name:
                parameter.add_(1.0)  # training the adapter leaves the base weights packed as they are
    assert packed_decoder._weights(base) is first
    with torch.no_grad():
        base.model.norm.weight.mul_(2.0)  # a full fine-tune changes the weights in place: packed again
    assert packed_decoder._weights(base) is not first


def test_the_route_stays_off_where_it_does_not_apply(monkeypatch):
    model = load_model("tiny-random").eval()
    assert packed_decoder.decoder_for(model, {"output_attentions": True}) is None  # arguments it does not know
    with packed_decoder.sampling_mode("exact"):
        assert packed_decoder.decoder_for(model, {}) is None
    monkeypatch.setenv(packed_decoder.SAMPLING_ENV, "exact")
    assert packed_decoder.decoder_for(model, {}) is None
    with pytest.raises(ValueError, match="exact"):
        with packed_decoder.sampling_mode("quick"):
            pass


@pytest.mark.slow
def test_default_model_bf16_drift_is_far_below_what_training_moves():
    """On the default model the packed route's next-token distributions are within 0.01 nats per token of
    fp32's (measured 0.002); a DPO run at the lab's defaults moves the policy ~0.2 nats per token."""
    model, tokenizer = load_model("smollm2-135m-instruct").eval(), load_tokenizer("smollm2-135m-instruct")
    batch = prompts_batch(tokenizer, count=6)
    assert packed_decoder.bf16_drift(model, *sampled_rows(model, batch, 32)) < 0.01


def test_the_step_zero_probe_cache_key_names_the_route():
    """A step-0 probe cached from one route is not read back by the other: they draw different tokens."""
    from types import SimpleNamespace

    from alignlab.config import RunConfig
    from alignlab.probe import ProbeCallback

    model = load_model("tiny-random").eval()
    probe = SimpleNamespace(config=RunConfig(model="tiny-random"), prompts=["a prompt"],
                            reward=SimpleNamespace(name="sentiment"))
    fast = ProbeCallback._untrained_key(probe, model)
    with packed_decoder.sampling_mode("exact"):
        assert packed_decoder.route_name(model) == "model-forward"
        exact = ProbeCallback._untrained_key(probe, model)
    assert packed_decoder.route_name(model) == "packed-bf16"
    assert fast and exact and fast != exact
    assert ProbeCallback._untrained_key(probe, model) == fast


def test_an_adapter_on_the_output_layer_keeps_the_models_own_forward():
    from peft import LoraConfig, get_peft_model

    adapted = get_peft_model(load_model("tiny-random").eval(), LoraConfig(r=4, target_modules=["q_proj", "lm_head"]))
    assert packed_decoder.decoder_for(adapted, {}) is None  # the route would read lm_head without its adapter
    assert packed_decoder.route_name(adapted) == "model-forward"


def test_a_mixed_batch_goes_on_when_the_adapters_rows_have_finished():
    """The chat decodes the reference and the aligned answer in one batch; when the aligned answer ends first, its
    row leaves the batch and the reference's goes on alone, as a batch of the reference's row alone would."""
    model, tokenizer = load_model("tiny-random").eval(), load_tokenizer("tiny-random")
    adapted = lora(model).eval()
    batch = prompts_batch(tokenizer, count=2)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    token, grown = torch.tensor([[5]]), torch.cat([mask[:1], torch.ones(1, 1, dtype=mask.dtype)], 1)

    def next_logits(names, finished: bool):
        decoder = packed_decoder.decoder_for(adapted, {"adapter_names": names})
        cache = decoder.new_cache(len(names), ids.shape[1] + 1)
        decoder.forward(ids[:len(names)], mask[:len(names)], positions[:len(names)], cache, names)
        if finished:
            cache.batch_select_indices(torch.tensor([0]))  # the aligned row ended
        return decoder.forward(token, grown, positions[:1, -1:] + 1, cache, ["__base__"])

    assert torch.allclose(next_logits(["__base__", "default"], finished=True), next_logits(["__base__"], False))
