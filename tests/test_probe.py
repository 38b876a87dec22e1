"""The reward/KL probe: exact log-probs under left padding, KL 0 at the reference, events and samples in a run."""

import json
import math

import pytest
import torch

from alignlab.config import RunConfig
from alignlab.drift import verdict
from alignlab.metrics import (
    PROBE_KL,
    PROBE_KL_RATE,
    PROBE_LENGTH,
    PROBE_LENGTH_RATIO,
    PROBE_REF_PPL,
    PROBE_REF_PPL_RATIO,
)
from alignlab.models import load_model, load_tokenizer, lora_config
from alignlab.panels import frontier_points
from alignlab.probe import measure, sequence_logprobs
from alignlab.reference import reference_of
from alignlab.rewards import get_reward
from alignlab.rundir import read_metrics, read_probe_samples
from alignlab.runner import start

PROMPTS = ["The film", "I went in with low expectations and the second half", "Honestly,"]


@pytest.fixture(scope="module")
def policy():
    """tiny-random with LoRA, its (tied) embeddings scaled up so next-token distributions are sharp:
    at random init they are nearly uniform and no change to the weights would show in the KL."""
    from peft import get_peft_model

    model = load_model("tiny-random")
    with torch.no_grad():
        model.get_input_embeddings().weight.mul_(30)
    return get_peft_model(model, lora_config())


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer("tiny-random")


def test_sequence_logprobs_are_the_same_with_left_padding(policy, tokenizer):
    """Batched, left-padded scoring must give each row what scoring it alone gives."""
    completion = torch.tensor([[1000, 2000, 3000]])
    alone = []
    for prompt in PROMPTS:
        ids = torch.tensor([tokenizer(prompt)["input_ids"]])
        full = torch.cat([ids, completion], dim=1)
        alone.append(sequence_logprobs(policy, full, torch.ones_like(full), torch.ones_like(completion)).item())
    tokenizer.padding_side = "left"
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    tokenizer.padding_side = "right"
    completions = completion.repeat(len(PROMPTS), 1)
    full = torch.cat([batch["input_ids"], completions], dim=1)
    mask = torch.cat([batch["attention_mask"], torch.ones_like(completions)], dim=1)
    batched = sequence_logprobs(policy, full, mask, torch.ones_like(completions))
    assert batched.tolist() == pytest.approx(alone, rel=1e-4)


def test_kl_is_zero_at_the_reference_and_grows_when_the_adapter_moves(policy, tokenizer):
    config = RunConfig(model="tiny-random")
    reward = get_reward("length:4")

    def probe():
        return measure(policy, lambda: reference_of(policy, config), tokenizer, PROMPTS, reward, 8, seed=3)

    first, again = probe(), probe()
    assert first.kl == pytest.approx(0.0, abs=1e-5)  # LoRA starts as a no-op
    assert [s["completion"] for s in first.samples] == [s["completion"] for s in again.samples]  # fixed seed
    assert 0 < first.length <= 8 and first.reward == pytest.approx(sum(s["reward"] for s in first.samples) / 3)
    with torch.no_grad():
        for name, parameter in policy.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.5)
    moved = probe()
    for name, parameter in policy.named_parameters():
        if "lora_B" in name:
            parameter.data.zero_()
    assert moved.kl > 1.0


def test_probe_logs_frontier_points_and_samples_for_a_reward_free_method(tiny):
    handle = start(RunConfig.from_dict({"method": "dpo", **tiny, "probe_every": 1}), background=False)
    assert handle.state == "finished", handle.error
    rows, _ = read_metrics(handle.run_dir)
    probes = [row for row in rows if "probe/kl" in row]
    assert [row["step"] for row in probes] == [0, 1, 2]
    assert probes[0]["probe/kl"] == pytest.approx(0.0, abs=1e-5)
    assert all({"probe/reward", "probe/length", "probe/seconds"} <= set(row) for row in probes)
    assert [point["step"] for point in frontier_points(rows)] == [0, 1, 2]
    samples = [json.loads(line) for line in (handle.run_dir / "probe_samples.jsonl").read_text().splitlines()]
    held_out = json.loads((handle.run_dir / "held_out.json").read_text())["prompts"]
    assert len(samples) == 3 * 3 and {sample["prompt"] for sample in samples} == set(held_out)  # 3 of 12 held out
    assert {"step", "prompt", "completion", "reward", "kl", "length", "ref_ppl"} <= set(samples[0])


def test_the_probe_records_drift_from_the_reference(tiny):
    """Reference perplexity, length and its perplexity against the step-0 probe (the reference's own samples), and
    the KL gained per step, in a real tiny-random run."""
    handle = start(RunConfig.from_dict({"method": "dpo", **tiny, "probe_every": 1, "learning_rate": 0.05}),
                   background=False)
    assert handle.state == "finished", handle.error
    rows, _ = read_metrics(handle.run_dir)
    probes = [row for row in rows if PROBE_KL in row]
    assert [row["step"] for row in probes] == [0, 1, 2]
    assert all(row[PROBE_REF_PPL] > 1 for row in probes)
    assert probes[0][PROBE_LENGTH_RATIO] == probes[0][PROBE_REF_PPL_RATIO] == 1.0 and PROBE_KL_RATE not in probes[0]
    for before, row in zip(probes, probes[1:]):
        assert row[PROBE_LENGTH_RATIO] == pytest.approx(row[PROBE_LENGTH] / probes[0][PROBE_LENGTH], rel=1e-5)
        assert row[PROBE_REF_PPL_RATIO] == pytest.approx(row[PROBE_REF_PPL] / probes[0][PROBE_REF_PPL], rel=1e-5)
        assert row[PROBE_KL_RATE] == pytest.approx(row[PROBE_KL] - before[PROBE_KL], abs=1e-5)  # one step apart
    samples = [sample for sample in read_probe_samples(handle.run_dir) if sample["step"] == 2]
    tokens = sum(sample["length"] for sample in samples)  # the run's perplexity pools the samples' tokens
    pooled = math.exp(sum(sample["length"] * math.log(sample["ref_ppl"]) for sample in samples) / tokens)
    assert probes[-1][PROBE_REF_PPL] == pytest.approx(pooled, rel=1e-4)
    said = verdict(rows)  # two steps of tiny-random: a line either way, from the run's own probes
    assert said is not None and (said.alarm or "(step 0 → 2)" in said.text)


def test_an_uncached_step_0_probe_waits_for_the_first_probe_and_measures_what_step_0_would(tiny, monkeypatch,
                                                                                            tmp_path):
    """With LoRA and a cold cache, training starts at once (the first loss row comes before any probe row) and the
    step-0 probe, taken on the reference at the first scheduled probe, equals the one taken before step 1."""
    from alignlab import probe, reference_cache

    def run(cache: str):
        monkeypatch.setattr(reference_cache, "cache_dir", lambda: tmp_path / cache)
        handle = start(RunConfig.from_dict({"method": "dpo", **tiny, "probe_every": 2}), background=False)
        assert handle.state == "finished", handle.error
        rows = read_metrics(handle.run_dir)[0]
        step_0 = [sample for sample in read_probe_samples(handle.run_dir) if sample["step"] == 0]
        return rows, step_0

    def kinds(rows):  # each metric row as (what wrote it, its step), in file order
        return [("probe" if PROBE_KL in row else "loss" if "loss" in row else "other", row["step"]) for row in rows]

    deferred, deferred_samples = run("a")
    order = kinds(deferred)
    assert order.index(("loss", 1)) < order.index(("probe", 0)) < order.index(("probe", 2))
    monkeypatch.setattr(probe, "DEFER_UNTRAINED", False)
    at_once, at_once_samples = run("b")
    order = kinds(at_once)
    assert order.index(("probe", 0)) < order.index(("loss", 1))
    first, second = (next(row for row in rows if PROBE_KL in row and row["step"] == 0) for rows in (deferred, at_once))
    for key in ("probe/reward", PROBE_LENGTH, PROBE_REF_PPL):
        assert first[key] == pytest.approx(second[key], rel=1e-5), key
    assert first[PROBE_KL] == pytest.approx(0.0, abs=1e-4) and second[PROBE_KL] == pytest.approx(0.0, abs=1e-4)
    assert [s["completion"] for s in deferred_samples] == [s["completion"] for s in at_once_samples]
