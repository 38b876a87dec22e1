"""PPO for language models, written from the papers on transformers' Trainer: a file to read top to bottom.

RLHF's last stage maximises E[r(x, y)] − β·KL(π_θ(·|x) || π_ref(·|x)) over prompts x and completions y
sampled from the policy π_θ (Ziegler et al. 2019, arXiv:1909.08593, Eq. 2; Ouyang et al. 2022,
arXiv:2203.02155, Eq. 2). PPO (Schulman et al. 2017, arXiv:1707.06347) optimises it. One training *step*:

1. **Rollout.** Take ``per_device_train_batch_size × gradient_accumulation_steps`` prompts (chat template,
   left padding) and sample one completion each at ``temperature`` (the lab's engine, :mod:`alignlab.decoding`);
   a completion ends at its first stop token (EOS or another special token), which it keeps, and what follows
   is masked out. Score each (prompt, completion) text with the reward function: one number r(x, y) per
   completion.
2. **Per-token rewards.** Every completion token y_t is an action. Its reward is the KL penalty
   −β·(log π_old(y_t|·) − log π_ref(y_t|·)) (β = ``kl_coef``), and the last token also gets the score r(x, y)
   (Ziegler et al. 2019, Sec. 2.2; Huang et al. 2022, "The N implementation details of RLHF with PPO").
   The reference π_ref is the policy with its LoRA adapter switched off, or a frozen copy without LoRA.
   ``whiten_rewards`` divides the rewards by their spread over the batch (their mean is kept).
3. **Advantages by GAE** (Schulman et al. 2016, arXiv:1506.02438, Eq. 16): with values V(s_t) from the value
   model, δ_t = r_t + γ·V(s_{t+1}) − V(s_t) and A_t = Σ_k (γλ)^k δ_{t+k}, with V = 0 after the last token;
   the value targets are the returns R_t = A_t + V(s_t). The advantages are whitened over the batch.
4. **PPO epochs.** ``ppo_epochs`` times, shuffle the rollout and split it into ``num_mini_batches``
   mini-batches; each mini-batch is one optimizer update, its gradient accumulated over micro-batches of
   ``per_device_train_batch_size``. The loss of a micro-batch, averaged over its completion tokens, is
   the clipped surrogate (Schulman et al. 2017, Eq. 7), with ρ_t = π_θ(y_t|·) / π_old(y_t|·),

       L_policy = max(−A_t·ρ_t, −A_t·clip(ρ_t, 1 − ε, 1 + ε))            (ε = ``cliprange``)

   plus ``vf_coef`` times the clipped value loss (Huang et al. 2022, detail "value function loss clipping"),

       L_value = ½·max((V_θ − R_t)², (clip(V_θ, V_old − ε_v, V_old + ε_v) − R_t)²)   (ε_v = ``cliprange_value``).

With LoRA (PERL, Sidahmed et al. 2024) the policy and the value model each train their own adapter and the
reference costs no memory. Dropout stays off throughout (so ρ = 1 exactly at the first update, Huang et al.
2022), and the log-probabilities of policy and reference both come from logits divided by the temperature.

The trainer reuses transformers' Trainer for everything around the loop: its state and callbacks (a stop
request is ``control.should_training_stop``, a checkpoint ``control.should_save``), optimizer and learning-rate
schedule (stepped once per step, so ``max_steps`` and ``warmup_steps`` count rollout steps), logging and
trackers, and checkpoints ``checkpoint-N/`` in ``output_dir``: the policy (adapter or weights), the value model
in ``value_model/``, optimizer, scheduler, RNG and trainer state, so ``train(resume_from_checkpoint=...)``
continues a run. The prompt order is a fixed shuffle per pass over the data (seeded), so a resumed run reads
the prompts an uninterrupted one would. ``save_model`` saves the policy alone: the run's aligned model.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import Trainer, TrainingArguments
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_callback import ExportableState, TrainerState
from transformers.trainer_utils import TrainOutput

from alignlab import devices
from alignlab.decoding import decode, merged_lora
from alignlab.generation import render_prompt, stop_token_ids
from alignlab.metrics import ROLLOUT_KL, ROLLOUT_SCORE
from alignlab.reference import is_adapter_model

VALUE_MODEL_DIR = "value_model"  # the value model's folder inside a checkpoint


@dataclass
class PPOConfig(TrainingArguments):
    """TrainingArguments plus PPO's settings (defaults: the lab's knobs; γ and λ as Huang et al. 2022)."""

    kl_coef: float = field(default=0.03, metadata={"help": "β: weight of the per-token KL penalty to the reference."})
    cliprange: float = field(default=0.2, metadata={"help": "ε: the policy ratio is clipped to [1 − ε, 1 + ε]."})
    cliprange_value: float = field(default=0.2, metadata={"help": "How far a value prediction may move from the "
                                                                  "rollout's value per batch."})
    vf_coef: float = field(default=0.1, metadata={"help": "Weight of the value loss in the total loss."})
    ppo_epochs: int = field(default=4, metadata={"help": "Optimisation passes over each rollout batch."})
    num_mini_batches: int = field(default=1, metadata={"help": "Optimizer updates per pass over a rollout batch "
                                                               "(must divide gradient_accumulation_steps)."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature of the rollouts."})
    whiten_rewards: bool = field(default=False, metadata={"help": "Scale the per-token rewards by their spread "
                                                                  "over the batch."})
    gamma: float = field(default=1.0, metadata={"help": "GAE discount γ (1: no discount within a completion)."})
    lam: float = field(default=0.95, metadata={"help": "GAE λ: bias-variance trade-off of the advantages."})
    max_prompt_length: int = field(default=64, metadata={"help": "Prompt tokens kept (the last ones)."})
    max_completion_length: int = field(default=48, metadata={"help": "Most tokens sampled per completion."})

    def __post_init__(self):
        super().__post_init__()
        if self.gradient_accumulation_steps % self.num_mini_batches:
            raise ValueError(f"num_mini_batches: got {self.num_mini_batches}, expected a divisor of "
                             f"gradient_accumulation_steps ({self.gradient_accumulation_steps})")
        if self.temperature <= 0:
            raise ValueError(f"temperature: got {self.temperature}, expected a number > 0")


# --- the losses and estimators, as pure functions of tensors (completions along dim 1, ``mask`` 1 on tokens) --
def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the positions where ``mask`` is 1."""
    return (values * mask).sum() / mask.sum().clamp(min=1)


def whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """``values`` scaled to unit variance over the masked positions (and to mean 0 with ``shift_mean``)."""
    mean = masked_mean(values, mask)
    whitened = (values - mean) * torch.rsqrt(masked_mean((values - mean) ** 2, mask) + 1e-8)
    return (whitened if shift_mean else whitened + mean) * mask


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float,
        lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and returns (Schulman et al. 2016, Eq. 16), last token first.

    δ_t = r_t + γ·V_{t+1} − V_t and A_t = δ_t + γλ·A_{t+1}; past the end of a completion r = V = 0, so the
    last token's next value is 0. Returns ``(advantages, returns)`` with returns = advantages + values.
    """
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(rewards)
    running = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(rewards.shape[1])):
        next_value = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(running)
        running = rewards[:, t] + gamma * next_value - values[:, t] + gamma * lam * running
        advantages[:, t] = running
    return advantages * mask, (advantages + values) * mask


def clipped_policy_loss(logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor,
                        mask: torch.Tensor, cliprange: float) -> tuple[torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate, as a loss to minimise (Schulman et al. 2017, Eq. 7), and the fraction of tokens
    where the clip is active. Where it is (ρ beyond 1 ± ε on the side the advantage pushes to), the loss is
    constant in θ: those tokens give no gradient."""
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1 - cliprange, 1 + cliprange)
    return masked_mean(torch.maximum(unclipped, clipped), mask), masked_mean((clipped > unclipped).float(), mask)


def clipped_value_loss(values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor,
                       cliprange_value: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Half the larger of the squared errors of the new and of the clipped value prediction, and the fraction of
    tokens where the clipped one is larger."""
    clipped = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    unclipped_error, clipped_error = (values - returns) ** 2, (clipped - returns) ** 2
    return (0.5 * masked_mean(torch.maximum(unclipped_error, clipped_error), mask),
            masked_mean((clipped_error > unclipped_error).float(), mask))


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
    """log π(y_t|·) of each token under ``logits / temperature`` (the distribution the rollout sampled from)."""
    return torch.log_softmax(logits.float() / temperature, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


def completion_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, length: int) -> torch.Tensor:
    """The logits that predict the last ``length`` tokens of each (left-padded) row."""
    position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)  # as generate() numbers left-padded rows
    output = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                   logits_to_keep=length + 1, use_cache=False)
    return output.logits[:, :-1]


class PolicyAndValue(nn.Module):
    """The two trained networks as one module, so one optimizer, one ``accelerator.prepare`` (DDP) and one
    backward hold both. ``value_model`` is a sequence classifier (a PeftModel of one with LoRA): its backbone
    and its ``score`` head give a value at every position, not only at the last token."""

    def __init__(self, policy: nn.Module, value_model: nn.Module):
        super().__init__()
        self.policy, self.value_model = policy, value_model

    def forward(self, input_ids, attention_mask, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits predicting the last ``length`` tokens, and the value of the state before each of them."""
        logits = completion_logits(self.policy, input_ids, attention_mask, length)
        classifier = self.value_model.get_base_model() if hasattr(self.value_model, "get_base_model") \
            else self.value_model
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        hidden = getattr(classifier, classifier.base_model_prefix)(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False)
        values = classifier.score(hidden.last_hidden_state[:, -length - 1:-1]).squeeze(-1)
        return logits, values.float()


class PPOTrainer(Trainer):
    """PPO with a value model and a KL penalty to the reference; see the module docstring for the algorithm.

    ``train_dataset`` has a ``prompt`` column (strings, or chat message lists rendered with the tokenizer's
    chat template); ``reward_fn(prompts, completions)`` returns one score per completion text;
    ``value_model`` is a sequence classifier with one output (LoRA'd or not); ``peft_config`` gives the
    policy a LoRA adapter, and the reference is then the policy with it switched off. Without LoRA and
    without ``ref_model``, the reference is a frozen copy of the policy as it starts.
    """

    def __init__(self, model, args: PPOConfig, train_dataset, processing_class, reward_fn, value_model,
                 ref_model=None, peft_config=None, callbacks=None):
        if peft_config is not None:
            from peft import get_peft_model

            model = get_peft_model(model, peft_config)
        if ref_model is None and not is_adapter_model(model):
            ref_model = copy.deepcopy(model)  # the weights before any update
        self.ref_model = None if ref_model is None else ref_model.eval().requires_grad_(False)
        self.reward_fn = reward_fn
        super().__init__(model=PolicyAndValue(model, value_model), args=args, train_dataset=train_dataset,
                         processing_class=processing_class, callbacks=callbacks)
        if self.ref_model is not None:
            devices.move(self.ref_model, str(self.args.device))
        self.prompts = list(train_dataset["prompt"])
        self.prompt_ids = [processing_class(render_prompt(processing_class, prompt), add_special_tokens=False)
                           ["input_ids"][-args.max_prompt_length:] for prompt in self.prompts]
        self.stop_ids = stop_token_ids(model, processing_class)
        self._orders: dict[int, list[int]] = {}

    @property
    def policy(self):
        return self.model.policy

    @property
    def value_model(self):
        return self.model.value_model

    # --- the loop ------------------------------------------------------------------------------------------
    def train(self, resume_from_checkpoint: str | None = None, trial=None, **_) -> TrainOutput:
        """Run ``max_steps`` PPO steps (rollout, then ``ppo_epochs`` passes), from a checkpoint if given."""
        args = self.args
        if resume_from_checkpoint:  # the weights before the optimizer is made: it holds their parameters
            self._load_from_checkpoint(resume_from_checkpoint)
        prompts_per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps
        max_steps = args.max_steps if args.max_steps > 0 else math.ceil(
            args.num_train_epochs * len(self.prompts) / (prompts_per_step * self.accelerator.num_processes))
        self.state = TrainerState(stateful_callbacks=[callback for callback in [*self.callback_handler.callbacks,
                                                      self.control] if isinstance(callback, ExportableState)])
        self.state.compute_steps(args, max_steps)
        if resume_from_checkpoint:
            self.state = TrainerState.load_from_json(os.path.join(resume_from_checkpoint, TRAINER_STATE_NAME))
        self.state.train_batch_size = args.per_device_train_batch_size
        self.state.init_training_references(self, max_steps, args.num_train_epochs, trial)

        self.create_optimizer()
        model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        self.model_wrapped = model
        self.create_scheduler(num_training_steps=max_steps)
        if resume_from_checkpoint:
            self._load_optimizer_and_scheduler(resume_from_checkpoint)
            self._load_rng_state(resume_from_checkpoint)
        for name in ("model", "optimizer", "lr_scheduler"):
            setattr(self.callback_handler, name, getattr(self, name))
        self.model.eval()  # no dropout: the ratio is exactly 1 at the first update

        started, losses = time.time(), []
        self.control = self.callback_handler.on_train_begin(args, self.state, self.control)
        while self.state.global_step < max_steps and not self.control.should_training_stop:
            self.control = self.callback_handler.on_step_begin(args, self.state, self.control)
            metrics = self.ppo_step(model)
            losses.append(metrics["loss"])
            self.state.global_step += 1
            self.state.epoch = self.state.global_step * prompts_per_step * self.accelerator.num_processes / len(
                self.prompts)
            metrics["episode"] = self.state.global_step * prompts_per_step * self.accelerator.num_processes
            self.control = self.callback_handler.on_step_end(args, self.state, self.control)
            if self.control.should_log:
                self.log(metrics)
            if self.control.should_save:
                self._save_checkpoint(model, trial)
                self.control = self.callback_handler.on_save(args, self.state, self.control)
        self.control = self.callback_handler.on_train_end(args, self.state, self.control)
        return TrainOutput(self.state.global_step, sum(losses) / max(len(losses), 1),
                           {"train_runtime": time.time() - started})

    def ppo_step(self, model) -> dict[str, float]:
        """One step: a rollout batch, its PPO epochs and one learning-rate step; returns the step's metrics."""
        with torch.no_grad():
            batch, metrics = self.rollout(*self.next_prompts())
        metrics.update(self.optimise(model, batch))
        metrics["lr"] = self.lr_scheduler.get_last_lr()[0]
        self.lr_scheduler.step()
        names = sorted(metrics)  # every process's mean of each metric
        means = self.accelerator.reduce(torch.tensor([metrics[n] for n in names], device=self.args.device), "mean")
        return dict(zip(names, means.tolist()))

    def next_prompts(self) -> tuple[list, list[list[int]]]:
        """This process's prompts for the current step: the next ones of an endless stream that visits every
        prompt once per pass, in an order shuffled per pass with the seed (so a resumed run reads the same)."""
        count = self.args.per_device_train_batch_size * self.args.gradient_accumulation_steps
        first = (self.state.global_step * self.accelerator.num_processes + self.accelerator.process_index) * count
        picked = []
        for position in range(first, first + count):
            lap, offset = divmod(position, len(self.prompts))
            if lap not in self._orders:  # (only the current pass's order is kept)
                generator = torch.Generator().manual_seed(self.args.seed + lap)
                self._orders = {lap: torch.randperm(len(self.prompts), generator=generator).tolist()}
            picked.append(self._orders[lap][offset])
        return [self.prompts[i] for i in picked], [self.prompt_ids[i] for i in picked]

    # --- 1-3: rollout, rewards, advantages ----------------------------------------------------------------
    def rollout(self, prompts: list, prompt_ids: list[list[int]]) -> tuple[dict, dict[str, float]]:
        """Sample, score and evaluate completions; returns the tensors the PPO epochs need and the metrics."""
        args, device, pad = self.args, self.args.device, self.processing_class.pad_token_id
        width = max(len(ids) for ids in prompt_ids)
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in prompt_ids], device=device)
        prompt_mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompt_ids], device=device)
        # The lab's engine samples (LoRA folded in meanwhile); the log-probs PPO optimises come from the training
        # forward below, so the rollout stays exactly on-policy. Its random stream is drawn from the run's seeded one.
        generator = torch.Generator(device=device).manual_seed(int(torch.randint(2**62, (1,))))
        with merged_lora(self.policy):
            completions = decode(self.policy, input_ids, prompt_mask, args.max_completion_length, args.temperature,
                                 1.0, generator, self.stop_ids, pad_id=pad).tokens
        is_stop = torch.isin(completions, torch.tensor(self.stop_ids, device=device))
        mask = (is_stop.cumsum(-1) - is_stop.long()) == 0  # the tokens up to and including the first stop token
        completions = completions.masked_fill(~mask, pad)
        texts = self.processing_class.batch_decode(completions.masked_fill(is_stop, pad), skip_special_tokens=True)
        scores = torch.tensor(self.reward_fn(prompts, texts), dtype=torch.float32, device=device)

        sequences = torch.cat([input_ids, completions], dim=1)
        attention_mask = torch.cat([prompt_mask, mask.long()], dim=1)
        length, mask = completions.shape[1], mask.float()
        logprobs, reference_logprobs, values = [], [], []
        for rows in torch.split(torch.arange(len(prompts), device=device), args.per_device_train_batch_size):
            with self.accelerator.autocast():  # in micro-batches, like the PPO epochs: the same memory
                logits, part_values = self.model(sequences[rows], attention_mask[rows], length)
                with self._reference() as reference:
                    reference_logits = completion_logits(reference, sequences[rows], attention_mask[rows], length)
            logprobs.append(token_logprobs(logits, completions[rows], args.temperature))
            reference_logprobs.append(token_logprobs(reference_logits, completions[rows], args.temperature))
            values.append(part_values)
        logprobs, reference_logprobs = torch.cat(logprobs) * mask, torch.cat(reference_logprobs) * mask
        values = torch.cat(values) * mask

        kl = logprobs - reference_logprobs  # per token; its sum over a completion estimates KL(π || π_ref)
        rewards = -args.kl_coef * kl
        last = mask.sum(-1).long() - 1
        rewards[torch.arange(len(prompts), device=device), last] += scores
        if args.whiten_rewards:
            rewards = whiten(rewards, mask, shift_mean=False)
        advantages, returns = gae(rewards, values, mask, args.gamma, args.lam)
        advantages = whiten(advantages, mask)
        batch = dict(sequences=sequences, attention_mask=attention_mask, completions=completions, mask=mask,
                     logprobs=logprobs, values=values, advantages=advantages, returns=returns)
        metrics = {ROLLOUT_SCORE: scores.mean().item(), ROLLOUT_KL: kl.sum(-1).mean().item(),
                   "objective/entropy": (-logprobs).sum(-1).mean().item(),
                   "objective/non_score_reward": (-args.kl_coef * kl).sum(-1).mean().item(),
                   "completions/mean_length": mask.sum(-1).mean().item()}
        metrics["objective/rlhf_reward"] = metrics[ROLLOUT_SCORE] + metrics["objective/non_score_reward"]
        return batch, metrics

    @contextlib.contextmanager
    def _reference(self):
        """The reference model: the frozen copy, or the policy with its adapter switched off meanwhile."""
        if self.ref_model is not None:
            yield self.ref_model
        else:
            with self.policy.disable_adapter():
                yield self.policy

    # --- 4: the PPO epochs -----------------------------------------------------------------------------------
    def optimise(self, model, batch: dict) -> dict[str, float]:
        """``ppo_epochs`` shuffled passes over the rollout, one optimizer update per mini-batch; mean metrics."""
        args = self.args
        size = len(batch["sequences"])
        mini_batch = size // args.num_mini_batches
        micro_batches = math.ceil(mini_batch / args.per_device_train_batch_size)
        stats = defaultdict(list)
        for _ in range(args.ppo_epochs):
            order = torch.randperm(size, device=args.device)
            for mini in order.split(mini_batch):
                for rows in mini.split(args.per_device_train_batch_size):
                    loss, micro_stats = self.ppo_loss(model, {key: value[rows] for key, value in batch.items()})
                    self.accelerator.backward(loss / micro_batches)
                    for key, value in micro_stats.items():
                        stats[key].append(value)
                if args.max_grad_norm:
                    stats["grad_norm"].append(float(self.accelerator.clip_grad_norm_(model.parameters(),
                                                                                      args.max_grad_norm)))
                self.optimizer.step()
                self.optimizer.zero_grad()
        return {key: sum(values) / len(values) for key, values in stats.items()}

    def ppo_loss(self, model, batch: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """The clipped policy loss plus ``vf_coef`` × the clipped value loss on one micro-batch, and its stats."""
        args, mask = self.args, batch["mask"]
        with self.accelerator.autocast():
            logits, values = model(batch["sequences"], batch["attention_mask"], batch["completions"].shape[1])
        logprobs = token_logprobs(logits, batch["completions"], args.temperature)
        policy_loss, clipfrac = clipped_policy_loss(logprobs, batch["logprobs"], batch["advantages"], mask,
                                                    args.cliprange)
        value_loss, value_clipfrac = clipped_value_loss(values, batch["values"], batch["returns"], mask,
                                                        args.cliprange_value)
        loss = policy_loss + args.vf_coef * value_loss
        with torch.no_grad():
            log_ratio = (logprobs - batch["logprobs"]) * mask
            tempered = logits.float() / args.temperature
            entropy = torch.logsumexp(tempered, -1) - (torch.softmax(tempered, -1) * tempered).sum(-1)
            stats = {"loss": loss.item(), "loss/policy_avg": policy_loss.item(), "loss/value_avg": value_loss.item(),
                     "policy/clipfrac_avg": clipfrac.item(), "val/clipfrac_avg": value_clipfrac.item(),
                     "policy/approxkl_avg": (0.5 * masked_mean(log_ratio ** 2, mask)).item(),
                     "policy/entropy_avg": masked_mean(entropy, mask).item(),
                     "val/ratio": masked_mean(torch.exp(log_ratio), mask).item()}
        return loss, stats

    # --- saving and loading --------------------------------------------------------------------------------
    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        """The trained model is the policy: its adapter (or weights) and the tokenizer."""
        output_dir = output_dir or self.args.output_dir
        if self.args.should_save:
            self.policy.save_pretrained(output_dir)
            self.processing_class.save_pretrained(output_dir)

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False) -> None:
        """Save the policy; a checkpoint (transformers saves one with ``_internal_call``) keeps the value model
        in its ``value_model/`` folder too, to resume from."""
        super().save_model(output_dir, _internal_call)
        if _internal_call and self.args.should_save:
            self.value_model.save_pretrained(os.path.join(output_dir or self.args.output_dir, VALUE_MODEL_DIR))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        """Load the policy and the value model of a checkpoint (adapters, or full weights)."""
        for part, folder in ((self.policy, resume_from_checkpoint),
                             (self.value_model, os.path.join(resume_from_checkpoint, VALUE_MODEL_DIR))):
            if is_adapter_model(part):
                from peft import load_peft_weights, set_peft_model_state_dict

                set_peft_model_state_dict(part, load_peft_weights(folder, device=str(self.args.device)))
            else:
                super()._load_from_checkpoint(folder, model=part)
