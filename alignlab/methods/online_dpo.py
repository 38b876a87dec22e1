"""Online DPO with an AI annotator, over TRL's experimental OnlineDPOTrainer.

Guo et al. 2024 ("Direct Language Model Alignment from Online AI Feedback", OAIF, Algorithm 1): for
each prompt, sample two responses from the *current* policy, let an annotator pick the better one, and
take a DPO step (Rafailov et al. 2023, Eq. 7) on that fresh pair:

    L = -log σ(β [log π(y_w|x)/π_ref(y_w|x) - log π(y_l|x)/π_ref(y_l|x)])

TRL no longer ships LLM judges, so the annotator is alignlab's reward source. The AI annotator,
``--reward judge[:<model>]``, scores each response alone from the judge model's own token probabilities (its
likelihood of the response under a request for ``judge_instruction`` against one for ``judge_opposite``,
:meth:`alignlab.judge.Judge.contrast`), so it has no position bias by construction; the higher score wins.
``judge-pairwise`` asks the paper's pairwise question in both orders instead, and any other source
(``sentiment``, ``reward-model:<run>``) picks the higher-scoring response. ``batch_size`` counts completions,
so each step uses batch_size / 2 prompts.
"""

from alignlab.errors import AlignLabError
from alignlab.methods._online import temperature_knob
from alignlab.methods.base import Knob, MethodSpec, Panel, beta_knob, register, trl_class
from alignlab.metrics import ROLLOUT_KL, ROLLOUT_SCORE


def _annotator(context) -> dict:
    return {"reward_funcs": [context.reward.pairwise()]}


def _pairs(config) -> None:
    if config.batch_size % 2:
        raise AlignLabError(f"batch_size: got {config.batch_size}, expected an even number >= 2 for online-dpo "
                            "(it counts completions: two per prompt)")


def _prompts_per_step(config) -> dict:
    """Two completions per prompt; TRL calls the completion length ``max_new_tokens``."""
    return {"per_device_train_batch_size": config.batch_size // 2, "max_new_tokens": config.max_completion_length}


SPEC = register(
    MethodSpec(
        name="online-dpo",
        title="Online DPO (AI feedback)",
        summary="Samples two answers per prompt from the current policy, lets the reward source or an LLM judge "
        "pick the better one, and takes a DPO step on that fresh pair.",
        paper="Guo et al. 2024, Direct Language Model Alignment from Online AI Feedback (arXiv:2402.04792)",
        data_format="prompt",
        config_class=trl_class("trl.experimental.online_dpo.OnlineDPOConfig"),
        trainer_class=trl_class("trl.experimental.online_dpo.OnlineDPOTrainer"),
        kl_knob="beta",
        reward_key=ROLLOUT_SCORE,
        kl_key=ROLLOUT_KL,
        order=90,
        knobs=(
            beta_knob(0.03, "β: inverse temperature of DPO's implicit reward; higher stays nearer the reference "
                            "(TRL's default is 0.1; 0.03 here, as measured in the Learn card)."),
            Knob("loss_type", "sigmoid", "sigmoid = DPO loss, ipo = IPO loss on the online pairs.", kind="choice",
                 choices=("sigmoid", "ipo")),
            temperature_knob(),
        ),
        lesson="at these defaults (β 0.03, 4 prompts a step) 12 steps see only 48 fresh pairs and the gain is not "
        "visible at three seeds (+0.17 to +0.21 VADER); twice the prompts a step (--batch-size 16) with TRL's β 0.1 "
        "is: +0.41, +0.52 and +0.51 at seeds 42, 7 and 1, at 8-18 nats, keeping the requested opening at seed 42 "
        "only (docs/alignment.md); the IPO loss gained nothing at β 0.1. "
        "The AI annotator (reward judge) scores each answer alone by how much likelier the judge model finds it "
        "after a request for the instruction, so the order of a pair cannot sway it; it tells tone and wording, "
        "not facts or whether the answer kept a format such as the requested opening (docs/judge.md)",
        panels=(Panel("Reward margin (implicit)", ("rewards/margins",)),
                Panel("Annotator score margin", ("objective/scores_margin",))),
        trainer_kwargs=_annotator,
        trl_overrides=_prompts_per_step,
        validate=_pairs,
    )
)
