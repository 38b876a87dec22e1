"""NaN or Inf fails the run, naming the step and the metric (issue 11, item 5): a NaN loss, a model that cannot be
sampled at the first probe, a NaN reward; nothing is saved from weights that gave them."""

import pytest

from alignlab import rundir
from alignlab.config import RunConfig
from alignlab.runner import start


# --- 5: NaN or Inf fails the run, naming the step and the metric -------------------------------------------
@pytest.fixture(scope="module")
def nan_model(tmp_path_factory):
    """tiny-random with one NaN weight (and the tokenizer), saved as a local model folder."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from alignlab.models import tiny_model_path

    source, target = tiny_model_path(), tmp_path_factory.mktemp("nan-model")
    model = AutoModelForCausalLM.from_pretrained(source)
    with torch.no_grad():
        model.model.layers[0].mlp.down_proj.weight[0, 0] = float("nan")
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return str(target)


def test_a_nan_loss_fails_the_run_naming_the_step_and_is_logged_as_nan_not_zero(nan_model, tiny):
    handle = start(RunConfig(**{**tiny, "model": nan_model, "probe_every": 0}), background=False)
    assert handle.state == "failed" and handle.error.startswith("loss: got nan at step 1, expected a finite number")
    assert rundir.read_status(handle.run_dir)["error"] == handle.error
    rows, _ = rundir.read_metrics(handle.run_dir)
    assert [(row["step"], row["loss"]) for row in rows] == [(1, None)]  # TRL's filter would have logged 0.0
    assert not rundir.has_model(handle.run_dir)  # NaN weights are no result


def test_a_model_that_cannot_be_sampled_fails_at_the_first_probe(nan_model, tiny):
    handle = start(RunConfig(**{**tiny, "model": nan_model, "probe_every": 1}), background=False)
    assert handle.state == "failed" and handle.error.startswith("probe/reward: no completion could be sampled at "
                                                                "step 0"), handle.error
    assert not rundir.has_model(handle.run_dir)


def test_a_nan_reward_fails_the_run_naming_the_step(tiny):
    from alignlab.rewards import register_reward

    register_reward("nan-at-times", lambda prompts, completions: [float("nan")] + [0.5] * (len(completions) - 1))
    handle = start(RunConfig.from_dict({"method": "grpo", **tiny, "num_generations": 2, "reward": "nan-at-times",
                                        "probe_every": 0}), background=False)
    assert handle.state == "failed"
    assert handle.error.startswith("reward: source 'nan-at-times' returned NaN or inf (nan) for 1 of ")
    assert ", at step 1; the run stops there" in handle.error and not rundir.has_model(handle.run_dir)
