"""Chat in the app: which models can be chosen, and loading their :class:`~alignlab.chat.ChatPair`.

Chat runs in the web server while training runs in a worker process, so it keeps working during a
run. Pairs are loaded on first use and kept (a few at most); a lock makes two sessions that choose a
new model at the same moment load it once. Two sessions on the same pair take turns token by token
(the pair's own lock), so neither blocks the other for a whole answer.

Chat shares the server with everyone, so what a message may cost is capped in tokens: a message over
:data:`MAX_MESSAGE_TOKENS` is not sent (a gentle line says so), and the oldest turns of a conversation
are left out once it outgrows :data:`MAX_CONTEXT_TOKENS` (:func:`fit_histories`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from alignlab.chat import ChatPair
from alignlab.config import config_of
from alignlab.errors import AlignLabError
from alignlab.labels import run_label
from alignlab.methods import registry
from alignlab.models import TINY_MODEL, offered_models
from alignlab.rundir import UNREADABLE, find_run, has_model

BASE_PREFIX = "base:"
RUN_PREFIX = "run:"
KEEP_PAIRS = 3
MAX_MESSAGE_CHARS = 8_000  # checked before tokenizing: a token is rarely longer than a few characters
MAX_MESSAGE_TOKENS = 512
MAX_CONTEXT_TOKENS = 1_536  # the conversation kept (earlier turns and the new message), in tokens
TURN_TOKENS = 8  # about what the chat template adds around each message


def message_notice(text: str, count: Callable[[str], int] | None = None) -> str | None:
    """A gentle line when ``text`` is over the message limits (characters, then tokens by ``count``), else None."""
    if len(text) > MAX_MESSAGE_CHARS:
        return (f"Your message is {len(text):,} characters; the chat takes at most {MAX_MESSAGE_CHARS:,}. "
                "Shorten it and send it again.")
    tokens = count(text) if count else 0
    if tokens > MAX_MESSAGE_TOKENS:
        return (f"Your message is {tokens:,} tokens; the chat takes at most {MAX_MESSAGE_TOKENS:,}. "
                "Shorten it and send it again.")
    return None


def fit_histories(message: str, histories: list[list[dict]], count: Callable[[str], int]) -> tuple[list, str]:
    """Leave out the oldest turns (a user message and its answer) of every history, the same number from
    each, until each history and ``message`` fit in :data:`MAX_CONTEXT_TOKENS`; returns the histories kept
    and a gentle line saying how many turns were left out ("" when none were)."""
    budget = MAX_CONTEXT_TOKENS - count(message) - TURN_TOKENS
    costs = [[count(str(turn.get("content", ""))) + TURN_TOKENS for turn in history] for history in histories]
    dropped = 0
    while any(sum(cost[2 * dropped:]) > budget for cost in costs):
        dropped += 1
    note = (f"The oldest {dropped} turn(s) were left out so the conversation fits the chat's "
            f"{MAX_CONTEXT_TOKENS:,} tokens." if dropped else "")
    return [history[2 * dropped:] for history in histories], note


def token_counter(pair: ChatPair) -> Callable[[str], int]:
    """Counts the tokens of a text with the pair's tokenizer (under the pair's lock: a fast tokenizer is not
    safe to use from two threads at once)."""
    def count(text: str) -> int:
        with pair.lock:
            return len(pair.tokenizer(text, add_special_tokens=False)["input_ids"])

    return count


def _chats(run: dict) -> bool:
    """Whether a readable run can be chatted with: its method trains a text model and the model was saved."""
    spec = registry().get(run["method"])
    return spec is not None and spec.model_kind == "causal-lm" and has_model(run["path"])


class ChatService:
    """The chat models the app offers (base models and finished runs) and their loaded pairs."""

    def __init__(self, runs_dir: str | Path, trust_remote_code: bool = False):
        self.runs_dir = Path(runs_dir).resolve()
        self.trust_remote_code = trust_remote_code
        self._pairs: OrderedDict[tuple[str, str], ChatPair] = OrderedDict()
        self._load_lock = threading.Lock()

    def choices(self, runs: list[dict]) -> list[tuple[str, str]]:
        """(label, value) for the model picker: base models (:func:`alignlab.models.offered_models`), then runs
        that saved a text model, each labelled with what it is (:func:`alignlab.labels.run_label`) and how it
        ended."""
        options = [(f"base model: {name}" + (" (random weights, for tests)" if name == TINY_MODEL else ""),
                    BASE_PREFIX + name) for name in offered_models()]
        for run in runs:
            # An unreadable run is listed, so it is not missed; choosing it says what is wrong.
            if run["state"] == UNREADABLE or (run["state"] in ("finished", "stopped") and _chats(run)):
                options.append((run_label(run, show_state=True), RUN_PREFIX + run["run_id"]))
        return options

    @staticmethod
    def newest_finished(runs: list[dict]) -> str | None:
        """The picker value of the newest finished run that saved a text model (``runs`` newest first, as
        :func:`alignlab.rundir.list_runs` gives them), or None: the Chat tab opens on it."""
        return next((RUN_PREFIX + run["run_id"] for run in runs if run["state"] == "finished" and _chats(run)), None)

    def pair(self, choice: str, mode: str) -> ChatPair:
        """The loaded pair for a picker value; loads it on first use. ``mode``: continue or chat."""
        key = (choice, mode)
        with self._load_lock:
            if key in self._pairs:
                self._pairs.move_to_end(key)
                return self._pairs[key]
            pair = self._load(choice, mode)
            self._pairs[key] = pair
            while len(self._pairs) > KEEP_PAIRS:
                self._pairs.popitem(last=False)
            return pair

    def forget_run(self, run_id: str) -> None:
        """Drop a run's loaded pairs (after it was deleted)."""
        with self._load_lock:
            for key in [key for key in self._pairs if key[0] == RUN_PREFIX + run_id]:
                del self._pairs[key]

    def _load(self, choice: str, mode: str) -> ChatPair:
        if choice.startswith(BASE_PREFIX) and choice[len(BASE_PREFIX):] in offered_models():
            return ChatPair.base_only(choice[len(BASE_PREFIX):], mode=mode)
        if choice.startswith(RUN_PREFIX):
            run_dir = find_run(self.runs_dir, choice[len(RUN_PREFIX):])

            if config_of(run_dir).trust_remote_code and not self.trust_remote_code:
                raise AlignLabError("model: this run needs remote model code; start the app with --trust-remote-code")
            return ChatPair.from_run(run_dir, mode=mode)
        raise AlignLabError(f"model: got {choice!r}, expected a base model or a run from the list")
