"""Reward sources, chosen by name everywhere (CLI ``--reward``, both UIs, probes, RL methods).

A reward source is a callable ``(prompts, completions) -> list[float]`` with a ``name``; it
follows TRL's reward-function interface (``reward_func(prompts=..., completions=..., **kw)``)
so RL trainers can call it directly. Names:

- ``sentiment``: VADER compound score of the completion (the built-in task's ground truth).
- ``length[:N]``: closeness to N words (default 20), a simple, explainable shaping example.
- ``reward-model:<run-id or path>``: a run trained with the ``reward`` method (Bradley-Terry).
- ``judge[:<model>]``: an LLM judge from its own token probabilities, so any chat model works offline
  (default: the default model): how much more likely it finds a response when the request asks for
  ``instruction`` (RunConfig.judge_instruction) than for ``opposite`` (RunConfig.judge_opposite), per token
  (:meth:`alignlab.judge.Judge.contrast`). Each response is scored alone: no position bias, by construction.
- ``judge-pairwise[:<model>]``: the LLM-as-a-judge questions (Zheng et al. 2023): P(Yes) to "is the response
  <instruction>?", and for pairs (online DPO, annotate) "which is more <instruction>?" in both orders,
  averaged, reducing position bias as in OAIF (Guo et al. 2024); a small model mostly reads the order.
- ``sentiment-followed[:P]``: ``sentiment`` where the completion does what its prompt asked (the built-in task's
  check: it begins with the requested opening), -1 (VADER's floor) where it does not, or with ``:P`` its
  ``sentiment`` minus ``P`` (a softer gate); a prompt that asks for nothing the check can tell scores plain
  ``sentiment``. The instruction becomes part of what is rewarded, as a
  format reward is in RL on verifiable tasks, so an online method cannot buy sentiment by dropping the opening.
- any name added with :func:`register_reward`.

Each kind is one :class:`RewardKind` entry of ``REWARD_KINDS`` (prefix, argument parser, builder,
offered names, and for kinds that take a path the arguments that load none): adding a source is
adding an entry. :func:`check_no_path` is the rule for names from an untrusted client.

>>> score = get_reward("sentiment")
>>> score(["The film"], ["was wonderful, a joy from start to finish."])[0] > 0.5
True
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alignlab import rundir
from alignlab.errors import AlignLabError
from alignlab.judge import DEFAULT_INSTRUCTION, DEFAULT_OPPOSITE, Judge
from alignlab.methods import registry
from alignlab.metrics import NonFiniteMetric
from alignlab.models import DEFAULT_MODEL, TINY_MODEL, load_trained, resolve_model

ScoreFn = Callable[[Sequence, Sequence], list[float]]


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
    """A named reward function usable by alignlab and as a TRL ``reward_funcs`` entry.

    ``score(prompts, completions)`` gets plain text, or the raw items (strings or message lists)
    with ``raw=True``. ``prefer(prompts, first, second)``, when given, returns P(first is better)
    per pair: pairwise sources (the judge) decide online DPO's preferences with it. ``prefer_once`` is the
    same question asked in one order only, ``first`` shown first (its position bias included): the AI
    annotator (:mod:`alignlab.annotate`) asks it both ways and keeps each answer.
    Every result is checked: NaN, inf or a wrong count raises AlignLabError, which fails the run.
    """

    def __init__(self, name: str, score: ScoreFn, raw: bool = False, prefer: Callable | None = None,
                 prefer_once: Callable | None = None):
        self.name = name
        self.__name__ = name.replace(":", "_").replace("-", "_").replace("/", "_")  # TRL logs rewards/<__name__>
        self._score = score
        self.raw = raw
        self.prefer = prefer
        self.prefer_once = prefer_once

    def __call__(self, prompts=None, completions=None, **_: object) -> list[float]:
        if prompts is None:
            prompts = [""] * len(completions)
        if not self.raw:
            prompts, completions = [_text(p) for p in prompts], [_text(c) for c in completions]
        return self._checked(self._score(prompts, completions), len(completions))

    def _checked(self, scores, expected: int) -> list[float]:
        try:
            scores = [float(s) for s in scores]
        except (TypeError, ValueError) as error:
            raise AlignLabError(f"reward: source {self.name!r} returned a non-number ({error})") from None
        if len(scores) != expected:
            raise AlignLabError(f"reward: source {self.name!r} returned the wrong number of scores ({len(scores)} "
                                f"for {expected} completions)")
        bad = [s for s in scores if not math.isfinite(s)]
        if bad:  # the run adds the step it was scoring for
            raise NonFiniteMetric(f"reward: source {self.name!r} returned NaN or inf ({bad[0]}) for {len(bad)} of "
                                  f"{expected} completions, expected finite numbers")
        return scores

    def __repr__(self) -> str:
        return f"RewardSource({self.name!r})"

    def pairwise(self) -> RewardSource:
        """A TRL reward function for online DPO that lets this source pick the winner of each pair.

        TRL's OnlineDPOTrainer scores ``2 * prompts`` with the first completions then the second ones and
        prefers the higher reward. With ``prefer``, the pair (i, i + n) gets P(first better) and its
        complement, so the annotator's choice decides (OAIF, Guo et al. 2024); other sources score alone.
        """
        if self.prefer is None:
            return self

        def score(prompts, completions):
            half = len(completions) // 2
            if len(completions) % 2 or [_text(p) for p in prompts[:half]] != [_text(p) for p in prompts[half:]]:
                raise AlignLabError(
                    f"reward: {self.name!r} judges pairs; expected the prompts twice, in the same order")
            first = self.prefer(prompts[:half], completions[:half], completions[half:])
            return list(first) + [1.0 - p for p in first]

        return RewardSource(self.name, score, raw=True)


def sentiment_scores(prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
    """VADER compound sentiment of each completion, in [-1, 1] (Hutto & Gilbert 2014)."""
    analyzer = _vader()
    return [analyzer.polarity_scores(text)["compound"] for text in completions]


def followed_sentiment_scores(prompts: Sequence, completions: Sequence[str], penalty: float | None = None
                              ) -> list[float]:
    """:func:`sentiment_scores` where the completion follows its prompt's instruction (or the prompt asks for
    nothing :func:`alignlab.follow.opening_followed` can tell); where it does not, -1, or with ``penalty`` its
    sentiment minus ``penalty``.

    >>> from alignlab.task import task_instruction
    >>> prompts = [task_instruction("The plot is thin, but")] * 2
    >>> [round(x, 2) for x in followed_sentiment_scores(prompts, ["The plot is thin, but a joy to watch!",
    ...                                                           "A wonderful film, a joy to watch!"])]
    [0.76, -1.0]
    >>> [round(x, 2) for x in followed_sentiment_scores(prompts, ["A wonderful film, a joy to watch!"], penalty=1)]
    [-0.17]
    """
    from alignlab.follow import opening_followed

    scores = sentiment_scores(prompts, completions)
    dropped = (lambda score: -1.0) if penalty is None else (lambda score: score - penalty)
    return [dropped(score) if kept is False else score
            for score, kept in zip(scores, opening_followed(prompts, completions))]


def length_scores(prompts: Sequence[str], completions: Sequence[str], target_words: int = 20) -> list[float]:
    """1 at exactly ``target_words`` words, falling linearly to 0 at twice (or zero) that length."""
    return [max(0.0, 1.0 - abs(len(text.split()) - target_words) / target_words) for text in completions]


class RewardModelScorer:
    """Scores with a run trained by the ``reward`` method, formatted as TRL's RewardTrainer saw it:
    prompt + completion + EOS for text, the chat template for message lists. Loads on first use."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self._loaded = None

    def __call__(self, prompts: Sequence, completions: Sequence) -> list[float]:
        import torch


        if self._loaded is None:
            model, tokenizer = load_trained(self.run_dir)
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            merged = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
            self._loaded = merged, tokenizer
        model, tokenizer = self._loaded
        texts = []
        for prompt, completion in zip(prompts, completions):
            if isinstance(prompt, list):
                answer = completion if isinstance(completion, list) else [{"role": "assistant", "content": completion}]
                messages = prompt + answer
                texts.append(tokenizer.apply_chat_template(messages, tokenize=False))
            else:
                text = prompt + _text(completion)
                texts.append(text if text.endswith(tokenizer.eos_token) else text + tokenizer.eos_token)
        scores = []
        for start in range(0, len(texts), 16):
            batch = tokenizer(texts[start:start + 16], return_tensors="pt", padding=True).to(model.device)
            with torch.no_grad():
                scores.extend(model(**batch).logits[:, 0].float().tolist())
        return scores


def _run_method(run_dir: Path) -> str | None:
    """The method a run directory was trained with, None if it is not a run."""
    return rundir.read_config(run_dir).get("method") if rundir.is_run_dir(run_dir) else None


def _trains_scorer(method: str | None) -> bool:
    """True for a method whose trained model is a scorer (a sequence classifier), usable as a reward."""
    spec = registry().get(method or "")
    return spec is not None and spec.model_kind == "sequence-classifier"


def reward_model_source(reference: str, runs_dir: str | Path | None = None) -> RewardSource:
    """``reward-model:<run-id or path>``: check the run now, load its model on first use."""
    try:
        run_dir = rundir.find(reference, runs_dir)
    except AlignLabError as error:
        raise AlignLabError(f"reward: {str(error).removeprefix('run: ')}; train one with --method reward") from None
    method = _run_method(run_dir)
    if not _trains_scorer(method):
        scorers = ", ".join(name for name in registry() if _trains_scorer(name))
        raise AlignLabError(f"reward: run {reference!r} was trained with method {method!r}, which trains a text "
                            f"generator; expected a run of a method that trains a scorer ({scorers})")
    if not rundir.has_model(run_dir):
        raise AlignLabError(f"reward: run {reference!r} has no saved model yet (still running, or it failed)")
    return RewardSource(f"reward-model:{reference}", RewardModelScorer(run_dir), raw=True)


def judge_source(model_name: str, instruction: str = DEFAULT_INSTRUCTION, opposite: str = DEFAULT_OPPOSITE,
                 pairwise: bool = False) -> RewardSource:
    """``judge[:<model>]``: the judge's likelihood contrast of each response between a request for
    ``instruction`` and one for ``opposite`` (:meth:`alignlab.judge.Judge.contrast`), pointwise, so a pair's
    order cannot matter. ``judge-pairwise[:<model>]`` (``pairwise``): P(Yes) pointwise, plus ``prefer`` for pairs,
    asked in both orders (the position-bias lesson)."""
    prefix = "judge-pairwise" if pairwise else "judge"
    try:
        resolve_model(model_name)  # fail now, not mid-run, when the judge model is missing
    except AlignLabError as error:  # the error names the reward that asks for the judge, not a "model" field
        reason = str(error).removeprefix("model: ").removeprefix(f"{model_name!r} ")
        raise AlignLabError(f"reward: the judge model {model_name!r} of '{prefix}:{model_name}' {reason}") from None
    if not instruction.strip():
        raise AlignLabError("judge_instruction: got an empty string, expected what a good response is")
    judge = Judge(model_name, instruction, opposite=opposite)
    name = prefix if model_name == _default_judge() else f"{prefix}:{model_name}"
    if not pairwise:
        return RewardSource(name, judge.contrast)

    def texts(ask: Callable) -> Callable:
        return lambda p, a, b: ask([_text(x) for x in p], [_text(x) for x in a], [_text(x) for x in b])

    return RewardSource(name, judge.scores, prefer=texts(judge.prefer), prefer_once=texts(judge.prefer_once))


def _default_judge() -> str:
    return DEFAULT_MODEL


# --- the registry: one entry per kind of reward source --------------------------------------------
@dataclass(frozen=True)
class RewardKind:
    """One kind of reward source: how its name is spelled, checked, built and offered.

    A name is ``prefix`` or ``prefix:argument``. ``parse`` turns the argument ("" when there is none)
    into what ``build`` needs, or raises AlignLabError saying how to spell it; ``build(value, name=...,
    instruction=..., runs_dir=...)`` makes the source (keywords it does not need land in ``**_``).
    A kind whose argument may be a file or model path sets ``safe_arguments``: the arguments a name
    from an untrusted client (a browser) may use instead, see :func:`check_no_path`.
    """

    prefix: str
    usage: str  # how to spell it, for error messages
    parse: Callable[[str], Any]
    build: Callable[..., RewardSource]
    offered: tuple[str, ...] = ()  # names a form lists as they are
    safe_arguments: Callable[[Path], list[str]] | None = None  # runs_dir -> arguments that load no path

    @property
    def takes_path(self) -> bool:
        """Whether the argument may name a path (a run directory, a local model)."""
        return self.safe_arguments is not None


def _no_argument(prefix: str) -> Callable[[str], None]:
    def parse(argument: str) -> None:
        if argument:
            raise AlignLabError(f"reward: got {prefix}:{argument!r}, expected {prefix} (it takes no argument)")
    return parse


def _word_count(argument: str) -> int:
    target = argument or "20"
    if not target.isdigit() or int(target) < 1:
        raise AlignLabError(
            f"reward: got 'length:{argument}', expected length or length:N with N a positive word count")
    return int(target)


def _penalty(argument: str) -> float | None:
    if not argument:
        return None
    try:
        value = float(argument)
    except ValueError:
        value = math.nan
    if not 0 < value <= 2:
        raise AlignLabError(f"reward: got 'sentiment-followed:{argument}', expected sentiment-followed or "
                            "sentiment-followed:P with P in (0, 2], what a dropped instruction costs")
    return value


def _run_reference(argument: str) -> str:
    if not argument:
        raise AlignLabError("reward: got 'reward-model', expected reward-model:<run-id or path>")
    return argument


def _reward_runs(runs_dir: Path) -> list[str]:
    """Ids of the runs in ``runs_dir`` whose method trains a scorer (the ``reward`` method)."""
    if not runs_dir.is_dir():
        return []
    return sorted(path.name for path in runs_dir.iterdir() if _trains_scorer(_run_method(path)))


def _builtin_models(runs_dir: Path) -> list[str]:
    return [DEFAULT_MODEL, TINY_MODEL]


REWARD_KINDS: dict[str, RewardKind] = {kind.prefix: kind for kind in [
    RewardKind("sentiment", "sentiment", _no_argument("sentiment"),
               lambda _, name, **__: RewardSource(name, sentiment_scores), offered=("sentiment",)),
    RewardKind("length", "length[:N]", _word_count,
               lambda words, name, **_: RewardSource(name, functools.partial(length_scores, target_words=words)),
               offered=("length", "length:10", "length:40")),
    RewardKind("reward-model", "reward-model:<run-id or path>", _run_reference,
               lambda reference, runs_dir, **_: reward_model_source(reference, runs_dir),
               safe_arguments=_reward_runs),
    RewardKind("judge", "judge[:<model>]", lambda argument: argument or _default_judge(),
               lambda model, instruction, opposite, **_: judge_source(model, instruction, opposite),
               offered=("judge",), safe_arguments=_builtin_models),
    RewardKind("judge-pairwise", "judge-pairwise[:<model>]", lambda argument: argument or _default_judge(),
               lambda model, instruction, **_: judge_source(model, instruction, pairwise=True),
               offered=("judge-pairwise",), safe_arguments=_builtin_models),
    RewardKind("sentiment-followed", "sentiment-followed[:P]", _penalty,
               lambda penalty, name, **__: RewardSource(
                   name, functools.partial(followed_sentiment_scores, penalty=penalty)),
               offered=("sentiment-followed", "sentiment-followed:1")),
]}
_BUILT_IN = frozenset(REWARD_KINDS)


def register_reward(name: str, score: ScoreFn) -> None:
    """Make ``score(prompts, completions) -> list[float]`` selectable by ``name`` (notebooks, tests)."""
    if name in _BUILT_IN or name.partition(":")[0] in _BUILT_IN:
        raise AlignLabError(f"reward: {name!r} is a built-in reward name, choose another")
    REWARD_KINDS[name] = RewardKind(name, name, _no_argument(name),
                                    lambda _, **__: RewardSource(name, score), offered=(name,))


def _kind_of(name: str) -> tuple[RewardKind, str]:
    """The registry entry a name selects and its argument ("" if none); AlignLabError if there is none."""
    if name in REWARD_KINDS:
        return REWARD_KINDS[name], ""
    prefix, _, argument = name.partition(":")
    if prefix in REWARD_KINDS:
        return REWARD_KINDS[prefix], argument
    forms = [kind.usage for kind in REWARD_KINDS.values() if kind.usage not in kind.offered]
    raise AlignLabError(f"reward: got {name!r}, expected one of {', '.join(reward_names())}, or {' or '.join(forms)}")


def get_reward(name: str, instruction: str = DEFAULT_INSTRUCTION, runs_dir: str | Path | None = None,
               opposite: str = DEFAULT_OPPOSITE) -> RewardSource:
    """Resolve a reward-source name (see the module docstring; a run id is looked up in ``runs_dir``, the lab's runs
    folder when None); AlignLabError if it cannot work. ``instruction`` and ``opposite``: what a judge asks for."""
    kind, argument = _kind_of(name)
    runs_dir = rundir.default_runs_dir() if runs_dir is None else Path(runs_dir)
    return kind.build(kind.parse(argument), name=name, instruction=instruction, opposite=opposite, runs_dir=runs_dir)


def check_no_path(name: str, runs_dir: str | Path) -> None:
    """AlignLabError unless ``name`` loads nothing from a path its sender chose.

    For names from an untrusted client (the Gradio app): a kind that takes a path accepts only its
    safe arguments instead, a reward model being a reward run of ``runs_dir`` and a judge one of the
    built-in models.

    >>> check_no_path("judge:/etc", "runs")  # doctest: +NORMALIZE_WHITESPACE
    Traceback (most recent call last):
    ...
    alignlab.errors.AlignLabError: reward: 'judge:/etc' is not offered here (no paths); expected
        judge:<one of smollm2-135m-instruct, tiny-random>
    """
    kind, argument = _kind_of(name)
    value = kind.parse(argument)
    if kind.takes_path:
        safe = kind.safe_arguments(Path(runs_dir))
        if value not in safe:
            choices = ", ".join(safe) or "none yet"
            raise AlignLabError(f"reward: {name!r} is not offered here (no paths); expected "
                                f"{kind.prefix}:<one of {choices}>")


def reward_for(config) -> RewardSource:
    """The reward source a RunConfig names (judge instruction and runs folder from the config)."""
    return get_reward(config.reward, instruction=config.judge_instruction, runs_dir=config.output_dir,
                      opposite=config.judge_opposite)


def reward_names() -> list[str]:
    """Reward-source names a form can offer (``reward-model:<run>`` and ``judge:<model>`` take an argument)."""
    return [name for kind in REWARD_KINDS.values() for name in kind.offered]
