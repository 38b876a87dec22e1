"""GRPO over TRL's GRPOTrainer: group-relative advantages, PPO's clipped ratio, an optional KL term.

Shao et al. 2024 ("DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language
Models", Eq. 3) sample a group of k completions per prompt and use the reward standardised within
the group as every token's advantage, Â_i = (r_i - mean(r)) / std(r), inside the clipped surrogate
min(ρ Â, clip(ρ, 1-ε, 1+ε) Â). The KL to the reference is a separate loss term weighted by β, which
TRL sets to 0 by default (no reference model); with β > 0 the trainer logs ``kl``.
"""

from alignlab.methods._online import (
                                      LENGTH_PANEL,
                                      check_groups,
                                      epsilon_knob,
                                      generations_knob,
                                      reward_functions,
                                      temperature_knob,
)
from alignlab.methods.base import Knob, MethodSpec, Panel, register, trl_class
from alignlab.metrics import KL_ESTIMATE, ROLLOUT_REWARD
from alignlab.shared_prompt import shared_prompt_trainer

SPEC = register(
    MethodSpec(
        name="grpo",
        title="GRPO (group-relative policy optimisation)",
        summary="Samples k completions per prompt and scores each against its group's mean and spread; "
        "PPO's clipping keeps updates small. KL to the reference only if β > 0.",
        paper="Shao et al. 2024, DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language "
        "Models (arXiv:2402.03300)",
        data_format="prompt",
        config_class=trl_class("trl.GRPOConfig"),
        trainer_class=trl_class("trl.GRPOTrainer", wrap=shared_prompt_trainer),
        kl_knob="beta",
        reward_key=ROLLOUT_REWARD,
        kl_key=KL_ESTIMATE,  # logged when β > 0
        tiny_settings={"num_generations": 2, "beta": 0.1},
        order=80,
        knobs=(
            generations_knob(4),
            Knob("beta", 0.0, "β: weight of the KL-to-reference loss term (0 = no reference model, TRL's default).",
                 min=0.0, max=100.0),
            epsilon_knob(),
            temperature_knob(),
        ),
        lesson="the gain depends on the seed, and with β = 0 nothing holds the policy near the reference: it drifts "
        "far (a high KL, the reference finds its text less likely, and the requested opening is dropped)",
        panels=(LENGTH_PANEL, Panel("Clipped ratio", ("clip_ratio/region_mean",))),
        trainer_kwargs=reward_functions,
        validate=check_groups,
    )
)
