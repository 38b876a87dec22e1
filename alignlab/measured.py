"""What each method reached on the built-in task, as the benchmark measured it: figures from a file, never prose in
code.

``python -m bench.learn_figures`` reads the benchmark's results (``bench/alignment.json``, written by
``python -m bench.alignment``) and writes :data:`MEASURED_FILE` beside this module: per method, the runs made at its
current defaults and those made with other settings (a variant's ``label`` says which), each with the held-out
evaluation of its final model (reward gain over the reference ± paired s.e., win-rate, KL, perplexity) and when the
gain first became visible. The Learn card shows :func:`measured_text`; a changed number changes in that file only,
and only by rerunning the command.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

MEASURED_FILE = Path(__file__).with_name("measured.json")


@cache
def load_measured(path: str | Path = MEASURED_FILE) -> dict:
    """The figures file as written by ``python -m bench.learn_figures`` (``{"methods": {}}`` when it is missing)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"methods": {}}


def _gain(run: dict) -> str:
    return f"{run['gain']:+.2f} ± {run['gain_se']:.2f}"


def _final(run: dict) -> str:
    """One run's final model: ``seed 42 (2 threads): +0.64 ± 0.05, wins on 97%, KL 27 nats, ..., 283 s``."""
    parts = [_gain(run)]
    if run.get("win_rate") is not None:
        parts.append(f"wins on {run['win_rate']:.0%}")
    if run.get("kl") is not None:
        parts.append(f"KL {run['kl']:.0f} nats")
    if run.get("perplexity") is not None and run.get("reference_perplexity") is not None:
        parts.append(f"reference perplexity of its text {run['perplexity']:.1f} vs {run['reference_perplexity']:.1f}")
    if run.get("reference_follow") is not None and run.get("aligned_follow") is not None:
        parts.append(f"instruction followed {run['reference_follow']:.0%} → {run['aligned_follow']:.0%}")
    if run.get("train_s") is not None:
        parts.append(f"{run['train_s']:.0f} s of training")
    return f"seed {run['seed']} ({run['threads']} thread{'s' if run['threads'] != 1 else ''}): {', '.join(parts)}"


FAITHFUL_KL = 10.0  # nats: "visible at small KL" (the faithful-alignment goal of the defaults)
VISIBLE_GAIN, VISIBLE_SE = 0.3, 0.05  # "visible": the gain and its largest s.e. (the alignment benchmark's defaults)
FAITHFUL_FOLLOW_DROP = 0.05  # the instruction counts as kept when followed at most this much less than by the reference


def faithful_problems(run: dict, gain: float = VISIBLE_GAIN, max_se: float = VISIBLE_SE) -> list[str] | None:
    """What keeps a run at the defaults from being *faithful* alignment (visible at small KL with the instruction
    kept): gain below ``gain`` or s.e. above ``max_se``, KL above :data:`FAITHFUL_KL`, instruction followed more than
    :data:`FAITHFUL_FOLLOW_DROP` below the reference. [] when nothing does; None when its figures cannot tell
    (no instruction-following measured).

    >>> faithful_problems({"gain": 0.36, "gain_se": 0.04, "kl": 8.0, "reference_follow": 0.39, "aligned_follow": 0.82})
    []
    >>> faithful_problems({"gain": 0.6, "gain_se": 0.04, "kl": 27.0, "reference_follow": 0.31, "aligned_follow": 0.0})
    ['KL 27.0 nats > 10', 'instruction followed 31% → 0%']
    """
    if run.get("gain") is None or run.get("aligned_follow") is None or run.get("reference_follow") is None:
        return None
    problems = []
    if run["gain"] < gain or run["gain_se"] > max_se:
        problems.append(f"gain {run['gain']:+.3f} ± {run['gain_se']:.3f}, not ≥ {gain:g} with s.e. ≤ {max_se:g}")
    if run.get("kl") is not None and run["kl"] > FAITHFUL_KL:
        problems.append(f"KL {run['kl']:.1f} nats > {FAITHFUL_KL:g}")
    if run["aligned_follow"] < run["reference_follow"] - FAITHFUL_FOLLOW_DROP:
        problems.append(f"instruction followed {run['reference_follow']:.0%} → {run['aligned_follow']:.0%}")
    return problems


def _faithful(runs: list[dict], gain: float, max_se: float) -> str:
    """The faithful-alignment reading of the runs at the defaults: per seed, faithful or what keeps it from it."""
    said = []
    for run in runs:
        problems = faithful_problems(run, gain, max_se)
        if problems is not None:
            said.append(f"seed {run['seed']} " + ("yes" if not problems else "no (" + ", ".join(problems) + ")"))
    return (f"Faithful (visible at KL ≤ {FAITHFUL_KL:g} nats, instruction followed at most "
            f"{FAITHFUL_FOLLOW_DROP * 100:.0f} points below the reference's): " + "; ".join(said) + ".") if said else ""


def _visible(run: dict) -> str | None:
    seen = run.get("visible")
    if not seen:
        return None
    where = "at the end" if seen.get("at_end") else f"by step {seen['step']}"
    return (f"{where}, {seen['seconds']:.0f} s after Start (seed {run['seed']}, {run['threads']} "
            f"thread{'s' if run['threads'] != 1 else ''}, reference cache {run.get('cache', 'cold')})")


def measured_text(method: str, figures: dict | None = None) -> str:
    """A method's measured figures in words for its Learn card; "" when the benchmark has none for it.

    >>> figures = {"settings": {"steps": 12, "reward": "sentiment", "prompts": 100}, "methods": {"dpo": {"defaults": [
    ...     {"seed": 42, "threads": 2, "gain": 0.64, "gain_se": 0.046, "win_rate": 0.97}], "variants": []}}}
    >>> text = measured_text("dpo", figures)
    >>> text.startswith("after 12 steps, sentiment reward gain over the reference on 100 held-out prompts: seed 42")
    True
    >>> "(2 threads): +0.64 ± 0.05, wins on 97%; not visible (gain ≥ 0.3 with s.e. ≤ 0.05)" in text
    True
    """
    figures = load_measured() if figures is None else figures
    found = figures.get("methods", {}).get(method)
    if not found or not (found.get("defaults") or found.get("variants")):
        return ""
    settings = figures.get("settings", {})
    gain, max_se = settings.get("visible_gain") or VISIBLE_GAIN, settings.get("visible_se") or VISIBLE_SE
    text = (f"after {settings.get('steps', '?')} steps, {settings.get('reward', 'the')} reward gain over the reference "
            f"on {settings.get('prompts', '?')} held-out prompts: ")
    finals = [_final(run) for run in found.get("defaults", []) if run.get("gain") is not None]
    if not found.get("defaults"):  # the defaults changed since the benchmark ran: nothing to claim for them
        text += "no benchmark run at the current defaults yet"
    else:
        text += "; ".join(finals) if finals else "no final model evaluated at the defaults"
        seen = [note for note in map(_visible, found.get("defaults", [])) if note]
        threshold = f"gain ≥ {gain} with s.e. ≤ {max_se}"
        text += (f"; visible ({threshold}) " + "; ".join(seen)) if seen else (
            f"; not visible ({threshold}) in any run at the defaults")
    variants = [f"{run['label']}, seed {run['seed']}: {_gain(run)}" for run in found.get("variants", [])
                if run.get("gain") is not None]
    if variants:
        text += ". Other settings: " + "; ".join(variants)
    faithful = _faithful(found.get("defaults", []), gain, max_se)
    return text + "." + (f" {faithful}" if faithful else "")
