"""The online trainers' rollouts go through the lab's decode engine (alignlab.rollouts): the same tokens as
transformers' generate where both are deterministic, one prefill per group of copies, transformers' own generate
for settings the engine does not implement, and real tiny-random RLOO, GRPO and online DPO runs that sample with it.
"""

from __future__ import annotations

import functools

import pytest
import torch
from transformers import GenerationConfig

from alignlab import rollouts
from alignlab.config import RunConfig
from alignlab.generation import render_prompt, stop_token_ids
from alignlab.models import load_model, load_tokenizer
from alignlab.rollouts import _groups, engine_settings, route_generate
from alignlab.runner import start

pytestmark = pytest.mark.timeout(300)
PROMPTS = ["Write a short movie review that begins with: The plot", "Write one sentence about rain."]


@pytest.fixture()
def tiny():
    model, tokenizer = load_model("tiny-random").eval(), load_tokenizer("tiny-random")
    tokenizer.padding_side = "left"
    return model, tokenizer


def grouped_batch(tokenizer, k: int):
    batch = tokenizer([render_prompt(tokenizer, p) for p in PROMPTS for _ in range(k)], return_tensors="pt",
                      padding=True, add_special_tokens=False)
    return batch["input_ids"], batch["attention_mask"]


def trl_like_config(model, tokenizer, **settings) -> GenerationConfig:
    """A generation config built the way TRL's online trainers build theirs."""
    return GenerationConfig(**{"max_new_tokens": 10, "do_sample": False, "pad_token_id": tokenizer.pad_token_id,
                               "eos_token_id": stop_token_ids(model, tokenizer), "top_k": 0, "top_p": 1.0,
                               "repetition_penalty": 1.0, "temperature": 1.0, **settings})


@pytest.mark.parametrize("layout", ["consecutive", "blocks"])
def test_greedy_rollouts_are_what_generate_writes_prompt_columns_and_padding_included(tiny, layout):
    model, tokenizer = tiny
    input_ids, mask = grouped_batch(tokenizer, 3)
    if layout == "blocks":  # every prompt, then every prompt again: how online DPO asks for its two samples
        order = [0, 3, 1, 4, 2, 5]
        input_ids, mask = input_ids[order], mask[order]
        assert _groups(input_ids, mask)[2:] == (3, True)
    config = trl_like_config(model, tokenizer)
    with torch.no_grad():
        expected = model.generate(input_ids=input_ids, attention_mask=mask, generation_config=config)
    route_generate(model)
    with torch.no_grad():
        routed = model.generate(input_ids=input_ids, attention_mask=mask, generation_config=config)
    assert routed.equal(expected)


def test_k_copies_of_a_prompt_are_prefilled_once_and_sampled_apart(tiny, monkeypatch):
    model, tokenizer = tiny
    input_ids, mask = grouped_batch(tokenizer, 4)
    prompts, masks, k, blocks = _groups(input_ids, mask)
    assert (k, blocks) == (4, False) and prompts.equal(input_ids[::4]) and masks.equal(mask[::4])
    order = [0, 4, 1, 5, 2, 6, 3, 7]  # A B A B A B A B: four blocks of both prompts (online DPO's layout)
    prompts, masks, k, blocks = _groups(input_ids[order], mask[order])
    assert (k, blocks) == (4, True) and prompts.equal(input_ids[[0, 4]]) and masks.equal(mask[[0, 4]])
    shuffled = [0, 4, 5, 1, 2, 6, 3, 7]  # A B B A ...: neither
    assert _groups(input_ids[shuffled], mask[shuffled])[2] == 1  # not in groups: decoded row by row

    prefilled = []
    forward = model.forward

    @functools.wraps(forward)  # the engine reads the forward's signature
    def counting(*args, **kwargs):
        prefilled.append(kwargs["input_ids"].shape)
        return forward(*args, **kwargs)

    monkeypatch.setattr(model, "forward", counting)
    monkeypatch.setenv("ALIGNLAB_SAMPLING", "exact")  # the model's own forward, so its calls can be counted
    route_generate(model)
    torch.manual_seed(0)
    with torch.no_grad():
        first = model.generate(input_ids=input_ids, attention_mask=mask,
                               generation_config=trl_like_config(model, tokenizer, do_sample=True))
    assert prefilled[0] == input_ids[::4].shape  # one prefill row per distinct prompt
    completions = first[:, input_ids.shape[1]:]
    assert len({tuple(row) for row in completions[:4].tolist()}) > 1  # the copies are sampled independently
    torch.manual_seed(0)
    with torch.no_grad():
        again = model.generate(input_ids=input_ids, attention_mask=mask,
                               generation_config=trl_like_config(model, tokenizer, do_sample=True))
    assert again.equal(first)  # seeded by the global random state, as transformers' generate is


@pytest.mark.parametrize("setting", [{"top_k": 50}, {"repetition_penalty": 1.2}, {"num_beams": 2},
                                     {"min_p": 0.1}, {"cache_implementation": "static"}])
def test_settings_the_engine_does_not_implement_go_to_transformers(tiny, setting):
    model, tokenizer = tiny
    input_ids, mask = grouped_batch(tokenizer, 1)
    base = {"input_ids": input_ids, "attention_mask": mask}
    assert engine_settings((), {**base, "generation_config": trl_like_config(model, tokenizer)}) is not None
    assert engine_settings((), {**base, "generation_config": trl_like_config(model, tokenizer, **setting)}) is None
    assert engine_settings((), {**base, "generation_config": trl_like_config(model, tokenizer),
                                "streamer": object()}) is None


@pytest.mark.parametrize("method", ["rloo", "grpo", "online-dpo"])
def test_online_trainers_sample_their_rollouts_with_the_engine(tmp_path, monkeypatch, method):
    calls = []
    engine_generate = rollouts.engine_generate

    def recording(model, input_ids, *args, **kwargs):
        calls.append(input_ids.shape[0])
        return engine_generate(model, input_ids, *args, **kwargs)

    monkeypatch.setattr(rollouts, "engine_generate", recording)
    extra = {"num_generations": 2} if method in ("rloo", "grpo") else {}
    config = RunConfig.from_dict({"method": method, "model": "tiny-random", "max_steps": 2, "batch_size": 2,
                                  "max_length": 48, "max_completion_length": 8, "probe_every": 0,
                                  "output_dir": str(tmp_path), **extra})
    handle = start(config, background=False)
    assert handle.state == "finished", handle.error
    assert len(calls) >= 2 and all(rows >= 2 for rows in calls)  # every optimizer step's rollouts
