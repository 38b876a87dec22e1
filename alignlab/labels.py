"""Run names people can read: what a run is, next to its id, for every run picker.

A run id (``20250101-120000-dpo-ab12``) says when and which method, not how it was tuned or how it
did. :func:`run_label` puts the method, the knob that sets its pull toward the reference (the
method's :attr:`~alignlab.methods.base.MethodSpec.kl_knob`, β or PPO's ``kl_coef``) with its value,
the steps logged, the final probe reward and who started it (the run's owner, when it has one) before the
id, so the notebook's and the app's pickers read the same::

    dpo · β 0.1 · 12 steps · reward +0.82 · by ada — 20250101-120000-dpo-ab12

Pure text from a run summary (:func:`alignlab.rundir.read_run`); no file is read here.
"""

from __future__ import annotations

from typing import Any

from alignlab.methods import registry
from alignlab.rundir import UNREADABLE

SEPARATOR = " · "
ID_SEPARATOR = " — "
KNOB_SYMBOLS = {"beta": "β"}  # how a knob's name is written in a label; others keep their name (kl_coef)


def kl_setting(method: str | None, config: dict) -> str:
    """The method's KL knob and its value in ``config`` (``β 0.1``, ``kl_coef 0.05``); "" for a method without
    one (SFT, ORPO) or an unknown method. A config without the value (written before the knob existed) shows
    the knob's default, which is what :class:`~alignlab.config.RunConfig` fills in.

    >>> kl_setting("dpo", {"method_args": {"beta": 0.3}}), kl_setting("ppo", {}), kl_setting("sft", {})
    ('β 0.3', 'kl_coef 0.05', '')
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


def final_probe_reward(history: list[dict]) -> float | None:
    """The last ``probe/reward`` a run logged, or None when its probe never ran.

    >>> final_probe_reward([{"step": 0, "probe/reward": 0.1}, {"step": 6, "loss": 0.6}])
    0.1
    """
    for row in reversed(history):
        value = row.get("probe/reward")
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
