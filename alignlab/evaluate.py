"""Score a run honestly: aligned vs reference on held-out prompts, paired by prompt and seed.

Both models sample every held-out prompt ``samples_per_prompt`` times with the same settings and
the same seed, so the only difference between the two columns is the training. The report gives

- the reward gain (aligned - reference) with its *paired* standard error (per-prompt differences,
  samples of a prompt averaged first), the number that says whether an effect is real;
- the win-rate: the share of prompts where the aligned model's mean reward beats the reference's
  (ties count half), with a 95% Wilson interval;
- fluency for both columns (:mod:`alignlab.fluency`): distinct-word ratio, words, and the reference
  model's perplexity of the text, so a reward hack ("great great great") shows as such;
- instruction-following for both columns (:mod:`alignlab.follow`, the built-in task's: the review begins with
  the requested opening), with the paired change, where the run's check can tell for the prompts: a gain bought
  by dropping the instruction shows as such too.

The defaults (all 100 held-out prompts, 2 samples each) give a paired standard error below 0.05 VADER
on the built-in task. With LoRA the reference is the adapter-disabled model.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from alignlab import devices
from alignlab.config import config_of
from alignlab.errors import AlignLabError, AlignLabWarning
from alignlab.fluency import fluency
from alignlab.follow import FollowCheck, check_for, followed, share
from alignlab.generation import READING_TEMPERATURE, READING_TOP_P, SamplingSettings, sample
from alignlab.held_out import held_out_of_run
from alignlab.model_card import write_card
from alignlab.models import load_trained
from alignlab.reference import reference_of
from alignlab.rewards import get_reward, reward_for
from alignlab.rundir import write_eval
from alignlab.stats import mean_se, paired_difference

DEFAULT_SAMPLES = 2


@dataclass
class Comparison:
    """Aligned vs reference on held-out prompts: rewards, paired gain, win-rate and fluency."""

    run_id: str
    reward: str
    prompts: int
    samples_per_prompt: int
    seed: int
    aligned_mean: float
    reference_mean: float
    gain: float
    gain_se: float
    wins: int
    losses: int
    ties: int
    win_rate: float
    win_low: float
    win_high: float
    aligned_fluency: dict
    reference_fluency: dict
    follow_checked: int = 0  # samples (of each model) whose instruction the check could tell; 0: no figures below
    aligned_follow: float | None = None  # the share of those that followed it (0-1)
    reference_follow: float | None = None
    follow_change: float | None = None  # aligned - reference, paired by prompt like the gain
    follow_change_se: float | None = None
    temperature: float = READING_TEMPERATURE  # how both models were sampled (the lab's reading setting by default;
    top_p: float = READING_TOP_P  # temperature 1, top-p 1 is the whole distribution, as the probe samples it)

    def as_dict(self) -> dict:
        return asdict(self)

    def report(self) -> str:
        """A few lines a person reads: gain ± paired s.e., win-rate with its interval, fluency, instruction
        followed."""
        a, r = self.aligned_fluency, self.reference_fluency
        return self._report_lines(a, r) + self.follow_line()

    def follow_line(self) -> str:
        """The instruction-following line of :meth:`report` ("" where nothing could be checked)."""
        if not self.follow_checked or self.aligned_follow is None or self.reference_follow is None:
            return ""
        change = (f"   change {self.follow_change * 100:+.0f} ± {self.follow_change_se * 100:.0f} points (paired s.e.)"
                  if self.follow_change is not None and self.follow_change_se is not None else "")
        return (f"\n  instruction followed  aligned {self.aligned_follow:.0%}   reference {self.reference_follow:.0%}"
                f"{change}, of {self.follow_checked} samples each")

    def _report_lines(self, a: dict, r: dict) -> str:
        return (
            f"{self.reward} on {self.prompts} held-out prompts x {self.samples_per_prompt} samples (seed {self.seed}, "
            f"temperature {self.temperature:g}, top-p {self.top_p:g})\n"
            f"  reward    aligned {self.aligned_mean:+.3f}   reference {self.reference_mean:+.3f}   "
            f"gain {self.gain:+.3f} ± {self.gain_se:.3f} (paired s.e.)\n"
            f"  win-rate  {self.win_rate:.0%} of prompts [95% CI {self.win_low:.0%}-{self.win_high:.0%}] "
            f"({self.wins} won, {self.losses} lost, {self.ties} tied)\n"
            f"  fluency   distinct words {a['distinct']:.2f} vs {r['distinct']:.2f}, words {a['words']:.1f} vs "
            f"{r['words']:.1f}, {_perplexities(a, r)} (aligned vs reference)"
        )


def _perplexities(aligned: dict, reference: dict) -> str:
    """The report's reference-perplexity figures, or that they were not measured (``--no-fluency``)."""
    values = [fluency.get("perplexity") for fluency in (aligned, reference)]
    if None in values:  # Fluency.as_dict keeps an unmeasured perplexity as None
        return "reference perplexity not measured"
    return f"reference perplexity {values[0]:.1f} vs {values[1]:.1f}"


def compare_models(model, tokenizer, config, prompts: list, run_id: str = "", reward=None,
                   samples_per_prompt: int = DEFAULT_SAMPLES, seed: int = 1234, max_new_tokens: int | None = None,
                   temperature: float = READING_TEMPERATURE, top_p: float = READING_TOP_P,
                   with_fluency: bool = True, check: FollowCheck | None = None) -> Comparison:
    """Compare ``model`` (the aligned one) with its reference on ``prompts`` (a run's held-out prompts, see
    :func:`alignlab.held_out.held_out_of_run`) for a run trained from ``config``. ``check`` tells whether a sample
    followed its prompt's instruction (default: the check of the run's dataset, :func:`alignlab.follow.check_for`).
    """

    if isinstance(samples_per_prompt, bool) or not isinstance(samples_per_prompt, int) or samples_per_prompt < 1:
        raise AlignLabError(f"samples: got {samples_per_prompt!r}, expected an integer >= 1")
    source = reward or reward_for(config)
    settings = SamplingSettings(max_new_tokens=max_new_tokens or config.max_completion_length,
                                temperature=temperature, top_p=top_p, seed=seed)
    repeated = [p for p in prompts for _ in range(samples_per_prompt)]
    groups = [i for i in range(len(prompts)) for _ in range(samples_per_prompt)]
    aligned_texts = sample(model, tokenizer, prompts, settings, num_return_sequences=samples_per_prompt)
    with reference_of(model, config) as reference:
        reference_texts = sample(reference, tokenizer, prompts, settings, num_return_sequences=samples_per_prompt)
        scorer = reference if with_fluency else None
        aligned_fluency = fluency(aligned_texts, repeated, scorer, tokenizer).as_dict()
        reference_fluency = fluency(reference_texts, repeated, scorer, tokenizer).as_dict()
    aligned, base = source(repeated, aligned_texts), source(repeated, reference_texts)
    paired = paired_difference(aligned, base, groups)
    low, high = paired.win_interval()
    return Comparison(run_id, source.name, len(prompts), samples_per_prompt, seed,
                      round(mean_se(aligned)[0], 4), round(mean_se(base)[0], 4), round(paired.mean, 4),
                      round(paired.se, 4), paired.wins, paired.losses, paired.ties, round(paired.win_rate, 4),
                      round(low, 4), round(high, 4), aligned_fluency, reference_fluency,
                      **_follow_figures(check or check_for(config.dataset), repeated, groups, aligned_texts,
                                        reference_texts), temperature=temperature, top_p=top_p)


def _follow_figures(check: FollowCheck, prompts: list, groups: list, aligned_texts: list, reference_texts: list
                    ) -> dict:
    """The instruction-following fields of a :class:`Comparison` ({} where the check can tell for no sample)."""
    aligned, reference = followed(check, prompts, aligned_texts), followed(check, prompts, reference_texts)
    kept = [i for i, (a, r) in enumerate(zip(aligned, reference)) if a is not None and r is not None]
    if not kept:
        return {}
    paired = paired_difference([float(aligned[i]) for i in kept], [float(reference[i]) for i in kept],
                               [groups[i] for i in kept])
    return {"follow_checked": len(kept), "aligned_follow": round(share([aligned[i] for i in kept])[0], 4),
            "reference_follow": round(share([reference[i] for i in kept])[0], 4),
            "follow_change": round(paired.mean, 4), "follow_change_se": round(paired.se, 4)}


def compare_run(run_dir: str | Path, reward: str | None = None, samples_per_prompt: int = DEFAULT_SAMPLES,
                seed: int = 1234, max_new_tokens: int | None = None, temperature: float = READING_TEMPERATURE,
                top_p: float = READING_TOP_P, with_fluency: bool = True, dtype: str = "auto") -> Comparison:
    """Load a run's trained model and compare it with its reference on the held-out prompts it recorded (the run's
    own reward source by default), in the precision ``dtype`` asks of the device policy (:mod:`alignlab.devices`:
    auto, bf16, fp16 or fp32).

    The figures are kept in the run directory (:func:`alignlab.rundir.write_eval`) and the run's model card
    shows them from then on; a run folder that cannot be written (read-only) only gets a warning.
    """

    config = config_of(run_dir)
    model, tokenizer = load_trained(run_dir, config.trust_remote_code, placement=devices.placement(dtype))
    source = get_reward(reward, instruction=config.judge_instruction, runs_dir=config.output_dir,
                        opposite=config.judge_opposite) if reward else None
    result = compare_models(model, tokenizer, config, held_out_of_run(run_dir, config).prompts, Path(run_dir).name,
                            source,
                            samples_per_prompt=samples_per_prompt, seed=seed, max_new_tokens=max_new_tokens,
                            temperature=temperature, top_p=top_p, with_fluency=with_fluency)
    try:
        write_eval(run_dir, result.as_dict())
        write_card(run_dir)
    except (AlignLabError, OSError) as error:
        warnings.warn(f"run {Path(run_dir).name}: the evaluation was not kept in the run ({error})", AlignLabWarning,
                      stacklevel=2)
    return result
