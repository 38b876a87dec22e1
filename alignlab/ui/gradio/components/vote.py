"""Blind voting in the Chat tab, the people's win-rate, and training a new run on the votes.

With **Blind vote** on, each message is answered on its own (no earlier turns, so every vote is on one
prompt) and the two answers appear as A and B in a seeded random order (:func:`alignlab.votes.blind_order`),
rewards hidden. The voter picks A, B, tie or both bad; the vote is appended to the run's votes file
(:func:`alignlab.votes.append_vote`, safe with many voters at once) and only then are the identities and
rewards revealed. The answered round waits on the server, one per browser session (:class:`PendingRounds`),
so a vote can only be cast once, on the answer the session was shown.

Under the buttons, the win-rate line of the picked run (:func:`alignlab.votes.summary`) refreshes after each
vote and every few seconds (other people vote too); **Train on these votes** queues a new run like the voted
one on its votes file (DPO, KTO or ORPO), alone or mixed with the built-in pairs. The Runs tab reuses
:func:`create_train_on_votes` and :func:`win_rate_cell`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import gradio as gr

from alignlab import votes
from alignlab.config import RunConfig, config_of
from alignlab.errors import AlignLabError
from alignlab.rundir import find_run, votes_path
from alignlab.task import BUILTIN_TASK
from alignlab.ui.gradio.chat_service import RUN_PREFIX
from alignlab.ui.gradio.services import Services
from alignlab.vote_runs import VOTE_METHODS, votes_run_config
from alignlab.votes import (
    Round,
    append_vote,
    blind_order,
    new_order_seed,
    reveal,
    reward_figure,
    run_summary,
)

BUTTONS = (("A is better", "A", "vote_a"), ("B is better", "B", "vote_b"), ("Tie", "tie", "vote_tie"),
           ("Both bad", "both-bad", "vote_both_bad"))
BLIND_TITLES = ("A", "B")
KEEP_ROUNDS = 2_000  # answered rounds waiting for a vote, one per browser session
REFRESH_S = 10.0
NOT_A_RUN = "Blind votes compare a trained run with its reference: pick a run from the list (or turn Blind vote off)."
ASK = "Which answer is better? Vote with the buttons above; the models are named after your vote."
NO_ROUND = "Nothing to vote on: send a message with Blind vote on, then vote once on its answers."


def run_of(choice: str | None) -> str | None:
    """The run id of a chat picker value (``run:<id>``), None for a base model."""
    return choice[len(RUN_PREFIX):] if choice and choice.startswith(RUN_PREFIX) else None


def win_rate_text(runs_dir: Path, run_id: str | None) -> str:
    """The people's win-rate of ``run_id`` with the reward's figure and their agreement, then each AI annotator's
    (:func:`alignlab.votes.run_summary`), as Markdown lines."""
    if not run_id:
        return ""
    try:
        lines, problems = run_summary(runs_dir, run_id, reward_figure(find_run(runs_dir, run_id)))
    except AlignLabError as error:
        return f"✗ {error}"
    if problems:
        lines.append(f"({len(problems)} damaged line(s) of the votes file skipped: {problems[0]})")
    return "  \n".join(lines)


def win_rate_cell(run: dict) -> str:
    """The Runs table cell of one run (a :func:`alignlab.rundir.read_run` summary): people's win-rate and
    votes, then an AI annotator's (:func:`alignlab.votes.win_rate_cell`, the notebook's cell too); "" without votes."""
    return votes.win_rate_cell(Path(run["path"]).parent, run["run_id"])


class PendingRounds:
    """The answered blind round of each browser session, waiting for its one vote (the oldest forgotten
    beyond :data:`KEEP_ROUNDS`); thread-safe."""

    def __init__(self, keep: int = KEEP_ROUNDS):
        self._rounds: OrderedDict[str, Round] = OrderedDict()
        self._lock = threading.Lock()
        self._keep = keep

    def put(self, session: str, pending: Round | None) -> None:
        """Set (or with None, drop) the session's round."""
        with self._lock:
            self._rounds.pop(session, None)
            if pending is not None:
                self._rounds[session] = pending
                while len(self._rounds) > self._keep:
                    self._rounds.popitem(last=False)

    def take(self, session: str) -> Round | None:
        """The session's round, removed: a round takes one vote."""
        with self._lock:
            return self._rounds.pop(session, None)


class Voting:
    """The vote panel of the Chat tab: what :func:`create_voting` built, and the helpers the chat calls."""

    def __init__(self, services: Services, tab: gr.Tab, choice: gr.Dropdown, blind: gr.Checkbox, name: gr.Textbox,
                 buttons: list[gr.Button]):
        self.services, self.tab, self.choice, self.blind, self.name, self.buttons = \
            services, tab, choice, blind, name, buttons
        self.revealed: gr.Markdown | None = None
        self.win_rate: gr.Markdown | None = None
        self.rounds = PendingRounds()

    def begin(self, choice: str, blind: bool, session: str) -> int | None:
        """A message is sent: forget the session's unvoted round; with ``blind``, the seed of the new round's
        order (AlignLabError with :data:`NOT_A_RUN` for a base model), else None."""
        self.rounds.put(session, None)
        if not blind:
            return None
        if run_of(choice) is None:
            raise AlignLabError(NOT_A_RUN)
        return new_order_seed()

    @staticmethod
    def arrange(seed: int | None, reference, aligned) -> tuple:
        """The two columns as shown: (reference, aligned), or in a blind round (A, B) with the titles A and B in the
        same update, so a title of an earlier round's reveal never stays over a new round's answers."""
        if seed is None:
            return reference, aligned
        first, second = (reference, aligned) if blind_order(seed)[0] == "reference" else (aligned, reference)
        return gr.update(value=first, label=BLIND_TITLES[0]), gr.update(value=second, label=BLIND_TITLES[1])

    def forget(self, session: str) -> None:
        """The shown round is gone (Clear, another run or mode): no vote can be cast on it any more."""
        self.rounds.put(session, None)

    def offer(self, seed: int, session: str, choice: str, text: str, mode: str, reply, pair, settings) -> None:
        """The blind round's answers are complete: keep them for the session's vote."""
        run_id = run_of(choice)
        config = config_of(find_run(self.services.runs_dir, run_id))
        self.rounds.put(session, Round(
            run_id, text, mode, reply.reference, reply.aligned, config.model, run_id,
            {"max_new_tokens": settings.max_new_tokens, "temperature": settings.temperature,
             "top_p": settings.top_p, "seed": settings.seed},
            pair.reward.name, reply.reference_reward, reply.aligned_reward, order_seed=seed))

    def win_rate_line(self, picked: str | None) -> str:
        return win_rate_text(self.services.runs_dir, run_of(picked))

    def bind(self, columns: tuple[gr.Chatbot, gr.Chatbot], rewards: tuple[gr.Markdown, gr.Markdown],
             histories: tuple[gr.State, gr.State], notice: gr.Markdown, pending: gr.Textbox,
             labels: Callable[[str], tuple[str, str]]) -> None:
        """Bind the panel to the chat: ``columns`` and their ``rewards`` lines, the two ``histories``, the chat's
        ``notice``, ``pending`` (the message being answered: a new one clears the last reveal) and ``labels``
        (the column titles of a picker value out of blind mode)."""
        revealed, win_rate = self.revealed, self.win_rate

        def switch(on: bool, picked: str):
            """Blind on or off: a fresh conversation, columns titled A and B (or by model), a line saying why."""
            first, second = BLIND_TITLES if on else labels(picked)
            note = (ASK if run_of(picked) else NOT_A_RUN) if on else ""
            return gr.update(value=[], label=first), gr.update(value=[], label=second), "", "", [], [], note, ""

        self.blind.input(switch, [self.blind, self.choice], [*columns, *rewards, *histories, notice, revealed],
                         api_visibility="private")
        pending.change(lambda: "", None, [revealed], api_visibility="private", show_progress="hidden")
        for button, (_, letter, api_name) in zip(self.buttons, BUTTONS, strict=True):
            button.click(self._vote_with(letter), [self.name, self.choice], [revealed, win_rate, *columns, *rewards],
                         api_name=api_name, show_progress="hidden")

        def own_name(current: str, request: gr.Request):
            """The page's name in the name box (the signed-in account, or in workshop mode the name given at the top
            of the page), unless one is typed there."""
            user = self.services.user(request)
            return gr.skip() if (current or "").strip() or not user else user

        self.tab.select(own_name, [self.name], [self.name], api_visibility="private")
        self.choice.change(lambda picked: (self.win_rate_line(picked), ""), [self.choice], [win_rate, revealed],
                           api_visibility="private")
        gr.Timer(REFRESH_S).tick(self.win_rate_line, [self.choice], [win_rate], api_visibility="private",
                                 show_progress="hidden", concurrency_limit=None)

    def _vote_with(self, letter: str) -> Callable:
        def vote(voter: str, picked: str, request: gr.Request):
            """Cast the vote on this session's answered blind round; reveal which model wrote A and B."""
            pending = self.rounds.take(request.session_hash)
            if pending is None:
                return NO_ROUND, gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            record = pending.record(letter, voter if voter and voter.strip() else self.services.user(request))
            try:
                append_vote(votes_path(self.services.runs_dir, pending.name), record)
            except AlignLabError as error:
                self.rounds.put(request.session_hash, pending)  # not counted: the vote can be cast again
                raise gr.Error(str(error), title="Vote not saved") from None
            titles = {"aligned": f"aligned ({pending.name})", "reference": f"reference ({pending.reference_model})"}
            first, second = record["order"]
            scores = {"reference": pending.reference_reward, "aligned": pending.aligned_reward}
            shown = ["" if scores[side] is None else f"reward ({pending.reward_source}): **{scores[side]:+.3f}**"
                     for side in (first, second)]
            return ("✓ " + reveal(record), self.win_rate_line(picked), gr.update(label=f"A: {titles[first]}"),
                    gr.update(label=f"B: {titles[second]}"), *shown)

        vote.__name__ = f"vote_{letter.replace('-', '_')}"
        return vote


def create_voting(services: Services, tab: gr.Tab, choice: gr.Dropdown) -> Voting:
    """Lay out the vote panel (Blind vote switch, name box, four vote buttons, the reveal line, the win-rate line
    and Train on these votes); its events are bound by :meth:`Voting.bind` once the chat's components exist."""
    with gr.Row(equal_height=True):
        blind = gr.Checkbox(False, label="Blind vote", scale=1, min_width=120, elem_id="chat-blind",
                            info="Answers shown as A and B in a random order; vote, then see which was which")
        name = gr.Textbox(label="Your name (kept with your votes)", scale=2, max_length=64, elem_id="chat-voter")
    with gr.Row():
        buttons = [gr.Button(title, size="sm", elem_id=f"chat-{api_name.replace('_', '-')}")
                   for title, _, api_name in BUTTONS]
    voting = Voting(services, tab, choice, blind, name, buttons)
    voting.revealed = gr.Markdown(elem_id="chat-reveal")
    voting.win_rate = gr.Markdown(elem_id="chat-win-rate")
    with gr.Accordion("Train on these votes", open=False):
        create_train_on_votes(services, choice, run_of, "chat")
    return voting


# --- a new run on the votes ---------------------------------------------------------------------------
def votes_config(services: Services, run_id: str, method: str, mix: bool) -> RunConfig:
    """A run like ``run_id`` trained with ``method`` on its votes, mixed with the built-in pairs when ``mix``
    (:func:`alignlab.vote_runs.votes_run_config`, which the notebook's button calls too)."""
    return votes_run_config(services.runs_dir, run_id, method, mix)


def create_train_on_votes(services: Services, picker: gr.Dropdown, run_id_of: Callable[[str | None], str | None],
                          prefix: str) -> None:
    """Method, mix switch and a Train on these votes button for the run ``picker`` names (``run_id_of`` turns
    its value into a run id); the job joins the Train tab's queue."""
    with gr.Row(equal_height=True):
        method = gr.Dropdown(list(VOTE_METHODS), value="dpo", label="Method", scale=1, elem_id=f"{prefix}-votes-method")
        mix = gr.Checkbox(False, label=f"Mix with the built-in pairs ({BUILTIN_TASK})", scale=2,
                          elem_id=f"{prefix}-votes-mix")
        start = gr.Button("Train on these votes", scale=1, elem_id=f"{prefix}-train-votes")
    message = gr.Markdown(elem_id=f"{prefix}-votes-message")

    def train_on_votes(picked: str | None, method_name: str, mixed: bool, request: gr.Request) -> str:
        """Queue a new run like the picked one on its blind votes (owned by the signed-in user)."""
        run_id = run_id_of(picked)
        if not run_id:
            return NOT_A_RUN
        try:
            config = votes_config(services, run_id, method_name, bool(mixed))
            job = services.jobs.submit(config, owner=services.user(request))
        except AlignLabError as error:
            raise gr.Error(str(error), title="Cannot train on the votes") from None
        return (f"✓ Queued job {job.number}: {config.method} on the votes of `{run_id}`"
                f"{' and the built-in pairs' if mixed else ''} (follow it in the Train tab).")

    start.click(train_on_votes, [picker, method, mix], [message], api_name=f"{prefix}_train_on_votes")
