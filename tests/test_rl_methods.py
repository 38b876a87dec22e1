"""Online RL methods on tiny-random: each trains 2 steps, PPO uses LoRA twice and stops, faults fail cleanly."""

import json

import pytest

from alignlab.config import RunConfig
from alignlab.errors import AlignLabError
from alignlab.rewards import register_reward
from alignlab.rundir import read_metrics
from alignlab.runner import start

# The metric keys each method must log under TRL's names (GRPO logs kl only with beta > 0).
RUNS = {
    "ppo": ({}, {"objective/kl", "objective/scores", "loss/value_avg"}),
    "rloo": ({"num_generations": 2}, {"reward", "kl"}),
    "grpo": ({"num_generations": 2, "beta": 0.1}, {"reward", "kl"}),
    "online-dpo": ({"reward": "judge:tiny-random"}, {"rewards/margins", "objective/scores"}),
}


@pytest.mark.parametrize("method", RUNS)
def test_each_online_method_trains_on_prompts_from_pairs(method, tiny):
    """The pair file is turned into prompts; two steps log TRL's metrics and the probe's, and save an adapter."""
    extra, keys = RUNS[method]
    config = RunConfig.from_dict({"method": method, **tiny, "max_completion_length": 6, "probe_every": 10, **extra})
    handle = start(config, background=False)
    assert handle.state == "finished", handle.error
    status = json.loads((handle.run_dir / "status.json").read_text())
    assert status["state"] == "finished" and status["step"] == 2
    rows, _ = read_metrics(handle.run_dir)
    assert keys <= set().union(*rows)
    assert [row["step"] for row in rows if keys & set(row)] == [1, 2]
    assert [row["step"] for row in rows if "probe/kl" in row] == [0, 2]  # the probe sees the policy, not a wrapper
    assert (handle.run_dir / "model" / "adapter_config.json").exists()
    assert (handle.run_dir / "samples.jsonl").exists()


def _ppo_trainer(config, tmp_path):
    from alignlab.data import load_dataset
    from alignlab.models import load_model, load_tokenizer
    from alignlab.rewards import reward_for
    from alignlab.runner import RunHandle
    from alignlab.training import RunContext, build_trainer

    handle = RunHandle(config, "ppo-test", tmp_path)
    context = RunContext(config=config, run_dir=tmp_path, model=load_model(config.model),
                         tokenizer=load_tokenizer(config.model), reward=reward_for(config),
                         dataset=load_dataset(config.dataset, "prompt", "ppo"))
    return build_trainer(handle, context)


def test_ppo_trains_lora_adapters_on_policy_and_value_model(tiny, tmp_path):
    trainer = _ppo_trainer(RunConfig.from_dict({"method": "ppo", **tiny}), tmp_path)
    trainable = [name for name, p in trainer.model.named_parameters() if p.requires_grad]
    assert any(name.startswith("policy.") and "lora_" in name for name in trainable)
    assert any(name.startswith("value_model.") and "lora_" in name for name in trainable)
    # Only adapters (and the value head, which starts random) train; the base weights stay frozen.
    assert all("lora_" in name or "score" in name for name in trainable)
    assert trainer.ref_model is None  # the reference is the policy with its adapter disabled


def test_ppo_honours_stop(tiny):
    handle = start(RunConfig.from_dict({"method": "ppo", **tiny, "max_steps": 100, "max_completion_length": 4,
                                        "probe_every": 0}))
    handle.subscribe(lambda event: handle.stop() if event["step"] >= 1 else None)
    assert handle.wait(300) == "stopped", handle.error
    assert 1 <= handle.status["step"] < 100
    assert (handle.run_dir / "model" / "adapter_config.json").exists()


@pytest.mark.parametrize("method", ["ppo", "rloo"])
def test_nan_reward_fails_the_run_with_its_message(method, tiny):
    register_reward("always-nan", lambda prompts, completions: [float("nan")] * len(completions))
    extra = {"num_generations": 2} if method == "rloo" else {}
    config = RunConfig.from_dict({"method": method, **tiny, "reward": "always-nan", "probe_every": 0, **extra})
    handle = start(config, background=False)  # probe off: the trainer itself must meet the NaN
    status = json.loads((handle.run_dir / "status.json").read_text())
    assert status["state"] == "failed"
    assert "always-nan" in status["error"] and "NaN" in status["error"]


@pytest.mark.parametrize(("method", "values", "field"), [
    ("rloo", {"batch_size": 6, "num_generations": 4}, "batch_size"),
    ("grpo", {"batch_size": 2, "grad_accum": 3, "num_generations": 4}, "batch_size"),
    ("online-dpo", {"batch_size": 3}, "batch_size"),
    ("ppo", {"batch_size": 4, "whiten_rewards": True}, "whiten_rewards"),
    ("rloo", {"num_generations": 1}, "num_generations"),
])
def test_settings_that_cannot_fit_fail_when_the_config_is_made(method, values, field, tmp_path):
    with pytest.raises(AlignLabError, match=f"^{field}:"):
        RunConfig.from_dict({"method": method, "model": "tiny-random", "output_dir": str(tmp_path), **values})
    assert not any(tmp_path.iterdir())


def test_rl_method_without_prompts_and_dpo_without_pairs_say_how_to_convert(tmp_path):
    texts = tmp_path / "texts.jsonl"
    texts.write_text(json.dumps({"text": "a review"}) + "\n")
    with pytest.raises(AlignLabError, match="prompt"):
        start(RunConfig(method="rloo", model="tiny-random", dataset=str(texts), output_dir=str(tmp_path / "runs")))
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"prompt": "The film"}) + "\n")
    with pytest.raises(AlignLabError, match="make-prefs.*online method"):
        start(RunConfig(method="dpo", model="tiny-random", dataset=str(prompts), output_dir=str(tmp_path / "runs")))
    assert not (tmp_path / "runs").exists()
