"""The sampling engine (alignlab.decoding) and generation.sample on it: tiny-random; the real default model slow.

Tests that compare with ``model.generate`` token for token, or look inside :func:`merged_lora`, run on the
model's own forward (``exact``); the packed bf16 route has its own tests (``tests/test_packed_decoder.py``)."""

from __future__ import annotations

import pytest
import torch

from alignlab.decoding import decode, merged_lora
from alignlab.generation import SamplingSettings, render_prompt, sample, stop_token_ids
from alignlab.models import load_model, load_tokenizer
from alignlab.packed_decoder import sampling_mode
from alignlab.task import task_prompts

PROMPTS = ["I went in with low expectations and", [{"role": "user", "content": "Write a short review."}],
           "The second half drags, but"]


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-random").eval(), load_tokenizer("tiny-random")


@pytest.fixture
def exact():
    with sampling_mode("exact"):
        yield


def lora(model):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)  # init_lora_weights=False: a non-zero adapter, so merging it changes the answers
    return get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))


def generate_greedy(model, tokenizer, prompts, new_tokens: int, stops) -> list[list[int]]:
    """What ``model.generate`` greedy writes for each prompt, cut after its first stop token (kept)."""
    tokenizer.padding_side = "left"
    batch = tokenizer([render_prompt(tokenizer, p) for p in prompts], return_tensors="pt", padding=True,
                      add_special_tokens=False)
    with torch.no_grad():
        output = model.generate(**batch, max_new_tokens=new_tokens, do_sample=False, eos_token_id=stops,
                                pad_token_id=tokenizer.pad_token_id)
    rows = []
    for row in output[:, batch["input_ids"].shape[1]:].tolist():
        end = next((i + 1 for i, token in enumerate(row) if token in stops), len(row))
        rows.append(row[:end])
    return rows


def engine_greedy(model, tokenizer, prompts, new_tokens: int, stops) -> list[list[int]]:
    tokenizer.padding_side = "left"
    batch = tokenizer([render_prompt(tokenizer, p) for p in prompts], return_tensors="pt", padding=True,
                      add_special_tokens=False)
    decoded = decode(model, batch["input_ids"], batch["attention_mask"], new_tokens, temperature=0.0,
                     stop_ids=stops, pad_id=tokenizer.pad_token_id)
    return [row[:n] for row, n in zip(decoded.tokens.tolist(), decoded.lengths)]


def test_greedy_is_what_generate_writes(tiny, exact):
    model, tokenizer = tiny
    stops = stop_token_ids(model, tokenizer)
    assert engine_greedy(model, tokenizer, PROMPTS, 12, stops) == generate_greedy(model, tokenizer, PROMPTS, 12, stops)


def test_a_row_that_stops_leaves_the_batch_and_the_others_go_on(tiny, exact):
    model, tokenizer = tiny
    stops = stop_token_ids(model, tokenizer)
    plain = engine_greedy(model, tokenizer, PROMPTS, 8, [])
    stop = plain[0][0]  # make the first row's first token a stop token: that row ends at once, the others go on
    cut = engine_greedy(model, tokenizer, PROMPTS, 8, [stop])
    assert cut[0] == [stop] and any(len(row) == 8 for row in cut[1:])
    assert cut[1:] == [row[:row.index(stop) + 1] if stop in row else row for row in plain[1:]]
    assert cut == generate_greedy(model, tokenizer, PROMPTS, 8, [stop])
    assert stops  # the lab's stop ids exist for this tokenizer


def test_sample_is_seeded_prompt_major_and_leaves_the_global_random_state_alone(tiny):
    model, tokenizer = tiny
    settings = SamplingSettings(max_new_tokens=6, temperature=1.0, top_p=0.9, seed=5)
    state = torch.random.get_rng_state()
    first = sample(model, tokenizer, PROMPTS, settings, num_return_sequences=3, whole_sentences=False)
    assert torch.equal(state, torch.random.get_rng_state())
    assert first == sample(model, tokenizer, PROMPTS, settings, num_return_sequences=3, whole_sentences=False)
    assert len(first) == 9 and len(set(first[:3])) > 1  # three different draws for the first prompt
    other = sample(model, tokenizer, PROMPTS, SamplingSettings(max_new_tokens=6, temperature=1.0, top_p=0.9, seed=6),
                   num_return_sequences=3, whole_sentences=False)
    assert other != first


def test_k_sequences_share_one_prefill_and_come_prompt_major(tiny):
    model, tokenizer = tiny
    greedy = SamplingSettings(max_new_tokens=6, temperature=0.0)
    twice = sample(model, tokenizer, PROMPTS, greedy, num_return_sequences=2, whole_sentences=False)
    once = sample(model, tokenizer, PROMPTS, greedy, whole_sentences=False)
    assert twice == [text for text in once for _ in range(2)]


def test_lora_is_merged_for_sampling_and_the_weights_are_unchanged_after(tiny, exact):
    model, tokenizer = load_model("tiny-random").eval(), tiny[1]
    peft_model = lora(model)
    before = {name: tensor.clone() for name, tensor in peft_model.state_dict().items()}
    greedy = SamplingSettings(max_new_tokens=8, temperature=0.0)
    merged = sample(peft_model, tokenizer, PROMPTS, greedy, whole_sentences=False)
    assert all(torch.equal(before[name], tensor) for name, tensor in peft_model.state_dict().items())
    assert not any(getattr(m, "merged", False) or getattr(m, "disable_adapters", False)
                   for m in peft_model.modules() if hasattr(m, "lora_A"))
    stops = stop_token_ids(peft_model, tokenizer)
    unmerged = engine_greedy(peft_model, tokenizer, PROMPTS, 8, stops)  # adapter applied on the fly
    assert [tokenizer.decode([t for t in row if t not in stops], skip_special_tokens=True)
            for row in unmerged] == merged
    with peft_model.disable_adapter():
        base = sample(peft_model, tokenizer, PROMPTS, greedy, whole_sentences=False)
    assert base != merged  # the adapter matters, and disabling it is respected (nothing merged meanwhile)


def test_merged_lora_restores_the_weights_when_sampling_fails(tiny, exact):
    peft_model = lora(load_model("tiny-random").eval())
    before = {name: tensor.clone() for name, tensor in peft_model.state_dict().items()}
    with pytest.raises(RuntimeError, match="stop"), merged_lora(peft_model):
        assert any(not torch.equal(before[name], tensor) for name, tensor in peft_model.state_dict().items()
                   if "base_layer" in name)
        raise RuntimeError("stop")
    assert all(torch.equal(before[name], tensor) for name, tensor in peft_model.state_dict().items())


def test_logprobs_are_the_sampled_tokens_log_probabilities(tiny):
    model, tokenizer = tiny
    tokenizer.padding_side = "left"
    batch = tokenizer(["The film was", "A"], return_tensors="pt", padding=True)
    decoded = decode(model, batch["input_ids"], batch["attention_mask"], 5, generator=torch.Generator().manual_seed(0),
                     want_logprobs=True)
    sequences = torch.cat([batch["input_ids"], decoded.tokens], dim=1)
    mask = torch.cat([batch["attention_mask"], torch.ones_like(decoded.tokens)], dim=1)
    with torch.no_grad():
        logits = model(input_ids=sequences, attention_mask=mask,
                       position_ids=(mask.cumsum(-1) - 1).clamp(min=0)).logits[:, -6:-1]
    expected = torch.log_softmax(logits.float(), -1).gather(-1, decoded.tokens[..., None]).squeeze(-1)
    assert torch.allclose(decoded.logprobs, expected, atol=1e-4)


@pytest.mark.slow
def test_default_model_greedy_is_what_generate_writes(exact):
    model, tokenizer = load_model("smollm2-135m-instruct").eval(), load_tokenizer("smollm2-135m-instruct")
    prompts = task_prompts("eval")[:8]
    stops = stop_token_ids(model, tokenizer)
    assert engine_greedy(model, tokenizer, prompts, 48, stops) == generate_greedy(model, tokenizer, prompts, 48, stops)


def test_the_nucleus_is_the_same_whichever_candidate_set_holds_it():
    """Rows whose top 256 hold top-p, rows that need the top 1024, and a flat row that needs the whole sorted
    vocabulary, in one batch: each row's nucleus (token ids and probabilities) is the one a full sort gives."""
    from alignlab.decoding import _nucleus

    generator = torch.Generator().manual_seed(0)
    vocabulary = 5000
    logits = torch.randn(4, vocabulary, generator=generator)
    logits[0, :10] += 12.0  # peaked: a few tokens hold the mass
    logits[1] *= 2.5  # wider: past 256 tokens, within 1024
    logits[2] = 0.0  # flat: the nucleus is 90% of the vocabulary
    probs = torch.softmax(logits, dim=-1)
    top, order = _nucleus(probs, 0.9)
    assert top.shape[-1] == vocabulary  # the flat row needed the whole vocabulary; the others are padded
    widths = []
    for row in range(4):
        ranked, ids = probs[row].sort(descending=True)
        kept = (ranked.cumsum(-1) - ranked) < 0.9
        widths.append(int(kept.sum()))
        chosen = top[row] > 0
        assert sorted(order[row][chosen].tolist()) == sorted(ids[kept].tolist())
        assert torch.allclose(top[row][chosen].sort().values, ranked[kept].sort().values)
    assert widths[0] <= 256 < widths[1] <= 1024 < widths[2]
