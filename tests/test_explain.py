"""The metric explainer (alignlab.explain) on the metric rows of a real tiny-random DPO run."""

from __future__ import annotations

import json
import math

import pytest

from alignlab.config import RunConfig
from alignlab.explain import explain, markdown, start_loss
from alignlab.rundir import read_metrics
from alignlab.runner import start

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def dpo_rows(tmp_path_factory):
    """The training rows of a 3-step tiny-random DPO run (TRL's own logged names and values)."""
    folder = tmp_path_factory.mktemp("explain")
    pairs = folder / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"Review {i}: the film", "chosen": " was wonderful and moving.",
                                         "rejected": " was dull and awful."}) + "\n" for i in range(12)))
    config = RunConfig.from_dict({"method": "dpo", "model": "tiny-random", "dataset": str(pairs), "max_steps": 3,
                                  "batch_size": 2, "max_length": 48, "max_completion_length": 8, "probe_every": 0,
                                  "beta": 0.1, "sft_weight": 0.0,  # plain DPO: the loss starts at ln 2
                                  "output_dir": str(folder / "runs")})
    handle = start(config, background=False)
    assert handle.state == "finished", handle.error
    rows, _ = read_metrics(handle.run_dir)
    return config, [row for row in rows if "rewards/chosen" in row]


def by_title(points):
    return {point.title: point.text for point in points}


def test_the_first_step_is_explained_as_a_loss_still_at_ln_2(dpo_rows):
    config, rows = dpo_rows
    first = rows[0]
    assert first["loss"] == pytest.approx(math.log(2), abs=1e-4) and first["rewards/margins"] == 0  # TRL's own
    said = by_title(explain("dpo", config.method_args, rows[:1]))
    assert "ln 2 ≈ 0.693" in said["Loss at 0.693 (ln 2)"]
    assert f"still there at step 1: loss {first['loss']:.4f} (margin +0.000)" in said["Loss at 0.693 (ln 2)"]
    assert "chosen +0.000, rejected +0.000" in said["Chosen and rejected rewards"] and "β = 0.1" in \
        said["Chosen and rejected rewards"]
    assert "0% at step 1" in said["Accuracy"] and "A tie counts as wrong" in said["Accuracy"]


def test_later_steps_are_explained_with_the_runs_own_numbers(dpo_rows):
    config, rows = dpo_rows
    first, last = rows[0], rows[-1]
    said = by_title(explain("dpo", config.method_args, rows))
    assert f"chosen {last['rewards/chosen']:+.3f}, rejected {last['rewards/rejected']:+.3f}" in \
        said["Chosen and rejected rewards"]
    assert f"{last['rewards/margins']:+.3f} at step {last['step']}" in said["Margin"]
    recent = sum(row["rewards/accuracies"] for row in rows[-5:]) / len(rows[-5:])
    assert f"{last['rewards/accuracies']:.0%} at step {last['step']}, {recent:.0%} over the last" in said["Accuracy"]
    loss = said["Loss at 0.693 (ln 2)"]
    if last["loss"] < math.log(2) - 0.005:
        assert f"has left it: loss {last['loss']:.4f} at step {last['step']}" in loss
    coin = -math.log(1 / (1 + math.exp(-last["rewards/margins"])))
    assert f"= {coin:.3f}" in loss and coin <= last["loss"] + 1e-4  # the mean margin's loss: a lower bound (convex)
    falls = said["Chosen reward falls while the margin grows"]
    assert falls.startswith("That is normal: the loss sees only the margin")
    fell, grew = last["rewards/chosen"] < first["rewards/chosen"], last["rewards/margins"] > first["rewards/margins"]
    assert ("This run does it" in falls) == (fell and grew)
    assert f"{first['logps/chosen']:.1f} → {last['logps/chosen']:.1f} nats" in falls


def test_a_chosen_reward_falling_while_the_margin_grows_is_called_normal_with_the_numbers(dpo_rows):
    config, rows = dpo_rows
    last = {**rows[-1], "rewards/chosen": -0.4, "rewards/rejected": -0.9, "rewards/margins": 0.5}
    falls = by_title(explain("dpo", config.method_args, [rows[0], last]))["Chosen reward falls while the margin grows"]
    assert f"This run does it: chosen +0.000 → -0.400 while the margin grew +0.000 → +0.500 (step 1 → {last['step']})" \
        in falls


def test_only_dpo_family_runs_with_rewards_are_explained(dpo_rows):
    config, rows = dpo_rows
    assert explain("ppo", {}, rows) is None and explain("sft", {}, rows) is None
    assert explain("dpo", config.method_args, [{"step": 1, "loss": 0.7}]) is None  # no rewards logged yet
    assert "Loss at 1" in by_title(explain("dpo", {"loss_type": "hinge", "beta": 0.1}, rows))
    assert "reference" in by_title(explain("simpo", {"beta": 2.0, "loss_type": "simpo", "simpo_gamma": 1.0}, rows))[
        "Chosen and rejected rewards"]
    assert markdown(explain("dpo", config.method_args, rows)).startswith("**Chosen and rejected rewards.** ")
    assert markdown(None) == ""


def test_a_loss_above_ln_2_is_pairs_ranked_the_wrong_way(dpo_rows):
    config, rows = dpo_rows
    worse = {**rows[-1], "loss": 0.7883, "rewards/margins": 0.632}  # a real SmolLM2 run's step 12 (β 0.5)
    loss = by_title(explain("dpo", config.method_args, [rows[0], worse]))["Loss at 0.693 (ln 2)"]
    assert "loss is above it: 0.7883" in loss and "ranks the wrong way" in loss
    assert "−log σ(+0.632) = 0.426" in loss


def test_the_zero_margin_losses():
    assert start_loss("dpo", {"loss_type": "sigmoid"})[0] == pytest.approx(0.6931, abs=1e-4)
    assert start_loss("simpo", {"loss_type": "simpo", "beta": 2.0, "simpo_gamma": 1.0})[0] == pytest.approx(1.3133,
                                                                                                          abs=1e-4)
    assert start_loss("kto", {"beta": 0.1})[0] == 0.5 and start_loss("orpo", {"beta": 1.0}) is None


def test_a_loss_with_the_chosen_likelihood_term_is_not_read_as_stuck_at_ln_2(tmp_path):
    """DPO's defaults add the chosen answer's likelihood (sft_weight 0.5): the explainer says why the loss starts
    above ln 2 instead of calling the run stuck or wrong."""
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"Review {i}: the film", "chosen": " was wonderful and moving.",
                                         "rejected": " was dull and awful."}) + "\n" for i in range(12)))
    config = RunConfig.from_dict({"method": "dpo", "model": "tiny-random", "dataset": str(pairs), "max_steps": 2,
                                  "batch_size": 2, "max_length": 48, "max_completion_length": 8, "probe_every": 0,
                                  "output_dir": str(tmp_path / "runs")})
    assert config.method_args["sft_weight"] > 0  # the defaults
    handle = start(config, background=False)
    assert handle.state == "finished", handle.error
    rows = [row for row in read_metrics(handle.run_dir)[0] if "rewards/chosen" in row]
    assert rows[0]["loss"] > math.log(2) + 0.1  # the likelihood term on top of ln 2
    said = by_title(explain("dpo", config.method_args, rows))
    assert "Loss at 0.693 (ln 2)" not in said and start_loss("dpo", config.method_args) is None
    text = said["Loss: DPO plus the chosen answer's likelihood"]
    assert f"was {rows[0]['loss']:.4f} at step 1" in text and "α = 0.5" in text
