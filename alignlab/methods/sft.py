"""Supervised fine-tuning over TRL's SFTTrainer: step 1 of the RLHF pipeline.

Fine-tunes on demonstrations (prompt, completion) with the next-token loss on the completion
only, as in Ouyang et al. 2022 ("Training language models to follow instructions with human
feedback", Sec. 3.5). On the built-in task the demonstrations are the chosen completions.
"""

from alignlab.methods.base import MethodSpec, Panel, register, trl_class

SPEC = register(
    MethodSpec(
        name="sft",
        title="SFT",
        summary="Imitates good demonstrations with the ordinary next-token loss on the completion.",
        paper="Ouyang et al. 2022, Training language models to follow instructions with human feedback "
        "(arXiv:2203.02155)",
        data_format="sft",
        config_class=trl_class("trl.SFTConfig"),
        trainer_class=trl_class("trl.SFTTrainer"),
        order=10,
        panels=(Panel("Token accuracy", ("mean_token_accuracy",)),),
        uses_reference=False,
        trl_defaults={"completion_only_loss": True},
    )
)
