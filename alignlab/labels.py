"""Run names people can read: what a run is, next to its id, for every run picker.

A run id (``20250101-120000-dpo-ab12``) says when and which method, not how it was tuned or how it
did. :func:`run_label` puts the method, the knob that sets its pull toward the reference (the
method's :attr:`~alignlab.methods.base.MethodSpec.kl_knob`, β or PPO's ``kl_coef``) with its value,
the steps logged, the final probe reward and who started it (the run's owner, when it has one) before the
id, so the notebook's and the app's pickers read the same::

    dpo · β 0.1 · 12 steps · reward +0.82 · by ada — 20250101-120000-dpo-ab12

Metric keys get names people can read too (:func:`metric_name`): TRL's ``rewards/chosen`` is the "chosen
reward" in a legend, and a panel titled "Reward" calls the probe's ``probe/reward`` just "probe". The plots
keep the key itself in their hover text, for whoever looks it up in TRL's docs.

Pure text from a run summary (:func:`alignlab.rundir.read_run`); no file is read here.
"""

from __future__ import annotations

from typing import Any

from alignlab.methods import registry
from alignlab.metrics import (
    KL_ESTIMATE,
    PROBE_FOLLOW,
    PROBE_KL,
    PROBE_KL_RATE,
    PROBE_LENGTH,
    PROBE_LENGTH_RATIO,
    PROBE_REF_PPL,
    PROBE_REF_PPL_RATIO,
    PROBE_REWARD,
    ROLLOUT_KL,
    ROLLOUT_REWARD,
    ROLLOUT_SCORE,
)
from alignlab.rundir import UNREADABLE

SEPARATOR = " · "
ID_SEPARATOR = " — "
KNOB_SYMBOLS = {"beta": "β"}  # how a knob's name is written in a label; others keep their name (kl_coef)
METRIC_NAMES = {  # metric keys (TRL's, the probe's, alignlab's PPO's) as a legend reads them; others keep their key
    "loss": "loss",
    ROLLOUT_REWARD: "rollout reward",  # GRPO, RLOO: the reward of the samples trained on
    ROLLOUT_SCORE: "rollout score",  # PPO, online DPO: the reward model's score of the samples trained on
    "rewards/chosen": "chosen reward",  # DPO, KTO: the implicit reward β·log(π/π_ref) of a chosen answer
    "rewards/rejected": "rejected reward",
    "rewards/margins": "reward margin",
    "rewards/accuracies": "preference accuracy",
    "objective/scores_margin": "annotator score margin",
    PROBE_REWARD: "probe reward",  # the probe: held-out prompts, sampled and scored every probe_every steps
    PROBE_KL: "probe KL",
    PROBE_LENGTH: "probe length",
    PROBE_FOLLOW: "instruction followed",  # the share of the probe's completions that did what their prompt asked
    PROBE_LENGTH_RATIO: "length ÷ reference's",  # drift (alignlab.drift): against the step-0 probe, the reference's own
    PROBE_REF_PPL: "reference perplexity",
    PROBE_REF_PPL_RATIO: "reference perplexity ÷ its own",
    PROBE_KL_RATE: "KL per step",
    KL_ESTIMATE: "KL estimate",  # KTO's batch estimate of the KL from the reference
    ROLLOUT_KL: "rollout KL",
    "accuracy": "preference accuracy",
    "margin": "reward margin",
    "mean_token_accuracy": "token accuracy",
    "log_odds_ratio": "log odds ratio",
    "completions/mean_length": "completion length",
    "reward_std": "reward spread",
    "clip_ratio/region_mean": "clipped ratio",
    "loss/value_avg": "value loss",
    "loss/policy_avg": "policy loss",
    "policy/clipfrac_avg": "clip fraction",
}


def kl_setting(method: str | None, config: dict) -> str:
    """The method's KL knob and its value in ``config`` (``β 0.1``, ``kl_coef 0.03``); "" for a method without
    one (SFT, ORPO) or an unknown method. A config without the value (written before the knob existed) shows
    the knob's default, which is what :class:`~alignlab.config.RunConfig` fills in.

    >>> kl_setting("dpo", {"method_args": {"beta": 0.3}}), kl_setting("ppo", {}), kl_setting("sft", {})
    ('β 0.3', 'kl_coef 0.03', '')
    """
    spec = registry().get(method or "")
    if spec is None or spec.kl_knob is None:
        return ""
    args = config.get("method_args")
    value = args.get(spec.kl_knob) if isinstance(args, dict) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        value = spec.knob(spec.kl_knob).default
    return f"{KNOB_SYMBOLS.get(spec.kl_knob, spec.kl_knob)} {value:g}"


def method_title(method: str | None, config: dict) -> str:
    """The method with its loss variant when the run changed it from the method's default: ``dpo (ipo)`` for DPO
    trained with IPO's loss (Azar et al., 2023), plain ``dpo`` for the sigmoid loss; "unknown method" when none.

    >>> method_title("dpo", {"method_args": {"loss_type": "ipo"}}), method_title("dpo", {}), method_title("kto", {})
    ('dpo (ipo)', 'dpo', 'kto')
    """
    if not method:
        return "unknown method"
    spec = registry().get(method)
    args = config.get("method_args")
    loss = args.get("loss_type") if isinstance(args, dict) else None
    default = next((knob.default for knob in spec.knobs if knob.name == "loss_type"), None) if spec else None
    return f"{method} ({loss})" if isinstance(loss, str) and default is not None and loss != default else method


def metric_name(key: str, context: str = "") -> str:
    """The name a legend gives metric ``key`` (:data:`METRIC_NAMES`; an unknown key is its own name). Under a
    ``context`` (a panel's title) the words it already says are left out, unless nothing would be left.

    >>> metric_name("rewards/chosen"), metric_name("probe/reward", "Reward"), metric_name("kl", "KL estimate")
    ('chosen reward', 'probe', 'KL estimate')
    >>> metric_name("rewards/chosen", "Implicit rewards"), metric_name("grad_norm")
    ('chosen', 'grad_norm')
    """
    name = METRIC_NAMES.get(key, key)
    said = {_word(word) for word in context.split()}
    rest = [word for word in name.split() if _word(word) not in said]
    return " ".join(rest) if rest else name


def _word(word: str) -> str:
    """A word as :func:`metric_name` compares it with a title's: lower case, without a plural s."""
    return word.lower().removesuffix("s")


def final_probe_reward(history: list[dict]) -> float | None:
    """The last ``probe/reward`` a run logged, or None when its probe never ran.

    >>> final_probe_reward([{"step": 0, "probe/reward": 0.1}, {"step": 6, "loss": 0.6}])
    0.1
    """
    for row in reversed(history):
        value = row.get(PROBE_REWARD)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def owner_of(run: dict[str, Any]) -> str | None:
    """Who started a run (its config's ``owner``: a signed-in account or a workshop participant), or None.

    >>> owner_of({"config": {"owner": "ada"}}), owner_of({"config": {}})
    ('ada', None)
    """
    owner = (run.get("config") or {}).get("owner")
    return owner if isinstance(owner, str) and owner else None


def run_label(run: dict[str, Any], show_state: bool = False) -> str:
    """``method · KL knob value · steps · final probe reward · by owner — run id`` for a run summary (from
    :func:`alignlab.rundir.list_runs` or :func:`~alignlab.rundir.read_run`); parts a run lacks (a method
    without a KL knob, a run without a probe, a run without an owner) are left out. A run in state ``unreadable`` reads
    ``unreadable: <file> — run id``, naming the file that cannot be read. ``show_state`` adds how the run
    stands (`` (finished)``) after any other run's id.

    >>> run_label({"run_id": "20250101-120000-dpo-ab12", "method": "dpo", "steps": 12,
    ...            "config": {"method_args": {"beta": 0.1}}, "history": [{"step": 12, "probe/reward": 0.8214}]})
    'dpo · β 0.1 · 12 steps · reward +0.82 — 20250101-120000-dpo-ab12'
    """
    if run.get("state") == UNREADABLE:
        return f"{UNREADABLE}: {run.get('file') or 'see its error'}{ID_SEPARATOR}{run['run_id']}"
    config = run.get("config") or {}
    parts = [method_title(run.get("method"), config), kl_setting(run.get("method"), config)]
    steps = run.get("steps") or 0
    parts.append(f"{steps} step{'' if steps == 1 else 's'}")
    reward = final_probe_reward(run.get("history") or [])
    if reward is not None:
        parts.append(f"reward {reward:+.2f}")
    owner = owner_of(run)
    if owner:
        parts.append(f"by {owner}")
    label = SEPARATOR.join(part for part in parts if part) + ID_SEPARATOR + run["run_id"]
    return f"{label} ({run.get('state') or 'unknown'})" if show_state else label
