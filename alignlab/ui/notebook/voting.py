"""Blind voting in the notebook's :class:`~alignlab.ui.notebook.chat.Chat`: the switch, four buttons, the lines.

With **Blind vote** on, each message is answered on its own and the chat's two columns show the answers as
A and B in a seeded random order (:func:`alignlab.votes.blind_order`), rewards hidden. A vote (A, B, tie,
both bad) is appended to the run's votes file (:func:`alignlab.votes.append_vote`) and reveals which model
wrote which answer; the win-rate line under the buttons (:func:`alignlab.votes.summary`) counts every vote
on the run, from this notebook, the app or anyone else.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from alignlab.config import config_of
from alignlab.errors import AlignLabError
from alignlab.rundir import is_run_dir, votes_path
from alignlab.votes import (
    SIDES,
    Round,
    append_vote,
    blind_order,
    new_order_seed,
    reveal,
    reward_figure,
    run_summary,
)

BUTTONS = (("A is better", "A"), ("B is better", "B"), ("Tie", "tie"), ("Both bad", "both-bad"))
HEADINGS = ("Reference (before training)", "Aligned (trained)")
NOT_A_RUN = "Blind votes compare a trained run with its reference: chat with a run, not a base model."
ASK = "Which answer is better? Vote with the buttons above; the models are named after your vote."


def run_dir_of(run: Any) -> Path | None:
    """The run directory of what a Chat talks to (a RunHandle or a run directory), None for a model name."""
    if hasattr(run, "run_dir"):
        return Path(run.run_dir)
    return Path(run) if run is not None and is_run_dir(str(run)) else None


class VotePanel(widgets.VBox):
    """Blind switch, voter name, vote buttons, the reveal line and the run's win-rate line, for one Chat.

    The chat asks :meth:`begin` before each answer (the seed of the A/B order, or None out of blind mode),
    renders its columns in :attr:`order` under :meth:`headings`, and hands the answered round to :meth:`offer`.
    """

    def __init__(self, on_switch, on_vote):
        """``on_switch()`` runs when Blind vote is switched (the chat starts afresh), ``on_vote()`` after a vote
        (the chat redraws its columns, now named)."""
        self.run_dir: Path | None = None
        self.seed: int | None = None  # the blind round shown now
        self.pending: Round | None = None  # answered, waiting for its vote
        self.last_vote: dict | None = None  # the vote that revealed the round shown now
        self.blind = widgets.Checkbox(False, description="Blind vote", indent=False,
                                      layout=widgets.Layout(width="120px"))
        self.name = widgets.Text(placeholder="your name (kept with your votes)", layout=widgets.Layout(width="260px"))
        self.buttons = [widgets.Button(description=title) for title, _ in BUTTONS]
        for button, (_, choice) in zip(self.buttons, BUTTONS, strict=True):
            button.on_click(lambda _, choice=choice: self.vote(choice))
        self.revealed = widgets.HTML()
        self.win_rate = widgets.HTML()
        self.blind.observe(lambda _: on_switch(), names="value")
        self._on_vote = on_vote
        super().__init__([widgets.HBox([self.blind, self.name]), widgets.HBox(self.buttons), self.revealed,
                          self.win_rate])

    def bind(self, run: Any) -> None:
        """Vote on ``run`` (a RunHandle, a run directory, or a model name: no voting) from now on."""
        self.run_dir = run_dir_of(run)
        self.reset()
        self.refresh()

    def reset(self) -> None:
        """Forget the round shown (a cleared chat, another mode, the switch)."""
        self.seed = self.pending = self.last_vote = None
        self.revealed.value = ""

    @property
    def order(self) -> tuple[str, str]:
        """The sides of the left and right column: reference and aligned, or A and B of the blind round."""
        return blind_order(self.seed) if self.seed is not None else SIDES

    @property
    def rewards_shown(self) -> bool:
        return self.seed is None or self.last_vote is not None

    def headings(self) -> tuple[str, str]:
        """Column titles: by model, ``A`` and ``B`` in blind mode until the vote, both named after it."""
        if self.seed is None:
            return ("A", "B") if self.blind.value else HEADINGS
        if self.last_vote is None:
            return "A", "B"
        names = {"aligned": f"aligned ({self.last_vote['aligned_model']})",
                 "reference": f"reference ({self.last_vote['reference_model']})"}
        return f"A: {names[self.order[0]]}", f"B: {names[self.order[1]]}"

    def begin(self) -> int | None:
        """A message is about to be answered: the seed of its blind order (None out of blind mode); AlignLabError
        when blind mode has no run to vote on."""
        self.reset()
        if not self.blind.value:
            return None
        if self.run_dir is None:
            raise AlignLabError(NOT_A_RUN)
        self.seed = new_order_seed()
        return self.seed

    def offer(self, message: str, mode: str, reply, reward_name: str, settings) -> None:
        """The blind round is answered: keep it for the vote."""
        config = config_of(self.run_dir)
        self.pending = Round(self.run_dir.name, message, mode, reply.reference, reply.aligned, config.model,
                             self.run_dir.name, {"max_new_tokens": settings.max_new_tokens,
                                                 "temperature": settings.temperature, "top_p": settings.top_p,
                                                 "seed": settings.seed},
                             reward_name, reply.reference_reward, reply.aligned_reward, order_seed=self.seed)
        self._say(ASK)

    def vote(self, choice: str) -> dict | None:
        """Vote ``choice`` (A, B, tie or both-bad) on the answered round: append it to the run's votes file,
        reveal the models and refresh the win-rate line; returns the vote (None without a round to vote on)."""
        if self.pending is None:
            self._say("Nothing to vote on: send a message with Blind vote on, then vote once on its answers.")
            return None
        record = self.pending.record(choice, self.name.value)
        try:
            append_vote(votes_path(self.run_dir.parent, self.pending.name), record)
        except AlignLabError as error:
            self._say(str(error), error=True)
            return None
        self.pending, self.last_vote = None, record
        self._say("✓ " + reveal(record))
        self.refresh()
        self._on_vote()
        return record

    def refresh(self) -> None:
        """Re-read the run's votes (other people vote too) into the win-rate line."""
        if self.run_dir is None:
            self.win_rate.value = ""
            return
        try:
            lines, problems = run_summary(self.run_dir.parent, self.run_dir.name, reward_figure(self.run_dir))
        except AlignLabError as error:
            lines, problems = [str(error)], []
        if problems:
            lines.append(f"({len(problems)} damaged line(s) of the votes file skipped: {problems[0]})")
        self.win_rate.value = "<br>".join(f"<span style='color:#333'>{html.escape(line)}</span>" for line in lines)

    def _say(self, message: str, error: bool = False) -> None:
        colour = "#b00" if error else "#555"
        self.revealed.value = f"<span style='color:{colour}'>{html.escape(message)}</span>" if message else ""
