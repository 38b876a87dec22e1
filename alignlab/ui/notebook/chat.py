"""``Chat(run)``: the reference and the aligned model answering side by side, streamed token by token.

Both columns come from one :class:`alignlab.chat.ChatPair` (same seed, same settings), so a
difference between them comes from training. ``run`` is a live :class:`~alignlab.runner.RunHandle`
(chat while it trains), a run directory (chat with the saved model), or a model name (base model in
both columns). The mode starts as the one the run trained in (:func:`alignlab.chat.trained_mode`:
chat, for the built-in task's review requests), with a line saying why; switching it starts a fresh
conversation. Models load on the first message, in a background thread, like every answer: the
kernel never waits on the chat unless :meth:`Chat.send` is asked to. With **Blind vote** on, the columns
show A and B in a random order and people vote (:mod:`alignlab.ui.notebook.voting`).
"""

from __future__ import annotations

import html
import threading
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from alignlab.chat import ChatPair, ChatReply, trained_mode
from alignlab.config import config_of
from alignlab.errors import AlignLabError
from alignlab.generation import SamplingSettings
from alignlab.rewards import get_reward, reward_names
from alignlab.rundir import is_run_dir
from alignlab.ui.format import chat_settings
from alignlab.ui.notebook.voting import VotePanel

STYLE = {"description_width": "110px"}
MODES = [("Chat", "chat"), ("Continue text", "continue")]
COLUMN = dict(width="50%", min_height="160px", border="1px solid #ddd", padding="6px")


def describe(run: Any) -> str:
    """A short label for what ``run`` is (run id and its state, folder name or model name)."""
    if hasattr(run, "run_id"):
        return f"run {run.run_id} ({run.state if run.done else 'training now'})"
    return f"run {Path(run).name}" if is_run_dir(str(run)) else f"base model {run}"


def run_config(run: Any):
    """The :class:`~alignlab.config.RunConfig` a run was trained with (None for a plain model name)."""
    if hasattr(run, "config"):
        return run.config
    if run is not None and is_run_dir(str(run)):
        return config_of(run)
    return None


def make_pair(run: Any, mode: str) -> ChatPair:
    """The ChatPair for a RunHandle, a run directory or a model name, in ``mode`` (chat or continue)."""
    if hasattr(run, "subscribe"):
        return ChatPair.from_handle(run, mode=mode)
    if is_run_dir(str(run)):
        return ChatPair.from_run(run, mode=mode)
    return ChatPair.base_only(str(run), mode=mode)


class Chat(widgets.VBox):
    """Prompt box, two streamed columns (reference | aligned) with each answer's reward; multi-turn.

    >>> from alignlab.task import task_instruction
    >>> chat = Chat("runs/20250101-120000-dpo-ab12")  # doctest: +SKIP
    >>> chat.send(task_instruction("I went in with low expectations and"))  # doctest: +SKIP

    ``sampling`` (``max_new_tokens``, ``temperature``, ``top_p``, ``seed``) sets where the sampling sliders
    start; the rest start where the app's chat starts too (:func:`alignlab.ui.format.chat_settings`: the lab's
    defaults with room for two sentences). A finished answer ends at its last full sentence, blind or not
    (:meth:`alignlab.chat.ChatPair.stream`).
    """

    def __init__(self, run: Any = None, **sampling: Any):
        start = chat_settings(**sampling)
        self.run = run
        self.pair: ChatPair | None = None
        self.turns: list[dict] = []  # message, reference, aligned; once answered the two rewards and reward_name
        self.histories: tuple[list[dict], list[dict]] = ([], [])
        self.thread: threading.Thread | None = None
        self.title = widgets.HTML()
        self.status = widgets.HTML()
        self.prompt = widgets.Textarea(placeholder="A message (in Continue mode: text to continue)", rows=2,
                                       layout=widgets.Layout(width="70%"))
        self.mode = widgets.ToggleButtons(options=MODES, description="mode", style=STYLE)
        self.mode_note = widgets.HTML()  # why the mode starts as it does
        self.send_button = widgets.Button(description="Send", button_style="primary", icon="paper-plane")
        self.clear_button = widgets.Button(description="Clear", icon="eraser")
        self.max_new_tokens = widgets.IntSlider(value=start.max_new_tokens, min=1, max=256,
                                                description="max new tokens", style=STYLE)
        self.temperature = widgets.FloatSlider(value=start.temperature, min=0.0, max=2.0, step=0.05,
                                               description="temperature", style=STYLE)
        self.top_p = widgets.FloatSlider(value=start.top_p, min=0.05, max=1.0, step=0.05, description="top p",
                                         style=STYLE)
        self.seed = widgets.IntText(value=start.seed, description="seed", style=STYLE,
                                    layout=widgets.Layout(width="220px"))
        self.reward = widgets.Dropdown(options=reward_names(), description="reward", style=STYLE)
        self.reference_column = widgets.HTML(layout=widgets.Layout(**COLUMN))
        self.aligned_column = widgets.HTML(layout=widgets.Layout(**COLUMN))
        self.voting = VotePanel(on_switch=self.clear, on_vote=self._render)  # blind A/B votes, the win-rate
        self.send_button.on_click(lambda _: self.send(self.prompt.value, wait=False))
        self.clear_button.on_click(lambda _: self.clear())
        self.reward.observe(lambda _: self._set_reward(), names="value")
        self.mode.observe(lambda _: self._switch_mode(), names="value")
        settings = widgets.HBox([widgets.VBox([self.max_new_tokens, self.temperature]),
                                 widgets.VBox([self.top_p, self.seed, self.reward])])
        super().__init__([
            self.title, widgets.HBox([self.mode, self.mode_note]),
            widgets.Accordion([settings], titles=("Sampling settings",), selected_index=None),
            widgets.HBox([self.reference_column, self.aligned_column]), self.voting,
            widgets.HBox([self.prompt, widgets.VBox([self.send_button, self.clear_button])]), self.status,
        ])
        self.bind(run)

    def bind(self, run: Any) -> None:
        """Chat with ``run`` from now on (a RunHandle, a run directory or a model name); clears the chat."""
        self.run, self.pair = run, None
        self.voting.bind(run)
        config = run_config(run)
        if config is not None and config.reward:
            self.reward.options = list(dict.fromkeys([*reward_names(), config.reward]))
            self.reward.value = config.reward
        mode, why = trained_mode(config)
        self.mode.value = mode
        self.mode_note.value = f"<span style='color:#555'>{html.escape(why)}</span>" if run is not None else ""
        self.show_title()
        self.clear()

    def show_title(self) -> None:
        """Say what the chat answers with, and the live run's state as it is now (the Lab calls this when
        its run ends; each message refreshes it too)."""
        self.title.value = f"<b>Chat with {html.escape(describe(self.run))}</b>" if self.run is not None else \
            "<b>Chat</b>: pick a run first"

    def settings(self) -> SamplingSettings:
        """The sampling settings both columns use."""
        return SamplingSettings(max_new_tokens=self.max_new_tokens.value, temperature=self.temperature.value,
                                top_p=self.top_p.value, seed=self.seed.value)

    def send(self, message: str, wait: bool = True) -> ChatReply | None:
        """Answer ``message`` in both columns; with ``wait`` block and return the final reply."""
        if self.thread is not None and self.thread.is_alive():
            self._say("still answering the last message")
            return None
        if self.run is None:
            self._say("nothing to chat with: pass a run, a run directory or a model name")
            return None
        self.show_title()
        result: dict[str, ChatReply] = {}
        self.thread = threading.Thread(target=self._answer, args=(message, self.settings(), result), daemon=True)
        self.send_button.disabled = self.mode.disabled = True  # one mode per answer
        self.thread.start()
        if wait:
            self.thread.join()
        return result.get("reply")

    def clear(self) -> None:
        """Forget the conversation (both columns)."""
        self.turns, self.histories = [], ([], [])
        self.voting.reset()
        self._render()
        self._say("")

    # --- internals -----------------------------------------------------------------------------
    def _answer(self, message: str, settings: SamplingSettings, result: dict) -> None:
        try:
            if self.voting.begin() is not None:  # blind: one prompt per vote, no earlier turns
                self.turns, self.histories = [], ([], [])
            self._render()  # the new round's titles at once: no earlier reveal stays over its answers
            if self.pair is None:
                self._say("loading the models…")
                self.pair = make_pair(self.run, self.mode.value)
                self._set_reward()
            self._say("answering…")
            turn = {"message": message, "reference": "", "aligned": ""}
            self.turns.append(turn)
            for reply in self.pair.stream(message, settings, *self.histories):
                turn.update(reference=reply.reference, aligned=reply.aligned)
                if reply.done:
                    turn.update(reference_reward=reply.reference_reward, aligned_reward=reply.aligned_reward,
                                reward_name=self.pair.reward.name)
                    self.histories = (reply.reference_history, reply.aligned_history)
                    result["reply"] = reply
                    if self.voting.seed is not None:
                        self.voting.offer(message, self.pair.mode, reply, self.pair.reward.name, settings)
                self._render()
            self.prompt.value = ""
            self._say("")
        except AlignLabError as error:
            if self.turns and not self.turns[-1]["reference"] and not self.turns[-1]["aligned"]:
                self.turns.pop()
            self._say(str(error), error=True)
        except Exception as error:  # noqa: BLE001 - show any failure in the widget, never a traceback
            self._say(f"{type(error).__name__}: {error}", error=True)
        finally:
            self.send_button.disabled = self.mode.disabled = False

    def _switch_mode(self) -> None:
        """Another mode: the pair is made again on the next message, and the conversation starts afresh."""
        if self.pair is not None and self.pair.mode != self.mode.value:
            self.pair = None
            self.clear()

    def _set_reward(self) -> None:
        if self.pair is not None and self.pair.reward.name != self.reward.value:
            try:
                self.pair.reward = get_reward(self.reward.value)
            except AlignLabError as error:
                self._say(str(error), error=True)

    def _render(self) -> None:
        # left and right column: reference and aligned, or in a blind round A and B (rewards after the vote)
        for column, side, heading in zip((self.reference_column, self.aligned_column), self.voting.order,
                                         self.voting.headings()):
            parts = [f"<div style='font-weight:600;margin-bottom:4px'>{heading}</div>"]
            separator = "<br>" if self.pair is not None and self.pair.mode == "chat" else " "
            for turn in self.turns:
                reward = turn.get(f"{side}_reward") if self.voting.rewards_shown else None
                score = "" if reward is None else \
                    f"<div style='color:#555;font-size:90%'>reward ({turn['reward_name']}): <b>{reward:+.3f}</b></div>"
                parts.append(f"<div style='margin:6px 0'><b>{html.escape(turn['message'])}</b>{separator}"
                             f"{html.escape(turn[side])}{score}</div>")
            column.value = "".join(parts)

    def _say(self, message: str, error: bool = False) -> None:
        colour = "#b00" if error else "#555"
        self.status.value = f"<span style='color:{colour}'>{html.escape(message)}</span>" if message else ""
