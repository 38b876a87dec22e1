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
so each step uses batch_size / 2 prompts; the method's default is 16 (8 fresh pairs a step, twice the lab's batch),
with TRL's β 0.1: at the lab's 8 completions and β 0.03 twelve steps saw 48 pairs and the gain was not visible
(docs/alignment.md, "The online methods at their defaults").
"""

from alignlab.errors import AlignLabError
from alignlab.methods._online import temperature_knob
from alignlab.methods.base import Knob, MethodSpec, Panel, beta_knob, register, trl_class
from alignlab.metrics import ROLLOUT_KL, ROLLOUT_SCORE
from alignlab.shared_prompt import shared_prompt_pairs_trainer


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
        trainer_class=trl_class("trl.experimental.online_dpo.OnlineDPOTrainer", wrap=shared_prompt_pairs_trainer),
        kl_knob="beta",
        reward_key=ROLLOUT_SCORE,
        kl_key=ROLLOUT_KL,
        order=90,
        knobs=(
            beta_knob(0.1, "β: inverse temperature of DPO's implicit reward; higher stays nearer the reference "
                           "(TRL's default; 0.03 drifted to 24-30 nats without a visible gain, see the Learn card)."),
            Knob("loss_type", "sigmoid", "sigmoid = DPO loss, ipo = IPO loss on the online pairs.", kind="choice",
                 choices=("sigmoid", "ipo")),
            temperature_knob(),
        ),
        lesson="at its defaults (8 prompts, 16 completions a step, TRL's β 0.1) 12 steps see 96 fresh pairs and the "
        "gain is visible at three seeds on each of two CPUs, at 8-18 nats, in about 4 minutes on 2 threads, keeping "
        "the requested opening at one seed of three: the reward is VADER alone, and dropping a negative opening "
        "is its cheapest gain. At the lab's batch of 8 with β 0.03 "
        "(the defaults before) it was not visible, and drifted further (docs/alignment.md); the IPO loss gained "
        "nothing at β 0.1. "
        "The AI annotator (reward judge) scores each answer alone by how much likelier the judge model finds it "
        "after a request for the instruction, so the order of a pair cannot sway it; it tells tone and wording, "
        "not facts or whether the answer kept a format such as the requested opening (docs/judge.md)",
        panels=(Panel("Reward margin (implicit)", ("rewards/margins",)),
                Panel("Annotator score margin", ("objective/scores_margin",))),
        trainer_kwargs=_annotator,
        trl_overrides=_prompts_per_step,
        validate=_pairs,
        run_defaults={"batch_size": 16},
    )
)
