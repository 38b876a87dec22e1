"""Reward sources, chosen by name everywhere (CLI ``--reward``, both UIs, probes, RL methods).

A reward source is a callable ``(prompts, completions) -> list[float]`` with a ``name``; it
follows TRL's reward-function interface (``reward_func(prompts=..., completions=..., **kw)``)
so RL trainers can call it directly.

>>> score = get_reward("sentiment")
>>> score(["The film"], ["was wonderful, a joy from start to finish."])[0] > 0.5
True
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Sequence

from alignlab.errors import AlignLabError


def _text(item) -> str:
    """A completion as text (conversational completions are lists of messages)."""
    if isinstance(item, list):
        return " ".join(message.get("content", "") for message in item if isinstance(message, dict))
    return str(item)


@functools.cache
def _vader():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


class RewardSource:
    """A named reward function usable by alignlab and as a TRL ``reward_funcs`` entry."""

    def __init__(self, name: str, score: Callable[[Sequence[str], Sequence[str]], list[float]]):
        self.name = name
        self.__name__ = name.replace(":", "_").replace("-", "_")  # TRL logs rewards/<__name__>
        self._score = score

    def __call__(self, prompts=None, completions=None, **_: object) -> list[float]:
        completions = [_text(c) for c in completions]
        prompts = [_text(p) for p in prompts] if prompts is not None else [""] * len(completions)
        scores = [float(s) for s in self._score(prompts, completions)]
        if len(scores) != len(completions) or any(math.isnan(s) or math.isinf(s) for s in scores):
            raise AlignLabError(f"reward: source {self.name!r} returned NaN, inf or the wrong number of scores")
        return scores

    def __repr__(self) -> str:
        return f"RewardSource({self.name!r})"


def sentiment_scores(prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
    """VADER compound sentiment of each completion, in [-1, 1] (Hutto & Gilbert 2014)."""
    analyzer = _vader()
    return [analyzer.polarity_scores(text)["compound"] for text in completions]


def length_scores(prompts: Sequence[str], completions: Sequence[str], target_words: int = 20) -> list[float]:
    """1 at exactly ``target_words`` words, falling linearly to 0 at twice (or zero) that length."""
    return [max(0.0, 1.0 - abs(len(text.split()) - target_words) / target_words) for text in completions]


def get_reward(name: str) -> RewardSource:
    """Resolve a reward-source name: ``sentiment``, ``length[:N]``."""
    if name == "sentiment":
        return RewardSource(name, sentiment_scores)
    if name == "length" or name.startswith("length:"):
        target = name.partition(":")[2] or "20"
        if not target.isdigit() or int(target) < 1:
            raise AlignLabError(f"reward: got {name!r}, expected length or length:N with N a positive word count")
        return RewardSource(name, functools.partial(length_scores, target_words=int(target)))
    raise AlignLabError(f"reward: got {name!r}, expected one of {', '.join(reward_names())}")


def reward_names() -> list[str]:
    """Reward-source names a form can offer."""
    return ["sentiment", "length", "length:10", "length:40"]
