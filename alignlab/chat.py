"""Reference vs aligned: the two models a lab compares, side by side, streamed token by token.

With a LoRA adapter the reference is the same weights with the adapter disabled
(``PeftModel.disable_adapter()``); without LoRA it is a frozen copy loaded from the base model.

:class:`ChatPair` answers one prompt with both models through the lab's decode loop
(:func:`alignlab.decoding.stream`): one token for the reference, one for the aligned model, each side
with its own ``torch.Generator`` seeded identically, so both columns draw from the same random stream
and a difference between them comes from the weights, not from luck. When the two share weights (a
LoRA adapter), each token pair is one batched forward pass: PEFT's mixed-adapter batch runs the
reference row without the adapter and the aligned row with it. A :class:`ChatReply` is yielded after
every token pair; the last one has ``done=True`` and both answers' rewards.

Two modes:

- ``chat`` (the default): each side keeps its own history of ``{"role", "content"}`` messages (its
  own earlier answers, not the other side's), rendered with the tokenizer's chat template. The
  built-in task trains this way: a user message asks for a short review that begins with an opening.
- ``continue``: the message is raw text that the models continue ("I went in with low expectations
  and" -> "..."), as a run trained on plain-text prompts saw them. Histories are ignored: each
  message is continued on its own, since there is no conversation in a text continuation.

:func:`trained_mode` picks the mode that shows what a run learned, with a line saying why, for the UIs.

A run can be chatted with while it trains (:meth:`ChatPair.from_handle`): the live model is only
read, never switched to eval mode nor to the reference, and the reference is a frozen copy. Every
chat step holds :func:`lock_for` ``(model)``, which :func:`reference_of` holds too while it switches
a LoRA adapter off, so a chat never reads the aligned model while the probe has the adapter off.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from alignlab import devices
from alignlab.config import config_of
from alignlab.errors import AlignLabError
from alignlab.generation import SamplingSettings, sentence_end, stop_token_ids
from alignlab.models import load_model, load_tokenizer, load_trained
from alignlab.reference import frozen_reference, is_adapter_model, lock_for
from alignlab.rewards import RewardSource, get_reward, reward_for
from alignlab.task import BUILTIN_TASK

MODES = ("continue", "chat")

@dataclass
class ChatReply:
    """One streamed update of both columns: the texts so far; rewards and histories once ``done``.

    ``reference_history`` / ``aligned_history`` are the histories to pass to the next turn (the
    given history plus this message and answer); they are set on the final reply only.
    """

    reference: str
    aligned: str
    done: bool = False
    reference_reward: float | None = None
    aligned_reward: float | None = None
    reference_history: list[dict] = field(default_factory=list)
    aligned_history: list[dict] = field(default_factory=list)


class _Side:
    """One column's decoding state: its tokens so far, and whether it has ended."""

    def __init__(self):
        self.tokens: list[int] = []
        self.finished = False


class ChatPair:
    """Reference and aligned model answering the same prompt with the same seed and settings."""

    def __init__(self, model, tokenizer, base_model_name: str | None = None,
                 reward: str | RewardSource = "sentiment", mode: str = "chat",
                 lock: threading.Lock | None = None, *, live: bool = False, trust_remote_code: bool = False):
        """``model`` is the aligned model; its reference is found as follows.

        - a LoRA model that is not ``live``: the same model under ``disable_adapter()``;
        - otherwise, with ``base_model_name``: a frozen copy of that base model;
        - no ``base_model_name`` and no adapter: the model itself (both columns identical).

        ``live=True`` marks a model that a run is training right now: it is never switched to eval
        mode nor has its adapter switched off (the training thread would see it), so the reference
        is a frozen copy of ``base_model_name``. ``reward`` is a reward-source name or a
        :class:`~alignlab.rewards.RewardSource` (the ``reward`` attribute may be swapped later).
        ``lock`` is held around each token pair; by default it is shared by every ChatPair on the
        same model.
        """
        if mode not in MODES:
            raise AlignLabError(f"mode: got {mode!r}, expected one of {', '.join(MODES)}")
        self.model = model
        self.tokenizer = tokenizer
        self.mode = mode
        self.reward = get_reward(reward) if isinstance(reward, str) else reward
        self.lock = lock or lock_for(model)
        self.live = live
        self.shares_weights = is_adapter_model(model) and not live
        if self.shares_weights:
            self.reference_model = model
        elif base_model_name is not None:
            self.reference_model = frozen_reference(base_model_name, model, trust_remote_code)
        elif live:
            raise AlignLabError("model: a live model needs base_model_name for its frozen reference copy")
        else:
            self.reference_model = model
        if not live:
            model.eval()
        self.identical = self.reference_model is model and not self.shares_weights
        # shared weights: both columns in one batched forward per token (False: one forward per side)
        self.mixed_batch = self.shares_weights

    # --- constructors --------------------------------------------------------------------------
    @classmethod
    def from_run(cls, run_dir: str | Path, reward: str | None = None, mode: str | None = None,
                 dtype: str = "auto") -> ChatPair:
        """Chat with a run's saved model (see :func:`alignlab.models.load_trained`) and its reference.

        ``reward`` defaults to the run's reward source (:func:`~alignlab.rewards.reward_for`); ``mode``
        to the one it trained in (:func:`trained_mode`); ``dtype`` is asked of the device policy
        (:func:`alignlab.devices.placement`: auto, bf16, fp16 or fp32).
        """

        config = config_of(run_dir)
        _check_generative(config)
        model, tokenizer = load_trained(run_dir, trust_remote_code=config.trust_remote_code,
                                        placement=devices.placement(dtype))
        return cls(model, tokenizer, base_model_name=None if is_adapter_model(model) else config.model,
                   reward=reward or reward_for(config), mode=mode or trained_mode(config)[0],
                   trust_remote_code=config.trust_remote_code)

    @classmethod
    def from_handle(cls, handle, reward: str | None = None, mode: str | None = None) -> ChatPair:
        """Chat with the model a :class:`~alignlab.runner.RunHandle` is training, while it trains.

        The live model is only read (under ``torch.no_grad()``); the reference is a frozen copy of
        the base model, so chatting never changes what the training thread computes. Weights may
        move between two tokens of one answer: the aligned column follows training as it goes. The
        tokenizer is a copy: a fast tokenizer used from two threads at once can fail ("Already borrowed").
        """
        config = handle.config
        _check_generative(config)
        if handle.model is None or handle.tokenizer is None:
            raise AlignLabError(f"run: {handle.run_id} has not loaded its model yet; try again in a moment")
        return cls(handle.model, copy.deepcopy(handle.tokenizer), base_model_name=config.model,
                   reward=reward or reward_for(config), mode=mode or trained_mode(config)[0], live=not handle.done,
                   trust_remote_code=config.trust_remote_code)

    @classmethod
    def base_only(cls, model_name: str, reward: str = "sentiment", mode: str = "chat",
                  trust_remote_code: bool = False, dtype: str = "auto") -> ChatPair:
        """Both columns from the base model (aligned == reference): what chat looks like before training, loaded
        as the device policy places ``dtype`` (:func:`alignlab.devices.placement`)."""

        model = load_model(model_name, trust_remote_code=trust_remote_code, placement=devices.placement(dtype))
        return cls(model, load_tokenizer(model_name, trust_remote_code), reward=reward, mode=mode)

    # --- generation ------------------------------------------------------------------------------
    def stream(self, message: str, settings: SamplingSettings, reference_history: list[dict] | None = None,
               aligned_history: list[dict] | None = None) -> Iterator[ChatReply]:
        """Yield a :class:`ChatReply` after each token pair; the last one is ``done`` with rewards.

        Each side stops at an end-of-sequence token or after ``settings.max_new_tokens`` tokens.
        """
        if not message or not message.strip():
            raise AlignLabError("message: got an empty message, expected some text")
        reference_history = list(reference_history or [])
        aligned_history = list(aligned_history or [])
        device = next(self.model.parameters()).device
        prompts = [self._encode(message, history).to(device) for history in (reference_history, aligned_history)]
        if self.identical:
            prompts = prompts[:1]  # base only: one model, both columns show its answer
        sides = [_Side() for _ in prompts]
        stop_ids = self._stop_ids()
        streams = self._streams(prompts, settings, stop_ids, device)
        while not all(side.finished for side in sides):
            with self.lock:
                for stream, context, columns in streams:
                    if all(sides[column].finished for column in columns):
                        continue
                    with context():
                        step = next(stream, None)
                    if step is None:  # max_new_tokens reached
                        for column in columns:
                            sides[column].finished = True
                        continue
                    for row, token in zip(step.rows, step.tokens):
                        side = sides[columns[row]]
                        if token in stop_ids:
                            side.finished = True
                        else:
                            side.tokens.append(token)
                            side.finished = len(side.tokens) >= settings.max_new_tokens
            if not all(side.finished for side in sides):
                yield self._reply(sides)
        yield self._final(sides, message, reference_history, aligned_history)

    def generate_pair(self, message: str, settings: SamplingSettings, reference_history: list[dict] | None = None,
                      aligned_history: list[dict] | None = None) -> ChatReply:
        """Both answers at once (the last reply of :meth:`stream`)."""
        reply = None
        for latest in self.stream(message, settings, reference_history, aligned_history):
            reply = latest
        return reply

    # --- internals -------------------------------------------------------------------------------
    def _reference_context(self):
        return self.model.disable_adapter() if self.shares_weights else contextlib.nullcontext()

    def _encode(self, message: str, history: list[dict]):
        if self.mode == "chat":
            messages = [*history, {"role": "user", "content": message}]
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            text = message
        ids = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        if ids.shape[1] == 0:
            raise AlignLabError(f"message: {message!r} encodes to no tokens")
        return ids

    def _stop_ids(self) -> set[int]:
        return set(stop_token_ids(self.model, self.tokenizer))

    def _streams(self, prompts: list, settings: SamplingSettings, stop_ids: set[int], device) -> list[tuple]:
        """``(decode stream, context to step it in, the columns its rows are)`` for the sides of one answer.

        Shared weights (``mixed_batch``): one stream over both prompts, left-padded into one batch whose
        reference row runs through the base weights (PEFT's ``__base__``), so each token pair is one
        forward pass. Otherwise one stream per side, the reference's stepped with the adapter off.
        """
        import torch

        from alignlab.decoding import stream

        def generator():
            return torch.Generator(device=device).manual_seed(settings.seed)

        common = dict(max_new_tokens=settings.max_new_tokens, temperature=settings.temperature,
                      top_p=settings.top_p, stop_ids=stop_ids)
        if self.mixed_batch and len(prompts) == 2:
            batch = self._padded(prompts)
            return [(stream(self.model, batch["input_ids"], batch["attention_mask"],
                            generator=[generator(), generator()],
                            adapter_names=["__base__", self.model.active_adapter], **common),
                     contextlib.nullcontext, [0, 1])]
        sides = [(self.reference_model, self._reference_context), (self.model, contextlib.nullcontext)]
        return [(stream(model, ids, torch.ones_like(ids), generator=[generator()], **common), context, [column])
                for column, (ids, (model, context)) in enumerate(zip(prompts, sides))]

    def _padded(self, prompts: list) -> dict:
        """Prompts (1 x length each) left-padded into one batch with its attention mask."""
        import torch

        width = max(ids.shape[1] for ids in prompts)
        rows = [torch.cat([ids.new_full((1, width - ids.shape[1]), self._pad_id()), ids], dim=1) for ids in prompts]
        masks = [torch.cat([ids.new_zeros(1, width - ids.shape[1]), torch.ones_like(ids)], dim=1) for ids in prompts]
        return {"input_ids": torch.cat(rows), "attention_mask": torch.cat(masks)}

    def _pad_id(self) -> int:
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id

    def _texts(self, sides: list[_Side]) -> tuple[str, str]:
        texts = [self.tokenizer.decode(side.tokens, skip_special_tokens=True) for side in sides]
        return texts[0], texts[-1]

    def _reply(self, sides: list[_Side]) -> ChatReply:
        return ChatReply(*self._texts(sides))

    def _final(self, sides, message, reference_history, aligned_history) -> ChatReply:
        """The finished pair: each answer ends at its last full sentence (one cut off at the length limit
        would stop mid-word), in every mode, blind votes included, and that is the text scored, voted on
        and kept in the history."""
        reference, aligned = (sentence_end(text) for text in self._texts(sides))
        turn = {"role": "user", "content": message}
        if self.mode == "chat":  # a reward model scores the whole conversation, chat template included
            prompts = [[*reference_history, turn], [*aligned_history, turn]]
        else:
            prompts = [message, message]
        reference_reward, aligned_reward = self.reward(prompts, [reference, aligned])
        return ChatReply(reference, aligned, done=True, reference_reward=reference_reward,
                         aligned_reward=aligned_reward,
                         reference_history=[*reference_history, turn, {"role": "assistant", "content": reference}],
                         aligned_history=[*aligned_history, turn, {"role": "assistant", "content": aligned}])


def _check_generative(config) -> None:
    if config.spec.model_kind != "causal-lm":
        raise AlignLabError(f"run: method {config.method!r} trains a scorer, not a text generator; "
                            "there is nothing to chat with")


def trained_mode(config=None) -> tuple[str, str]:
    """``(mode, why)``: the mode to chat with a run of ``config`` in by default, and a short line
    saying why, for the UIs to show beside the mode choice (``config=None``: a base model, untrained).

    The built-in task asks for reviews through the chat template, and the trainers render every
    conversational prompt with it, so chat is the default; continue suits plain-text prompts.

    >>> trained_mode()[0]
    'chat'
    """

    if config is None:
        why = "A base model: Chat talks to it through its chat template, as a user would."
    elif config.dataset == BUILTIN_TASK:
        why = "This run trained on chat-formatted review requests, so Chat shows its effect."
    else:
        why = ("Chat renders messages with the chat template, as training did for conversational prompts; "
               "pick Continue if this run's prompts were plain text.")
    return "chat", why
