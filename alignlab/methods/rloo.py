"""RLOO over TRL's RLOOTrainer: REINFORCE with a leave-one-out baseline.

Ahmadian et al. 2024 ("Back to Basics: Revisiting REINFORCE Style Optimization for Learning from
Human Feedback in LLMs") treat the whole completion as one action. For k samples y_1..y_k of a
prompt x, each sample's advantage is its reward minus the mean reward of the other k-1:

    A_i = R(x, y_i) - 1/(k-1) * sum_{j != i} R(x, y_j),   R = r(x, y) - β KL(π || π_ref) (sequence level)

No value model: three models instead of PPO's four (policy, reference, reward; with LoRA the reference
is the policy with its adapter disabled). Any alignlab reward source works, TRL calls it directly.
"""

from alignlab.methods._online import (
                                      LENGTH_PANEL,
                                      check_groups,
                                      epsilon_knob,
                                      generations_knob,
                                      reward_functions,
                                      temperature_knob,
)
from alignlab.methods.base import MethodSpec, Panel, beta_knob, register, trl_class
from alignlab.metrics import KL_ESTIMATE, ROLLOUT_REWARD
from alignlab.shared_prompt import shared_prompt_trainer

SPEC = register(
    MethodSpec(
        name="rloo",
        title="RLOO (REINFORCE leave-one-out)",
        summary="Samples k completions per prompt and pushes up the ones that beat the mean reward of their "
        "siblings; the KL to the reference is subtracted from the reward. No value model.",
        paper="Ahmadian et al. 2024, Back to Basics: Revisiting REINFORCE Style Optimization for Learning from "
        "Human Feedback in LLMs (arXiv:2402.14740)",
        data_format="prompt",
        config_class=trl_class("trl.RLOOConfig"),
        trainer_class=trl_class("trl.RLOOTrainer", wrap=shared_prompt_trainer),
        kl_knob="beta",
        reward_key=ROLLOUT_REWARD,
        kl_key=KL_ESTIMATE,
        tiny_settings={"num_generations": 2},
        order=70,
        knobs=(
            generations_knob(4),
            beta_knob(0.05, "β: weight of the sequence-level KL penalty subtracted from the reward."),
            epsilon_knob(),
            temperature_knob(),
        ),
        lesson="visible in 12 steps at each of three seeds, each run within 3 minutes on 2 threads (each prompt of "
        "a group is scored once), at about 10 nats; the requested opening is kept at two seeds of three on "
        "this CPU and was dropped at all three on another: the reward asks only for sentiment, so only the KL "
        "holds the instruction, and at β 0.2 (which keeps it) nothing is gained",
        panels=(LENGTH_PANEL, Panel("Reward spread within groups", ("reward_std",))),
        trainer_kwargs=reward_functions,
        validate=check_groups,
    )
)
