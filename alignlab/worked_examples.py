"""Worked examples of drift: real runs' probe curves, shipped with the lab, for the Learn tab.

A presenter cannot wait a quarter of an hour for a PPO run to drift. So the lab ships the probe rows of
a few runs made with ``alignlab train`` (``python -m bench.worked_examples`` copies them out of the run
folders into :data:`EXAMPLES_FILE`, with the command that made each run and the machine it ran on), and the
Learn tab draws them with the same drift panel and verdict a live run gets (:mod:`alignlab.drift`):

- ``ppo-cheap-kl``: PPO with its KL penalty three times cheaper than the default, the classic over-optimisation of
  RLHF (Ziegler et al. 2019; Ouyang et al. 2022 keep the per-token KL penalty for this reason);
- ``simpo``: pure SimPO (``cpo_alpha`` 0, the lab's rate 1e-3), with no reference model in its loss (Meng et al. 2024);
- ``dpo``: DPO at its defaults, on pairs that keep the instruction, with RPO's likelihood term (Rafailov et al.
  2023; Pang et al. 2024), for contrast.

The words of each lesson are here; every figure it quotes comes from the run's own rows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from alignlab.drift import Verdict, probe_rows, verdict
from alignlab.metrics import PROBE_FOLLOW, PROBE_KL, PROBE_REWARD

EXAMPLES_FILE = Path(__file__).with_name("worked_examples.json")

LESSONS = {
    "ppo-cheap-kl": (
        "PPO's `kl_coef` is the price of drift: every token pays `kl_coef` times its log-ratio to the reference. "
        "Three times cheaper than the default, the policy finds what the reward pays for and keeps buying it. "
        "The reward curve alone looks like a success; the drift panel shows what was paid for it. This is the "
        "lesson, not the default: the lab keeps `kl_coef` 0.03."),
    "simpo": (
        "SimPO drops the reference model from its loss and scores answers by their average log-likelihood, with a "
        "target margin γ. Nothing in the loss measures distance from where the model started, so only the learning "
        "rate and the number of steps hold it near the reference: read its KL and the instruction-following line "
        "before its reward."),
    "dpo": (
        "DPO at the lab's defaults: β 0.5, pairs whose both answers begin with the requested opening, and a "
        "likelihood term on the chosen answer (`sft_weight` 0.5, RPO). The reward rises at a few nats of KL and the "
        "instruction is kept: the faithful side of the frontier, for contrast with the two runs above."),
}


@dataclass(frozen=True)
class WorkedExample:
    """One shipped run: its ``name`` (a key of :data:`LESSONS`), ``title``, the ``command`` that made it, the
    ``machine`` it ran on, and its probe ``rows`` (step and ``probe/*`` metrics, as the run logged them)."""

    name: str
    title: str
    command: str
    machine: str
    rows: tuple[dict, ...]

    @property
    def lesson(self) -> str:
        return LESSONS.get(self.name, "")

    def verdict(self) -> Verdict | None:
        """The drift verdict a live run with these rows would show (:func:`alignlab.drift.verdict`)."""
        return verdict(list(self.rows))

    def summary(self) -> str:
        """Where the run went, in its own numbers: reward and KL at the first and last probe, and the share that
        followed the instruction.

        >>> rows = ({"step": 0, "probe/reward": 0.1, "probe/kl": 0.0, "probe/follow": 0.1},
        ...         {"step": 12, "probe/reward": 0.6, "probe/kl": 8.0, "probe/follow": 0.3})
        >>> WorkedExample("dpo", "DPO", "alignlab train --method dpo", "a CPU", rows).summary()
        'Step 0 → 12: reward 0.10 → 0.60 (+0.50) at 8.0 nats of KL; instruction followed 10% → 30%.'
        """
        probes = probe_rows(list(self.rows))
        if len(probes) < 2:
            return ""
        first, last = probes[0], probes[-1]
        reward = (f"reward {first[PROBE_REWARD]:.2f} → {last[PROBE_REWARD]:.2f} "
                  f"({last[PROBE_REWARD] - first[PROBE_REWARD]:+.2f}) at {last[PROBE_KL]:.1f} nats of KL")
        follow = (f"; instruction followed {first[PROBE_FOLLOW]:.0%} → {last[PROBE_FOLLOW]:.0%}"
                  if first.get(PROBE_FOLLOW) is not None and last.get(PROBE_FOLLOW) is not None else "")
        return f"Step {first.get('step', 0)} → {last.get('step', 0)}: {reward}{follow}."


@cache
def _load(path: str) -> tuple[WorkedExample, ...]:
    try:
        stored = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ()
    return tuple(WorkedExample(item["name"], item["title"], item["command"], item["machine"], tuple(item["rows"]))
                 for item in stored.get("examples", []))


def worked_examples(path: str | Path = EXAMPLES_FILE) -> list[WorkedExample]:
    """The shipped worked examples, in the order the Learn tab shows them (none when the file is missing)."""
    return list(_load(str(path)))
