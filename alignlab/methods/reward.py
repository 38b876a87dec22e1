"""Reward modelling over TRL's RewardTrainer: step 2 of the RLHF pipeline.

A language model with a scalar head is trained on (x, y_w, y_l) with the Bradley-Terry loss
-log σ(r(x, y_w) - r(x, y_l)) (Ouyang et al. 2022, Eq. 1; Stiennon et al. 2020). The trained run
is usable later as the reward source ``reward-model:<run-id>``.
"""

from alignlab.methods.base import Knob, MethodSpec, Panel, register, trl_class

SPEC = register(
    MethodSpec(
        name="reward",
        title="Reward model",
        summary="Learns a scalar score r(x, y) that ranks chosen above rejected (Bradley-Terry).",
        paper="Ouyang et al. 2022, Training language models to follow instructions with human feedback "
        "(arXiv:2203.02155)",
        data_format="preference",
        config_class=trl_class("trl.RewardConfig"),
        trainer_class=trl_class("trl.RewardTrainer"),
        order=20,
        knobs=(
            Knob("center_rewards_coefficient", 0.0, "Penalty pushing mean reward toward 0 (0 = off).", min=0.0, max=1.0,
                 target="center_rewards_coefficient"),
        ),
        panels=(Panel("Preference accuracy", ("accuracy",)), Panel("Reward margin", ("margin",))),
        model_kind="sequence-classifier",
        uses_reference=False,
    )
)
