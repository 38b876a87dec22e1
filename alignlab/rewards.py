"""Reward sources, chosen by name everywhere (CLI ``--reward``, both UIs, probes, RL methods).

A reward source is a callable ``(prompts, completions) -> list[float]`` with a ``name``; it
follows TRL's reward-function interface (``reward_func(prompts=..., completions=..., **kw)``)
so RL trainers can call it directly. Names:

- ``sentiment``: VADER compound score of the completion (the built-in task's ground truth).
- ``length[:N]``: closeness to N words (default 20), a simple, explainable shaping example.
- ``reward-model:<run-id or path>``: a run trained with the ``reward`` method (Bradley-Terry).
- ``judge[:<model>]``: an LLM judge (Zheng et al. 2023, "Judging LLM-as-a-Judge") asked whether a
  response is ``instruction`` (RunConfig.judge_instruction); its score is P(Yes) from the next-token
  logits, so any chat model works offline (default: the default model). For pairs (online DPO) it
  judges both orders and averages, reducing position bias as in OAIF (Guo et al. 2024).
- any name added with :func:`register_reward`.

>>> score = get_reward("sentiment")
>>> score(["The film"], ["was wonderful, a joy from start to finish."])[0] > 0.5
True
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Callable, Sequence

from alignlab.errors import AlignLabError

DEFAULT_INSTRUCTION = "helpful and very short"
ScoreFn = Callable[[Sequence, Sequence], list[float]]
_CUSTOM: dict[str, ScoreFn] = {}


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
    per pair: pairwise sources (the judge) decide online DPO's preferences with it.
    Every result is checked: NaN, inf or a wrong count raises AlignLabError, which fails the run.
    """

    def __init__(self, name: str, score: ScoreFn, raw: bool = False, prefer: Callable | None = None):
        self.name = name
        self.__name__ = name.replace(":", "_").replace("-", "_").replace("/", "_")  # TRL logs rewards/<__name__>
        self._score = score
        self.raw = raw
        self.prefer = prefer

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
        if len(scores) != expected or any(math.isnan(s) or math.isinf(s) for s in scores):
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


def _device():
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class RewardModelScorer:
    """Scores with a run trained by the ``reward`` method, formatted as TRL's RewardTrainer saw it:
    prompt + completion + EOS for text, the chat template for message lists. Loads on first use."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self._loaded = None

    def __call__(self, prompts: Sequence, completions: Sequence) -> list[float]:
        import torch

        from alignlab.models import load_trained

        if self._loaded is None:
            model, tokenizer = load_trained(self.run_dir)
            if tokenizer.pad_token is None:
                tokenizer.pad_token = tokenizer.eos_token
            merged = model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
            self._loaded = merged.to(_device()), tokenizer
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


def reward_model_source(reference: str, runs_dir: str | Path = "runs") -> RewardSource:
    """``reward-model:<run-id or path>``: check the run now, load its model on first use."""
    candidates = [Path(reference).expanduser(), Path(runs_dir) / reference]
    run_dir = next((path for path in candidates if (path / "config.json").exists()), None)
    if run_dir is None:
        raise AlignLabError(f"reward: no run {reference!r} (looked for a run directory at "
                            f"{' and '.join(str(p) for p in candidates)}); train one with --method reward")
    method = json.loads((run_dir / "config.json").read_text()).get("method")
    if method != "reward":
        raise AlignLabError(f"reward: run {reference!r} was trained with method {method!r}, expected 'reward'")
    if not (run_dir / "model").exists():
        raise AlignLabError(f"reward: run {reference!r} has no saved model yet (still running, or it failed)")
    return RewardSource(f"reward-model:{reference}", RewardModelScorer(run_dir), raw=True)


class Judge:
    """LLM-as-a-judge scored from next-token probabilities, pointwise and pairwise.

    Pointwise: P(Yes) / (P(Yes) + P(No)) to "Is the response <instruction>?". Pairwise: P(A) for
    "Which response is more <instruction>?", asked in both orders and averaged.
    """

    def __init__(self, model_name: str, instruction: str = DEFAULT_INSTRUCTION, batch_size: int = 8):
        self.model_name = model_name
        self.instruction = instruction
        self.batch_size = batch_size
        self._loaded = None

    def _load(self):
        if self._loaded is None:
            from alignlab.models import load_model, load_tokenizer

            tokenizer = load_tokenizer(self.model_name)
            model = load_model(self.model_name).to(_device()).eval()
            self._loaded = model, tokenizer
        return self._loaded

    def _answer_probability(self, questions: list[str], yes: str, no: str) -> list[float]:
        """P(``yes``) against P(``no``) as the judge's first answer token, per question."""
        import torch

        model, tokenizer = self._load()
        ids = [tokenizer.encode(word, add_special_tokens=False)[0] for word in (yes, no)]
        texts = [tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False,
                                               add_generation_prompt=True) for q in questions]
        side, tokenizer.padding_side = tokenizer.padding_side, "left"
        probabilities = []
        try:
            for start in range(0, len(texts), self.batch_size):
                batch = tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True,
                                  add_special_tokens=False).to(model.device)
                with torch.no_grad():
                    logits = model(**batch).logits[:, -1, ids].float()
                probabilities.extend(torch.softmax(logits, dim=-1)[:, 0].tolist())
        finally:
            tokenizer.padding_side = side
        return probabilities

    def scores(self, prompts: Sequence[str], completions: Sequence[str]) -> list[float]:
        """P(the response is <instruction>), in [0, 1]."""
        questions = [f"A good response is {self.instruction}.\n\nPrompt: {p}\nResponse: {c}\n\n"
                     f"Is the response {self.instruction}? Answer Yes or No." for p, c in zip(prompts, completions)]
        return self._answer_probability(questions, "Yes", "No")

    def prefer(self, prompts: Sequence[str], first: Sequence[str], second: Sequence[str]) -> list[float]:
        """P(``first`` is better than ``second``), judged in both orders and averaged."""
        def question(prompt, a, b):
            return (f"A good response is {self.instruction}.\n\nPrompt: {prompt}\n\nResponse A: {a}\n\n"
                    f"Response B: {b}\n\nWhich response is more {self.instruction}? Answer A or B.")

        in_order = self._answer_probability([question(*t) for t in zip(prompts, first, second)], "A", "B")
        swapped = self._answer_probability([question(*t) for t in zip(prompts, second, first)], "B", "A")
        return [(a + b) / 2 for a, b in zip(in_order, swapped)]


def judge_source(model_name: str, instruction: str = DEFAULT_INSTRUCTION) -> RewardSource:
    """``judge[:<model>]``: pointwise scores, plus ``prefer`` for pairs."""
    from alignlab.models import resolve_model

    resolve_model(model_name)  # fail now, not mid-run, when the judge model is missing
    if not instruction.strip():
        raise AlignLabError("judge_instruction: got an empty string, expected what a good response is")
    judge = Judge(model_name, instruction)
    name = "judge" if model_name == _default_judge() else f"judge:{model_name}"
    return RewardSource(name, judge.scores, prefer=lambda p, a, b: judge.prefer(
        [_text(x) for x in p], [_text(x) for x in a], [_text(x) for x in b]))


def _default_judge() -> str:
    from alignlab.models import DEFAULT_MODEL

    return DEFAULT_MODEL


def pairwise_reward(source: RewardSource) -> RewardSource:
    """A TRL reward function for online DPO that lets a pairwise source pick the winner.

    TRL's OnlineDPOTrainer scores ``2 * prompts`` with the first completions then the second ones and
    prefers the higher reward. With ``source.prefer``, the pair (i, i + n) gets P(first better) and its
    complement, so the annotator's choice decides (OAIF, Guo et al. 2024); other sources score alone.
    """
    if source.prefer is None:
        return source

    def score(prompts, completions):
        half = len(completions) // 2
        if len(completions) % 2 or [_text(p) for p in prompts[:half]] != [_text(p) for p in prompts[half:]]:
            raise AlignLabError(f"reward: {source.name!r} judges pairs; expected the prompts twice, in the same order")
        first = source.prefer(prompts[:half], completions[:half], completions[half:])
        return list(first) + [1.0 - p for p in first]

    return RewardSource(source.name, score, raw=True)


def register_reward(name: str, score: ScoreFn) -> None:
    """Make ``score(prompts, completions) -> list[float]`` selectable by ``name`` (notebooks, tests)."""
    if name == "sentiment" or name.partition(":")[0] in ("length", "reward-model", "judge"):
        raise AlignLabError(f"reward: {name!r} is a built-in reward name, choose another")
    _CUSTOM[name] = score


def get_reward(name: str, instruction: str = DEFAULT_INSTRUCTION, runs_dir: str | Path = "runs") -> RewardSource:
    """Resolve a reward-source name (see the module docstring); AlignLabError if it cannot work."""
    kind, _, argument = name.partition(":")
    if name == "sentiment":
        return RewardSource(name, sentiment_scores)
    if kind == "length":
        target = argument or "20"
        if not target.isdigit() or int(target) < 1:
            raise AlignLabError(f"reward: got {name!r}, expected length or length:N with N a positive word count")
        return RewardSource(name, functools.partial(length_scores, target_words=int(target)))
    if kind == "reward-model":
        if not argument:
            raise AlignLabError("reward: got 'reward-model', expected reward-model:<run-id or path>")
        return reward_model_source(argument, runs_dir)
    if kind == "judge":
        return judge_source(argument or _default_judge(), instruction)
    if name in _CUSTOM:
        return RewardSource(name, _CUSTOM[name])
    raise AlignLabError(f"reward: got {name!r}, expected one of {', '.join(reward_names())}, "
                        "reward-model:<run-id or path> or judge:<model>")


def reward_for(config) -> RewardSource:
    """The reward source a RunConfig names (judge instruction and runs folder from the config)."""
    return get_reward(config.reward, instruction=config.judge_instruction, runs_dir=config.output_dir)


def reward_names() -> list[str]:
    """Reward-source names a form can offer (``reward-model:<run>`` and ``judge:<model>`` take an argument)."""
    return ["sentiment", "length", "length:10", "length:40", "judge", *_CUSTOM]
