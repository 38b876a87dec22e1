"""The blind round protocol: the two answers to one prompt shown as A and B in a seeded random order, the vote on
them recorded as one votes-file row, and what the voter learns afterwards."""

from __future__ import annotations

import random
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from alignlab.errors import AlignLabError

SIDES = ("reference", "aligned")
CHOICES = ("A", "B", "tie", "both-bad")  # what a voter can say
DECISIVE = ("aligned", "reference")  # outcomes with a chosen and a rejected answer
MAX_VOTER = 64  # characters of a voter's name kept
AI_VOTER_PREFIX = "ai:"  # an AI annotator votes as ai:<reward source> (alignlab.annotate)


def new_order_seed() -> int:
    """A fresh seed for one blind round's order (kept in the vote)."""
    return secrets.randbits(32)


def blind_order(seed: int) -> tuple[str, str]:
    """Which model's answer is shown as A and which as B in a round seeded ``seed``: (side of A, side of B).

    >>> blind_order(7) == blind_order(7) and sorted(blind_order(7)) == ["aligned", "reference"]
    True
    """
    return SIDES if random.Random(seed).random() < 0.5 else SIDES[::-1]


@dataclass
class Round:
    """One blind comparison waiting for its vote: a prompt, both answers and the seed of their A/B order.

    ``name`` is the votes file (the run id); ``message`` the user's message, in ``mode`` chat (rendered with
    the chat template, recorded as a one-message conversation) or continue (raw text).
    """

    name: str
    message: str
    mode: str
    reference: str
    aligned: str
    reference_model: str
    aligned_model: str
    sampling: dict
    reward_source: str | None = None
    reference_reward: float | None = None
    aligned_reward: float | None = None
    order_seed: int = field(default_factory=new_order_seed)

    @property
    def order(self) -> tuple[str, str]:
        """(side shown as A, side shown as B)."""
        return blind_order(self.order_seed)

    def shown(self) -> tuple[str, str]:
        """The answers as A and B."""
        return getattr(self, self.order[0]), getattr(self, self.order[1])

    def record(self, choice: str, voter: str | None = None, when: float | None = None) -> dict:
        """The vote ``choice`` (A, B, tie or both-bad) on this round as one votes-file row."""
        if choice not in CHOICES:
            raise AlignLabError(f"vote: got {choice!r}, expected one of {', '.join(CHOICES)}")
        outcome = self.order[CHOICES.index(choice)] if choice in ("A", "B") else choice
        chosen = rejected = None
        if outcome in DECISIVE:
            other = SIDES[1 - SIDES.index(outcome)]
            chosen, rejected = self._completion(getattr(self, outcome)), self._completion(getattr(self, other))
        rewards = None
        if self.reference_reward is not None and self.aligned_reward is not None:
            rewards = {"source": self.reward_source, "reference": self.reference_reward, "aligned": self.aligned_reward}
        name = " ".join(str(voter or "").split())[:MAX_VOTER] or None
        return {"time": time.time() if when is None else when, "name": self.name, "voter": name, "vote": choice,
                "outcome": outcome, "order": list(self.order), "order_seed": self.order_seed, "mode": self.mode,
                "prompt": [{"role": "user", "content": self.message}] if self.mode == "chat" else self.message,
                "chosen": chosen, "rejected": rejected,
                "chosen_model": outcome if outcome in DECISIVE else None,
                "rejected_model": SIDES[1 - SIDES.index(outcome)] if outcome in DECISIVE else None,
                "reference": self.reference, "aligned": self.aligned, "reference_model": self.reference_model,
                "aligned_model": self.aligned_model, "reward": rewards, "sampling": dict(self.sampling)}

    def _completion(self, text: str) -> Any:
        return [{"role": "assistant", "content": text}] if self.mode == "chat" else text


def reveal(vote: dict) -> str:
    """One line, after a vote: which model wrote A and which B, and what the vote chose.

    >>> reveal({"vote": "A", "outcome": "aligned", "order": ["aligned", "reference"], "aligned_model": "r1"})
    'A was the aligned model (r1), B the reference. Your vote: the aligned model.'
    """
    first, second = vote["order"]
    described = {"aligned": f"the aligned model ({vote.get('aligned_model')})", "reference": "the reference"}
    said = {"aligned": "the aligned model", "reference": "the reference", "tie": "a tie",
            "both-bad": "both bad"}[vote["outcome"]]
    line = f"A was {described[first]}, B {described[second]}. Your vote: {said}."
    rewards = vote.get("reward")
    if rewards:
        line += (f" Reward ({rewards['source']}): A {rewards[first]:+.3f}, B {rewards[second]:+.3f}.")
    return line


def answer_text(value: Any) -> str:
    """The text of an answer or prompt as a votes file keeps it: a string, or the last message's content."""
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        return str(value[-1].get("content") or "")
    return value if isinstance(value, str) else ""
