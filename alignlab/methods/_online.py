"""Parts shared by the online methods (PPO, RLOO, GRPO, online DPO): they sample their own completions.

Every online method counts ``batch_size`` in *completions* per optimizer step, so the same batch means
the same amount of sampling and scoring for every method: PPO samples one completion per prompt,
RLOO/GRPO ``k`` per prompt, online DPO two.
"""

from __future__ import annotations

from alignlab.errors import AlignLabError
from alignlab.methods.base import Knob, Panel


def temperature_knob(default: float = 1.0) -> Knob:
    """Sampling temperature of the policy's rollouts."""
    return Knob("temperature", default, "Sampling temperature of the rollouts (1 = sample from the policy as is).",
                min=0.0, min_exclusive=True, max=2.0)


def generations_knob(default: int = 4) -> Knob:
    """k: completions sampled per prompt (RLOO, GRPO)."""
    return Knob("num_generations", default, "k: completions sampled per prompt; each is compared with the others "
                "of its group (batch_size x grad_accum must be a multiple of k).", kind="int", min=2, max=64)


def epsilon_knob() -> Knob:
    """The clipping ε of the probability ratio (PPO-style trust region)."""
    return Knob("epsilon", 0.2, "Clipping ε: the policy ratio is clipped to [1-ε, 1+ε] (matters with several "
                "updates per batch).", min=0.0, min_exclusive=True, max=1.0)


def check_groups(config) -> None:
    """The completions of one optimizer step must hold whole groups of k generations."""
    k = config.method_args["num_generations"]
    completions = config.batch_size * config.grad_accum
    if completions % k:
        raise AlignLabError(
            f"batch_size: got {config.batch_size} (x grad_accum {config.grad_accum} = {completions} completions per "
            f"step), expected a multiple of num_generations ({k}): each prompt needs its k completions in one step"
        )


def reward_functions(context) -> dict:
    """Trainer arguments of the methods TRL gives reward functions directly (RLOO, GRPO): the run's reward source."""
    return {"reward_funcs": [context.reward]}


LENGTH_PANEL = Panel("Completion length (tokens)", ("completions/mean_length",))
