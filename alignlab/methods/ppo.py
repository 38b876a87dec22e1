"""RLHF with PPO over TRL's experimental PPOTrainer: policy, value model, reward, reference.

Schulman et al. 2017 ("Proximal Policy Optimization Algorithms", Eq. 7) maximise the clipped surrogate
min(ρ_t A_t, clip(ρ_t, 1-ε, 1+ε) A_t), ρ_t = π(y_t|·)/π_old(y_t|·), with advantages A_t from a learned
value model (GAE). As in Ziegler et al. 2019 and Ouyang et al. 2022 (Eq. 2) the reward is the score
r(x, y) at the last token minus β·KL(π || π_ref) per token (β = ``kl_coef``).

TRL's PPO calls a reward *model* (an nn.Module with a scalar head) on token ids. alignlab wraps any
reward source in :class:`TextRewardModel`, which decodes each prompt and completion and scores the
text, so every source (sentiment, length, reward-model:<run>, judge) works with PPO, as with RLOO.
With LoRA (PERL, Sidahmed et al. 2024) the policy and the value model each get an adapter and the
reference is the policy with its adapter disabled.
"""

import copy
from types import SimpleNamespace

from alignlab.errors import AlignLabError
from alignlab.generation import render_prompt
from alignlab.methods._online import temperature_knob
from alignlab.methods.base import Knob, MethodSpec, Panel, register, trl_class
from alignlab.models import load_model, lora_config


def _stoppable(PPOTrainer: type) -> type:
    """PPOTrainer that honours a stop request after the current step."""
    from transformers import TrainerCallback

    class StopRequested(Exception):
        pass

    class RaiseOnStop(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if control.should_training_stop:
                raise StopRequested

    class StoppablePPOTrainer(PPOTrainer):
        """TRL's PPO loop ignores ``control.should_training_stop``; this ends it after the current step."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.add_callback(RaiseOnStop())  # last, after the callback that sets the flag

        def train(self):
            try:
                super().train()
            except StopRequested:
                self.control = self.callback_handler.on_train_end(self.args, self.state, self.control)

    return StoppablePPOTrainer


def _text_reward_model_class():
    import torch

    class TextRewardModel(torch.nn.Module):
        """A reward source in the shape TRL's PPO expects of a reward model.

        TRL calls ``model.backbone(input_ids, attention_mask, ...)`` then ``model.score(hidden)`` and reads
        the score at the last completion token. The backbone recovers each prompt (left padding, then one
        of the known tokenised prompts), decodes the completion and returns the text scores broadcast
        along the sequence; ``score`` passes them through.
        """

        base_model_prefix = "backbone"

        def __init__(self, reward, tokenizer, prompts_by_ids: dict[tuple, object]):
            super().__init__()
            self.reward, self.tokenizer, self.prompts_by_ids = reward, tokenizer, prompts_by_ids
            self.lengths = sorted({len(key) for key in prompts_by_ids}, reverse=True)

        def backbone(self, input_ids, attention_mask, **_):
            prompts, completions = [], []
            for ids, mask in zip(input_ids.tolist(), attention_mask.tolist()):
                start = mask.index(1) if 1 in mask else len(mask)
                length = next((n for n in self.lengths if tuple(ids[start:start + n]) in self.prompts_by_ids), None)
                if length is None:
                    raise AlignLabError("reward: PPO could not match a sampled sequence to its prompt")
                prompts.append(self.prompts_by_ids[tuple(ids[start:start + length])])
                kept = [t for t, m in zip(ids[start + length:], mask[start + length:]) if m]
                completions.append(self.tokenizer.decode(kept, skip_special_tokens=True))
            scores = torch.tensor(self.reward(prompts, completions), dtype=torch.float32, device=input_ids.device)
            return SimpleNamespace(hidden_states=(scores.view(-1, 1, 1).expand(-1, input_ids.shape[1], 1),))

        def score(self, hidden):
            return hidden

    return TextRewardModel


def _rollout_tokenizer(tokenizer):
    """Left padding for generation, and a pad token distinct from EOS when possible (TRL's PPO treats
    every pad id as padding, so pad == EOS would hide EOS and chat-template tokens)."""
    rollout = copy.deepcopy(tokenizer)
    rollout.padding_side = "left"
    if rollout.pad_token_id == rollout.eos_token_id and rollout.unk_token is not None \
            and rollout.unk_token_id != rollout.eos_token_id:
        rollout.pad_token = rollout.unk_token
    return rollout


def _ppo_parts(context) -> dict:
    """Tokenised prompts, the text reward model, the value model (LoRA'd) and the collator."""
    from datasets import Dataset
    from transformers import DataCollatorWithPadding


    config = context.config
    tokenizer = _rollout_tokenizer(context.tokenizer)
    max_prompt = config.max_length - config.max_completion_length
    prompts = context.dataset["prompt"]
    token_ids = [tokenizer(render_prompt(tokenizer, p), add_special_tokens=False)["input_ids"][-max_prompt:]
                 for p in prompts]
    # Keys as the reward model will see them: TRL replaces pad ids by 0 before calling it.
    prompts_by_ids = {tuple(0 if t == tokenizer.pad_token_id else t for t in ids): prompt
                      for ids, prompt in zip(token_ids, prompts)}
    dataset = Dataset.from_dict({"input_ids": token_ids})
    value_model = load_model(config.model, "sequence-classifier", config.trust_remote_code)
    value_model.config.pad_token_id = tokenizer.pad_token_id
    if config.lora:
        from peft import get_peft_model

        lora = lora_config(config.lora_r, config.lora_alpha, config.lora_dropout, config.lora_target_modules,
                           "sequence-classifier")
        value_model = get_peft_model(value_model, lora).base_model.model  # adapters injected in place
    reward_model = _text_reward_model_class()(context.reward, tokenizer, prompts_by_ids)
    return dict(train_dataset=dataset, processing_class=tokenizer, ref_model=None, reward_model=reward_model,
                value_model=value_model, data_collator=DataCollatorWithPadding(tokenizer))


def _episodes(config) -> dict:
    """TRL's PPO counts episodes (completions), not steps, and calls the completion length ``response_length``."""
    values = {"response_length": config.max_completion_length}
    if config.max_steps > 0:
        values["total_episodes"] = config.max_steps * config.batch_size * config.grad_accum
    return values


def _check(config) -> None:
    if config.method_args["whiten_rewards"] and config.batch_size * config.grad_accum < 8:
        raise AlignLabError(f"whiten_rewards: needs batch_size x grad_accum >= 8 to estimate the spread, got "
                            f"{config.batch_size * config.grad_accum}; raise batch_size or turn whiten_rewards off")


SPEC = register(
    MethodSpec(
        name="ppo",
        title="PPO (RLHF)",
        summary="Samples completions, scores them with the reward, and takes clipped policy-gradient steps guided "
        "by a learned value model, with a per-token KL penalty to the reference.",
        paper="Schulman et al. 2017, Proximal Policy Optimization Algorithms (arXiv:1707.06347); "
        "Ouyang et al. 2022 (arXiv:2203.02155)",
        data_format="prompt",
        config_class=trl_class("trl.experimental.ppo.PPOConfig"),
        trainer_class=trl_class("trl.experimental.ppo.PPOTrainer", wrap=_stoppable),
        kl_knob="kl_coef",
        order=60,
        knobs=(
            Knob("kl_coef", 0.05, "β: weight of the per-token KL penalty to the reference (higher = stay closer).",
                 min=0.0, max=100.0, log_scale=True),
            Knob("cliprange", 0.2, "Policy ratio clip ε: ratios outside [1-ε, 1+ε] give no gradient.",
                 min=0.0, min_exclusive=True, max=1.0),
            Knob("cliprange_value", 0.2, "Value clip: how far a value prediction may move per update.",
                 min=0.0, min_exclusive=True, max=10.0),
            Knob("vf_coef", 0.1, "Weight of the value-model loss.", min=0.0, max=10.0),
            Knob("ppo_epochs", 4, "Optimisation passes over each batch of samples.", kind="int", min=1, max=32,
                 target="num_ppo_epochs"),
            temperature_knob(),
            Knob("whiten_rewards", False, "Normalise rewards within the batch (needs batch >= 8).", kind="bool"),
        ),
        panels=(Panel("Value loss", ("loss/value_avg",)), Panel("Policy loss", ("loss/policy_avg",)),
                Panel("Clip fraction", ("policy/clipfrac_avg",))),
        measured="visible at one seed of two, and not in workshop time on a CPU: after 12 steps +0.56 ± 0.05 VADER "
        "over the reference at seed 42 (wins on 89%, KL ≈ 22 nats) but +0.26 ± 0.04 at seed 7 (wins on 73%); 12 steps "
        "took 18-23 minutes at 1 thread on a busy 2-core CPU (DPO's seed-7 run: 13 minutes in the same lane), because "
        "each step samples, scores, runs the value model and takes 4 optimisation epochs (`python -m bench.alignment "
        "--methods ppo`, "
        "docs/alignment.md). Use RLOO or GRPO for a live CPU demo, PPO on a GPU or as a take-home run.",
        trl_defaults={"stop_token": "eos", "num_sample_generations": 0, "num_mini_batches": 1},
        trainer_kwargs=_ppo_parts,
        trl_overrides=_episodes,
        validate=_check,
        resumable=False,  # TRL's PPO loop is its own: train() takes no checkpoint to resume from
    )
)
