"""alignlab's own PPO trainer (alignlab/methods/_ppo_trainer.py): its estimators and losses on hand-made tensors,
then real tiny-random runs through the runner: the metrics it logs, the adapters it trains, stop and resume."""

import json

import pytest
import torch

from alignlab import rundir, runner
from alignlab.config import RunConfig
from alignlab.methods._ppo_trainer import VALUE_MODEL_DIR, clipped_policy_loss, clipped_value_loss, gae, whiten
from alignlab.models import saved_kind

pytestmark = pytest.mark.timeout(300)

LOGGED = {"objective/scores", "objective/kl", "objective/entropy", "loss", "loss/policy_avg", "loss/value_avg",
          "policy/clipfrac_avg", "policy/approxkl_avg", "val/ratio", "lr", "episode"}


# --- the pieces, on tensors ---------------------------------------------------------------------------------
def test_gae_matches_a_hand_computed_example():
    """Row 1: γ = 1, λ = 0.5. δ = (0 + 0.2 − 0.5, 0 + 0.4 − 0.2, 1 + 0 − 0.4) = (−0.3, 0.2, 0.6), so
    A_2 = 0.6, A_1 = 0.2 + 0.5·0.6 = 0.5, A_0 = −0.3 + 0.5·0.5 = −0.05. Row 2 ends after two tokens (its third
    position holds junk that must not count); γ = 1, λ = 0.5: δ_1 = 1 − 0.3 = 0.7, δ_0 = 0.5 + 0.3 − 0.1 = 0.7,
    A_0 = 0.7 + 0.5·0.7 = 1.05."""
    rewards = torch.tensor([[0.0, 0.0, 1.0], [0.5, 1.0, 9.0]])
    values = torch.tensor([[0.5, 0.2, 0.4], [0.1, 0.3, 7.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=0.5)
    torch.testing.assert_close(advantages, torch.tensor([[-0.05, 0.5, 0.6], [1.05, 0.7, 0.0]]))
    torch.testing.assert_close(returns, torch.tensor([[0.45, 0.7, 1.0], [1.15, 1.0, 0.0]]))


def test_gae_with_lambda_one_is_the_return_to_go_minus_the_value():
    rewards, values = torch.tensor([[0.1, -0.2, 0.3, 2.0]]), torch.tensor([[0.4, 0.1, -0.3, 0.8]])
    mask = torch.ones(1, 4)
    advantages, returns = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    to_go = rewards.flip(-1).cumsum(-1).flip(-1)
    torch.testing.assert_close(advantages, to_go - values)
    torch.testing.assert_close(returns, to_go)


def test_clipped_policy_loss_gives_no_gradient_outside_the_clip_range():
    """ε = 0.2. A positive advantage stops pushing a ratio above 1.2, a negative one a ratio below 0.8; inside the
    range, or on the side that undoes a move, the gradient flows."""
    ratios = torch.tensor([1.5, 0.5, 1.1, 1.5, 0.5])
    advantages = torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0])
    logprobs = ratios.log().unsqueeze(0).requires_grad_()
    loss, clipfrac = clipped_policy_loss(logprobs, torch.zeros(1, 5), advantages.unsqueeze(0), torch.ones(1, 5), 0.2)
    loss.backward()
    gradient = logprobs.grad.squeeze(0)
    assert gradient[:2].tolist() == [0.0, 0.0]  # clipped: no gradient
    assert (gradient[2:] != 0).all()
    assert gradient[2] < 0 and gradient[3] > 0  # minimising the loss raises ρ where A > 0, lowers it where A < 0
    assert clipfrac.item() == pytest.approx(2 / 5)


def test_clipped_value_loss_takes_the_larger_error_and_masks_padding():
    values = torch.tensor([[1.0, 0.1, 5.0]], requires_grad=True)
    old, returns = torch.tensor([[0.0, 0.0, 0.0]]), torch.tensor([[1.0, 1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss, clipfrac = clipped_value_loss(values, old, returns, mask, 0.2)
    # token 0: clipped prediction 0.2 errs by 0.8 (> 0 unclipped); token 1: 0.1 is inside the clip, errs by 0.9
    assert loss.item() == pytest.approx(0.5 * (0.8 ** 2 + 0.9 ** 2) / 2)
    assert clipfrac.item() == pytest.approx(0.5)
    loss.backward()
    assert values.grad[0, 0] == 0 and values.grad[0, 1] != 0 and values.grad[0, 2] == 0


def test_whitening_keeps_the_mean_when_asked():
    values, mask = torch.tensor([[1.0, 2.0, 3.0, 100.0]]), torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    centred = whiten(values, mask)
    assert centred[0, :3].mean().item() == pytest.approx(0.0, abs=1e-6) and centred[0, 3] == 0
    assert centred[0, :3].std(unbiased=False).item() == pytest.approx(1.0, abs=1e-4)
    assert whiten(values, mask, shift_mean=False)[0, :3].mean().item() == pytest.approx(2.0)


# --- real runs on tiny-random -------------------------------------------------------------------------------
def _rows(run_dir):
    rows, _ = rundir.read_metrics(run_dir)
    return [row for row in rows if "loss/policy_avg" in row]


def test_the_value_model_starts_at_zero_so_the_first_advantages_are_the_returns():
    """The lab's value model (a classifier of the base model, LoRA'd) gives V = 0 everywhere before training: its
    new head starts at zero instead of at random values as large as the reward differences."""
    from types import SimpleNamespace

    from alignlab.methods.ppo import _ppo_parts

    config = RunConfig(method="ppo", model="tiny-random")
    config.validate()
    value_model = _ppo_parts(SimpleNamespace(config=config, reward=None))["value_model"]
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        values = value_model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    assert torch.count_nonzero(values) == 0
    assert any(p.requires_grad for name, p in value_model.named_parameters() if "score" in name)  # it still learns


@pytest.mark.parametrize("lora", [True, False])
def test_a_short_run_logs_the_ppo_metrics_and_saves_the_policy(tiny, lora):
    config = RunConfig.from_dict({"method": "ppo", **tiny, "lora": lora, "max_completion_length": 6,
                                  "probe_every": 0, "batch_size": 2, "grad_accum": 2})
    handle = runner.start(config, background=False)
    assert handle.state == "finished", handle.error
    rows = _rows(handle.run_dir)
    assert [row["step"] for row in rows] == [1, 2]
    assert LOGGED <= set(rows[0])
    assert [row["episode"] for row in rows] == [4, 8]  # batch_size x grad_accum prompts a step
    assert rows[0]["objective/kl"] == pytest.approx(0.0, abs=1e-5)  # the first rollout's policy is the reference
    assert all(0.0 <= row["policy/clipfrac_avg"] <= 1.0 and row["policy/approxkl_avg"] >= 0.0 for row in rows)
    assert rundir.has_adapter(handle.run_dir) == lora
    assert saved_kind(rundir.model_dir(handle.run_dir)) == "causal-lm"  # the policy, not the value model
    assert not (rundir.model_dir(handle.run_dir) / VALUE_MODEL_DIR).exists()


def test_with_lora_the_policy_and_the_value_model_train_separate_adapters(tiny, tmp_path):
    from alignlab.data import load_dataset
    from alignlab.models import load_model, load_tokenizer, policy_of
    from alignlab.rewards import reward_for
    from alignlab.training import RunContext, build_trainer

    config = RunConfig.from_dict({"method": "ppo", **tiny})
    handle = runner.RunHandle(config, "ppo-test", tmp_path)
    context = RunContext(config=config, run_dir=tmp_path, model=load_model(config.model),
                         tokenizer=load_tokenizer(config.model), reward=reward_for(config),
                         dataset=load_dataset(config.dataset, "prompt", "ppo"))
    trainer = build_trainer(handle, context)
    policy, value_model = policy_of(trainer.model), trainer.value_model
    assert policy.peft_config["default"].task_type == "CAUSAL_LM"
    assert value_model.peft_config["default"].task_type == "SEQ_CLS"
    policy_ids = {id(p) for p in policy.parameters() if p.requires_grad}
    value_ids = {id(p) for p in value_model.parameters() if p.requires_grad}
    assert policy_ids and value_ids and not policy_ids & value_ids
    optimised = {id(p) for group in trainer.create_optimizer().param_groups for p in group["params"]}
    assert optimised == policy_ids | value_ids  # one optimizer trains both adapters and the value head
    assert trainer.ref_model is None  # the reference is the policy with its adapter switched off


def test_a_stopped_run_resumes_from_its_checkpoint_step(tiny):
    """Stop after step 2 of 3: the checkpoint holds both adapters, the optimizer and the state; resuming runs
    step 3 only, as an uninterrupted run does (same prompts, RNG, weights and optimizer moments)."""
    settings = {"method": "ppo", **tiny, "max_steps": 3, "max_completion_length": 6, "probe_every": 0,
                "save_every": 0}
    uninterrupted = runner.start(RunConfig.from_dict(settings), background=False)
    assert uninterrupted.state == "finished", uninterrupted.error

    handle = runner.start(RunConfig.from_dict(settings))
    handle.subscribe(lambda event: handle.stop() if "loss" in event["metrics"] and event["step"] >= 1 else None)
    assert handle.wait(240) == "stopped", handle.error  # asked during step 1's log: stops at the end of step 2
    checkpoint, step = rundir.latest_checkpoint(handle.run_dir)
    assert step == 2
    assert json.loads((checkpoint / "adapter_config.json").read_text())["task_type"] == "CAUSAL_LM"
    assert json.loads((checkpoint / VALUE_MODEL_DIR / "adapter_config.json").read_text())["task_type"] == "SEQ_CLS"
    assert (checkpoint / "optimizer.pt").is_file() and (checkpoint / "scheduler.pt").is_file()

    resumed = runner.resume(handle.run_dir)
    assert resumed.wait(240) == "finished", resumed.error
    rows = _rows(handle.run_dir)
    assert [row["step"] for row in rows] == [1, 2, 3]
    assert rundir.read_status(handle.run_dir)["step"] == 3
    expected = {row["step"]: row for row in _rows(uninterrupted.run_dir)}
    for key in ("objective/scores", "objective/kl", "loss"):
        assert rows[2][key] == pytest.approx(expected[3][key], rel=1e-4, abs=1e-6), key
    assert not rundir.checkpoints_dir(handle.run_dir).exists()
