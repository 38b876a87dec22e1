"""The reward/KL probe: one point on the reward-vs-KL frontier every N steps, for every method.

The DPO paper (Rafailov et al. 2023, Sec. 6.1 and Fig. 2) compares methods by the reward they reach
against their KL divergence from the reference policy. Each method logs its own, incomparable
quantities (DPO's implicit rewards, PPO's per-token KL at its own temperature), so the probe measures
the same two things the same way for every run: every ``probe_every`` steps it samples one
completion per fixed held-out prompt with a fixed seed, at temperature 1, and logs

- ``probe/reward``: mean reward of the completions under the run's reward source,
- ``probe/kl``: mean over samples of sum_t log π(y_t|x, y_<t) / π_ref(y_t|x, y_<t), the sequence-level
  Monte-Carlo estimate of KL(π || π_ref) (unbiased because y is sampled from π itself),
- ``probe/length``: mean completion length in tokens, and ``probe/seconds``: what the probe cost,
- ``probe/reward_se`` and ``probe/kl_se``: standard errors of the two means over the prompts, so a
  curve can show how far a move is beyond noise (the plots draw them as a band).
- ``probe/follow`` (with ``probe/follow_se``): the share of the completions that followed their prompt's
  instruction (:mod:`alignlab.follow`; the built-in task's: began with the requested opening), where the run's
  check can tell for any prompt; each probe sample records its ``followed``.
- ``probe/ref_ppl``: the reference model's perplexity of the completions (exp of the negative log-likelihood per
  token pooled over the samples, as :mod:`alignlab.fluency` measures it at eval; from the reference log-probs the
  KL needs, so free), with each sample's ``ref_ppl``; and the drift from the reference read against the step-0
  probe (whose policy is the reference): ``probe/length_ratio``, ``probe/ref_ppl_ratio`` and ``probe/kl_rate``
  (:func:`alignlab.drift.drift_metrics`).

A completion ends at the first stop token (:func:`alignlab.generation.stop_token_ids`).

The reference is the same weights with the LoRA adapter disabled (a frozen copy without LoRA).

The step-0 probe measures the untrained policy, which *is* the reference: its result is cached across runs
(:mod:`alignlab.reference_cache`), and on a miss with LoRA it is deferred, so that training starts at once and
the first curve point comes from step 1 instead of after a probe. Since the base weights never change under LoRA,
the reference (adapter off) sampled at the first scheduled probe gives what step 0 would have: the same samples,
reward and length, and a KL of zero up to rounding. It is recorded as step 0 just before that probe (not given to
the experiment trackers, which expect steps in order).
Samples go to the run directory (:func:`alignlab.rundir.append_probe_samples`). In a run of several
processes the main one probes alone, unless the weights are sharded (FSDP, ZeRO-3): then every process
samples, together, and the main one records and writes (:class:`alignlab.distributed.Sampling`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from transformers import TrainerCallback

from alignlab import reference_cache, rundir
from alignlab.decoding import decode, merged_lora, token_logprobs
from alignlab.drift import drift_metrics
from alignlab.follow import FollowCheck, followed, share
from alignlab.generation import render_prompt, stop_token_ids
from alignlab.metrics import (
    PROBE_FOLLOW,
    PROBE_KL,
    PROBE_LENGTH,
    PROBE_REF_PPL,
    PROBE_REWARD,
    NonFiniteMetric,
    se_key,
)
from alignlab.models import policy_of
from alignlab.packed_decoder import route_name
from alignlab.reference import frozen_reference, is_adapter_model, reference_of
from alignlab.reference_cache import weights_identity
from alignlab.stats import mean_se
from alignlab.tracking import report_probe

DEFER_UNTRAINED = True  # a LoRA run's uncached step-0 probe waits for the first scheduled probe (module docstring)

if TYPE_CHECKING:
    from alignlab.run_contract import TrainingRun

PROBE_PROMPTS = 32
SAMPLER = "alignlab.decoding"  # in the step-0 cache key: a probe cached from another sampler drew another stream
MEASURES = 2  # in the step-0 cache key too: raised when a probe measures more (2: the reference's perplexity)


@dataclass
class ProbeResult:
    """One probe: the logged means and the per-sample rows."""

    reward: float
    kl: float
    length: float
    samples: list[dict]
    reward_se: float = 0.0
    kl_se: float = 0.0
    follow: float | None = None  # the share of completions that followed their instruction, None if none was checked
    follow_se: float | None = None
    ref_ppl: float | None = None  # the reference's perplexity of the completions, per token

    def metrics(self) -> dict[str, float]:
        """The logged means with their standard errors; ``probe/follow`` only where a completion was checked."""
        metrics = {PROBE_REWARD: self.reward, PROBE_KL: self.kl, PROBE_LENGTH: self.length,
                   se_key(PROBE_REWARD): self.reward_se, se_key(PROBE_KL): self.kl_se}
        if self.ref_ppl is not None:
            metrics[PROBE_REF_PPL] = self.ref_ppl
        if self.follow is not None:
            metrics.update({PROBE_FOLLOW: self.follow, se_key(PROBE_FOLLOW): self.follow_se})
        return metrics

    def checked(self, check: FollowCheck | None) -> ProbeResult:
        """This result with each sample's ``followed`` (True, False or None, see :mod:`alignlab.follow`) and the
        share that followed, from ``check``; the same result without one."""
        if check is None:
            return self
        answers = followed(check, [sample["prompt"] for sample in self.samples],
                           [sample["completion"] for sample in self.samples])
        samples = [{**sample, "followed": answer} for sample, answer in zip(self.samples, answers)]
        mean, se = share(answers) or (None, None)
        return dataclasses.replace(self, samples=samples, follow=mean, follow_se=se)


def sequence_logprobs(model, input_ids, attention_mask, completion_mask):
    """Summed log-probability of each row's completion (the last ``completion_mask.shape[1]`` tokens, the mask a
    run of ones from each completion's start), by :func:`alignlab.decoding.token_logprobs`."""
    completion_length = completion_mask.shape[1]
    return token_logprobs(model, input_ids[:, :-completion_length], attention_mask[:, :-completion_length],
                          input_ids[:, -completion_length:], completion_mask.sum(-1).tolist()).sum(-1)


def _summed_logprobs(logits, tokens, mask):
    import torch

    return (torch.log_softmax(logits, dim=-1).gather(-1, tokens).squeeze(-1) * mask).sum(-1)


def measure(model, reference_context, tokenizer, prompts: list, reward, max_new_tokens: int, seed: int,
            synced_gpus: bool = False) -> ProbeResult:
    """Sample from ``model`` on ``prompts`` (seeded, temperature 1) and score reward, KL and length.

    Sampled by the lab's engine (:func:`alignlab.decoding.decode`), which also returns the policy's log-probs.

    ``reference_context`` is a zero-argument callable returning a context manager that yields the
    reference model (e.g. ``lambda: reference_of(model, config)``). ``synced_gpus``: every process of a run
    with sharded weights samples together (see :mod:`alignlab.distributed`).
    """
    import torch

    device = next(model.parameters()).device
    was_training, side = model.training, tokenizer.padding_side
    model.eval()
    tokenizer.padding_side = "left"
    try:
        batch = tokenizer([render_prompt(tokenizer, p) for p in prompts], return_tensors="pt", padding=True,
                          add_special_tokens=False).to(device)
        stops = stop_token_ids(model, tokenizer)
        if synced_gpus:
            completion, logprobs = _generate_synced(model, tokenizer, batch, max_new_tokens, seed, stops)
        else:  # the policy's log-probs come from the sampling logits (unprocessed, temperature 1): no second pass
            with merged_lora(model):
                decoded = decode(model, batch["input_ids"], batch["attention_mask"], max_new_tokens, 1.0, 1.0,
                                 torch.Generator(device=device).manual_seed(seed), stops,
                                 pad_id=tokenizer.pad_token_id or 0, want_logprobs=True)
            completion, logprobs = decoded.tokens, decoded.logprobs.sum(-1)
        is_eos = torch.isin(completion, torch.tensor(stops, device=device))
        completion_mask = ((is_eos.cumsum(-1) - is_eos.long()) == 0).long()  # up to and including the first EOS
        sequences = torch.cat([batch["input_ids"], completion], dim=1)
        attention_mask = torch.cat([batch["attention_mask"], completion_mask], dim=1)
        with reference_context() as reference:
            reference_logprobs = sequence_logprobs(reference, sequences, attention_mask, completion_mask)
    finally:
        tokenizer.padding_side = side
        model.train(was_training)
    lengths = completion_mask.sum(-1).tolist()
    texts = [tokenizer.decode(row[:n], skip_special_tokens=True) for row, n in zip(completion, lengths)]
    rewards = reward(prompts, texts)
    kls = (logprobs - reference_logprobs).tolist()
    reference_nll = (-reference_logprobs).tolist()
    samples = [{"prompt": p, "completion": t, "reward": r, "kl": k, "length": n, "ref_ppl": perplexity(nll, n)}
               for p, t, r, k, n, nll in zip(prompts, texts, rewards, kls, lengths, reference_nll)]
    (reward_mean, reward_se), (kl_mean, kl_se) = mean_se(rewards), mean_se(kls)
    return ProbeResult(reward_mean, kl_mean, sum(lengths) / len(lengths), samples, reward_se, kl_se,
                       ref_ppl=perplexity(sum(reference_nll), sum(lengths)))


def perplexity(nll: float, tokens: int) -> float | None:
    """exp(negative log-likelihood per token): a model's perplexity of ``tokens`` tokens it gives ``nll`` nats in
    all (None for no token, infinite past a float's range).

    >>> perplexity(0.0, 5), round(perplexity(2 * math.log(4), 2), 6), perplexity(1.0, 0)
    (1.0, 4.0, None)
    """
    if not tokens:
        return None
    try:
        return round(math.exp(nll / tokens), 6)
    except OverflowError:  # over ~709 nats a token: a broken model's, logged as infinite (the metric file's None)
        return math.inf


def _generate_synced(model, tokenizer, batch, max_new_tokens: int, seed: int, stops: list[int]):
    """Completions and their summed log-probs from ``model.generate`` with ``synced_gpus`` (sharded weights)."""
    import torch

    device = batch["input_ids"].device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
        torch.manual_seed(seed)
        output = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=True, temperature=1.0,
                                top_p=1.0, top_k=0, repetition_penalty=1.0, pad_token_id=tokenizer.pad_token_id,
                                eos_token_id=stops, return_dict_in_generate=True, output_logits=True,
                                synced_gpus=True)
    completion = output.sequences[:, batch["input_ids"].shape[1]:]
    is_eos = torch.isin(completion, torch.tensor(stops, device=device))
    mask = ((is_eos.cumsum(-1) - is_eos.long()) == 0).long()
    return completion, _summed_logprobs(torch.stack(output.logits, dim=1).float(), completion.unsqueeze(-1), mask)


class ProbeCallback(TrainerCallback):
    """Runs :func:`measure` at the start, every ``config.probe_every`` steps and at the end of training,
    writing ``{run_id, step, time, metrics}`` to the run's metrics file and its bus (``handle.record``), and
    giving the metrics to the run's experiment trackers (``trackers``, set once the trainer exists; see
    :func:`alignlab.tracking.report_probe`)."""

    def __init__(self, handle: TrainingRun, context, num_prompts: int = PROBE_PROMPTS):
        self.handle = handle
        self.context = context  # its sampling is known once the trainer exists
        self.config = context.config
        self.tokenizer = context.tokenizer
        self.reward = context.reward
        self.check = context.follow_check  # did a completion follow its prompt's instruction (alignlab.follow)
        self.prompts = handle.held_out.prompts[:num_prompts]  # recorded when the run started
        self._frozen_reference = None
        self._last_step: int | None = None
        self.trackers: list = []  # the trainer's tracker callbacks (alignlab.training.build_trainer sets them)
        self.recorded: dict | None = None  # the metrics of the last probe this process recorded
        self.deferred = False  # the step-0 probe waits for the first scheduled one (DEFER_UNTRAINED)

    def _reference_context(self, model):
        if is_adapter_model(model):
            return lambda: reference_of(model, self.config)
        if self._frozen_reference is None:  # without LoRA: load the base weights once, not every probe
            self._frozen_reference = frozen_reference(self.config.model, model, self.config.trust_remote_code)
        return lambda: contextlib.nullcontext(self._frozen_reference)

    def _untrained_key(self, policy) -> str | None:
        """Cache key of the step-0 probe: the policy is the reference then (see alignlab.reference_cache)."""
        import hashlib


        identity = weights_identity(policy)
        if identity is None:
            return None
        settings = [identity, self.prompts, self.config.seed, self.config.max_completion_length, self.reward.name,
                    self.config.judge_instruction, self.config.judge_opposite, PROBE_PROMPTS, SAMPLER,
                    route_name(policy), MEASURES]
        return hashlib.sha256(json.dumps(settings, default=str).encode()).hexdigest()[:32]

    def _cached_untrained(self, policy) -> tuple[str | None, dict | None]:
        """The step-0 probe's cache key and its cached result (None when missing or not cacheable)."""
        key = self._untrained_key(policy) if not self.context.sampling.together else None
        return key, (reference_cache.load(key, kind="probe") if key else None)

    def _measure(self, policy, as_reference: bool) -> ProbeResult:
        """:func:`measure` the policy, or with ``as_reference`` the reference (the adapter off), which the untrained
        policy equals."""
        sampling = self.context.sampling
        with sampling.whole_parameters():
            if not as_reference:
                return measure(policy, self._reference_context(policy), self.tokenizer, self.prompts, self.reward,
                               self.config.max_completion_length, self.config.seed, synced_gpus=sampling.together)
            with reference_of(policy, self.config) as reference:
                return measure(reference, lambda: contextlib.nullcontext(reference), self.tokenizer, self.prompts,
                               self.reward, self.config.max_completion_length, self.config.seed)

    def run(self, model, step: int, untrained: bool = False, as_reference: bool = False) -> ProbeResult:
        """Probe ``model`` now and publish the result as the event of ``step``.

        ``untrained``: the policy still equals the reference (before the first step), so a cached
        result of the same base weights, prompts and settings is reused instead of sampling again.
        ``as_reference``: sample the reference (the LoRA adapter off) for the deferred step-0 probe.
        """

        policy = policy_of(model)
        started = time.perf_counter()
        key, cached = self._cached_untrained(policy) if untrained else (None, None)
        if cached is not None:
            result = ProbeResult(**cached)
        else:
            try:
                result = self._measure(policy, as_reference)
            except RuntimeError as error:  # torch: "probability tensor contains either `inf`, `nan` or ..."
                if "nan" not in str(error):
                    raise
                raise NonFiniteMetric(f"{PROBE_REWARD}: no completion could be sampled at step {step}, the model's "
                                      "next-token probabilities being NaN or infinite; the run stops there and its "
                                      "weights are not saved", step) from error
            except NonFiniteMetric as error:  # the reward source's
                raise NonFiniteMetric(f"probe/{error}, at step {step}; the run stops there and its weights are not "
                                      "saved", step) from error
            if key:
                reference_cache.store(key, dataclasses.asdict(result), kind="probe")
        result = result.checked(self.check)
        elapsed = time.perf_counter() - started
        self._last_step = step
        if not self.handle.is_writer:  # another process of a sharded run: it sampled along, the main one writes
            return result
        metrics = result.metrics()
        earlier = [{"step": event["step"], **event["metrics"]} for event in self.handle.history]
        self.recorded = {**metrics, **drift_metrics(earlier, metrics, step), "probe/seconds": round(elapsed, 3)}
        self.handle.record(step, self.recorded)  # file, then bus
        rundir.append_probe_samples(self.handle.run_dir, step, result.samples)
        return result

    def _model(self, kwargs):
        return kwargs["model"] if kwargs.get("model") is not None else self.handle.model

    def _can_defer(self, model) -> bool:
        """Whether the step-0 probe can wait (:data:`DEFER_UNTRAINED`): a LoRA policy on one process, its result
        not cached."""
        policy = policy_of(model)
        return (DEFER_UNTRAINED and self.config.probe_every > 0 and is_adapter_model(policy)
                and not self.context.sampling.together and self._cached_untrained(policy)[1] is None)

    def _probe_deferred(self, kwargs) -> None:
        """The deferred step-0 probe, on the reference, recorded as step 0."""
        self.deferred = False
        self.handle.set_phase(f"probe at step 0, of the reference (deferred so that training could start): "
                              f"sampling {len(self.prompts)} held-out prompts")
        self.run(self._model(kwargs), 0, untrained=True, as_reference=True)

    def _probe(self, args, state, control, kwargs, untrained: bool = False) -> None:
        """Probe at this step (:meth:`run`) and give what was recorded to the trackers."""
        if self.deferred:
            self._probe_deferred(kwargs)
        self.recorded = None
        self.handle.set_phase(f"probe at step {state.global_step}: sampling {len(self.prompts)} held-out prompts")
        self.run(self._model(kwargs), state.global_step, untrained=untrained)
        self.handle.set_phase(None)
        if self.recorded is not None:
            report_probe(self.trackers, args, state, control, self.recorded)

    def on_train_begin(self, args, state, control, **kwargs):
        if not self.context.sampling.joins(state.is_world_process_zero):
            return
        probed = any(event["step"] == state.global_step and PROBE_REWARD in event["metrics"]
                     for event in self.handle.history)  # the main process holds the history
        if self.context.sampling.agree(probed):  # a resumed run, probed at the step it resumes from
            self._last_step = state.global_step
            return
        if state.global_step == 0 and self._can_defer(self._model(kwargs)):
            self.deferred = True
            return
        self._probe(args, state, control, kwargs, untrained=state.global_step == 0)

    def on_step_end(self, args, state, control, **kwargs):
        joins = self.context.sampling.joins(state.is_world_process_zero)
        if joins and state.global_step % self.config.probe_every == 0:
            self._probe(args, state, control, kwargs)

    def on_train_end(self, args, state, control, **kwargs):
        if self.context.sampling.joins(state.is_world_process_zero) and self._last_step != state.global_step:
            self._probe(args, state, control, kwargs)
