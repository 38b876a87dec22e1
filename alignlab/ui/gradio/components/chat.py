"""The Chat tab: the reference and the aligned model answer the same message side by side.

Both columns stream token by token from one :class:`~alignlab.chat.ChatPair` with the same seed and
sampling settings, so a difference comes from training, not luck; each answer shows its reward.
In ``chat`` mode (how the built-in task trains) each side keeps its own multi-turn history; in
``continue`` mode every message is raw text the models continue. Picking a model sets the mode it
trained in (:func:`alignlab.chat.trained_mode`), and the line under the mode choice says why.
Opening the tab after a run finished (or for the first time, on a folder with finished runs) picks the newest
finished run, not the base model; a model picked by hand stays picked until another run finishes. The example
requests differ only in the review opening they ask for, so each is labelled by its opening.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import gradio as gr

from alignlab.chat import trained_mode
from alignlab.config import config_of
from alignlab.errors import AlignLabError
from alignlab.generation import SamplingSettings
from alignlab.models import DEFAULT_MODEL
from alignlab.rundir import find_run
from alignlab.task import task_instruction, task_openings
from alignlab.ui.format import chat_settings
from alignlab.ui.gradio.chat_service import BASE_PREFIX, RUN_PREFIX, fit_histories, message_notice, token_counter
from alignlab.ui.gradio.components.vote import ASK, BLIND_TITLES, create_voting
from alignlab.ui.gradio.forms import field_named
from alignlab.ui.gradio.services import Services

MODES = [("Chat (chat template, multi-turn)", "chat"), ("Continue the text (raw text, no chat template)", "continue")]
DEFAULT_CHOICE = BASE_PREFIX + DEFAULT_MODEL
EXAMPLES = 4  # held-out review requests offered under the message box
EMPTY_NOTICE = "Type a message first, then press Enter or Send."
BUSY_NOTICE = "An answer is still coming: your message stays in the box; send it once the answer is done."
READY_NOTICE = "The answer is done; what you typed meanwhile is still in the box: press Enter or Send."
STREAM_EVERY_S = 0.1  # the page is sent the answers so far at most this often (and always at the end), so a slow
# browser keeps up with the tokens instead of showing an answer seconds after it ended


def default_mode(choice: str, runs_dir) -> tuple[str, str]:
    """``(mode, why)`` for a picker value: the mode its run trained in (a base model: chat), and why."""
    if choice.startswith(RUN_PREFIX):
        try:
            return trained_mode(config_of(find_run(runs_dir, choice[len(RUN_PREFIX):])))
        except AlignLabError:
            pass
    return trained_mode(None)


def side_labels(choice: str) -> tuple[str, str]:
    """Column titles for a picker value."""
    if choice.startswith(RUN_PREFIX):
        return "Reference (the base model)", f"Aligned ({choice[len(RUN_PREFIX):]})"
    return f"Reference ({choice[len(BASE_PREFIX):]})", "Aligned: none yet, the same base model (pick a trained run)"


def example_label(opening: str) -> str:
    """An example prompt's label: the review opening it asks for (the request around it is the same in each).

    >>> example_label("I watched this on a long flight, and")
    '“I watched this on a long flight, and …”'
    """
    return f"“{opening} …”"


def reward_line(reward: float | None, name: str) -> str:
    return "" if reward is None else f"reward ({name}): **{reward:+.3f}**"


def create_chat_tab(services: Services, tab: gr.Tab) -> None:
    """Build the Chat tab's components and bind them to the chat service (picker refreshed on ``tab`` select)."""
    with gr.Row(equal_height=True):
        choice = gr.Dropdown(services.chat.choices([]), value=DEFAULT_CHOICE, label="Model", scale=3,
                             elem_id="chat-model")
        start_mode, why = trained_mode(None)
        mode = gr.Radio(MODES, value=start_mode, label="Mode", info=why, scale=2, elem_id="chat-mode")
    reference_title, aligned_title = side_labels(DEFAULT_CHOICE)
    with gr.Row(equal_height=True):
        with gr.Column():
            reference_box = gr.Chatbot(label=reference_title, height=360, feedback_options=None,
                                       elem_id="chat-reference")
            reference_reward = gr.Markdown(elem_id="chat-reference-reward")
        with gr.Column():
            aligned_box = gr.Chatbot(label=aligned_title, height=360, feedback_options=None, elem_id="chat-aligned")
            aligned_reward = gr.Markdown(elem_id="chat-aligned-reward")
    voting = create_voting(services, tab, choice)  # Blind vote: A/B columns, vote buttons, win-rate (see .vote)
    with gr.Row(equal_height=True):
        message = gr.Textbox(placeholder="Type a message (in Continue mode: text to continue), then Enter", scale=5,
                             show_label=False, max_lines=4, elem_id="chat-message")
        send = gr.Button("Send", variant="primary", scale=1, min_width=90, elem_id="chat-send")
        clear = gr.Button("Clear", scale=1, min_width=90, elem_id="chat-clear")
    notice = gr.Markdown(elem_id="chat-notice")  # a gentle line about the chat's limits, when one applies
    # The message being answered: taken from the box at Send (so the box is free to type the next one while the
    # answer streams), handed back into the box if it could not be sent.
    pending = gr.Textbox(visible=False, elem_id="chat-pending")
    busy = gr.State(False)  # an answer is streaming: Send is disabled and Enter only says so
    # Whether this Send's message was taken (False: refused while an answer streamed). The chain's ``chat`` step
    # reads it, for an Enter that lands as an answer ends: then the refusing ``take`` is followed by a ``chat``
    # step no longer pending, which must leave the page alone rather than report an empty message. True to begin
    # with, as API calls to ``chat`` (no Send before them) read it.
    taken = gr.State(True)
    openings = task_openings("eval")[:EXAMPLES]
    gr.Examples([[task_instruction(opening)] for opening in openings], [message], example_labels=[
        example_label(opening) for opening in openings], label="Review requests (held out from training)")
    start = chat_settings()  # the lab's defaults with room for two sentences, as the notebook's chat starts
    with gr.Accordion("Generation settings (the same for both columns)", open=False):
        with gr.Row():
            max_new_tokens = field_named(gr.Slider(1, 256, value=start.max_new_tokens, step=1, label="max new tokens",
                                                   elem_id="chat-max-new-tokens"))
            temperature = field_named(gr.Slider(0, 2, value=start.temperature, step=0.05, label="temperature",
                                                info="0 = greedy", elem_id="chat-temperature"))
            top_p = field_named(gr.Slider(0.05, 1, value=start.top_p, step=0.05, label="top p",
                                          info="nucleus sampling", elem_id="chat-top-p"))
            seed = field_named(gr.Number(start.seed, precision=0, minimum=0, label="seed",
                                         info="same random stream for both sides", elem_id="chat-seed"))
    reference_history = gr.State([])
    aligned_history = gr.State([])

    followed = gr.State(None)  # the newest finished run the picker was last set to (see refresh_choices)
    switched = gr.State(False)  # refresh_choices changed the picker: its columns and mode follow (see follow)

    def refresh_choices(current: str | None = None, last_followed: str | None = None):
        """Re-read the runs folder for the model picker (base models, then finished or stopped runs). The picker
        moves to the newest finished run when one finished since it last did (or the tab opens for the first time
        on a folder with finished runs); otherwise it keeps what was picked."""
        runs = services.runs()
        options = services.chat.choices(runs)
        values = [value for _, value in options]
        newest = services.chat.newest_finished(runs)
        value = newest if newest is not None and newest != last_followed else \
            current if current in values else DEFAULT_CHOICE
        return gr.update(choices=options, value=value), newest, value != current

    def follow(value: str, blind: bool, moved: bool):
        """After refresh_choices moved the picker: what picking ``value`` by hand does (:func:`pick`)."""
        return pick(value, blind) if moved else [gr.skip()] * 8

    tab.select(refresh_choices, [choice, followed], [choice, followed, switched], api_name="chat_models") \
        .then(follow, [choice, voting.blind, switched], [reference_box, aligned_box, reference_reward, aligned_reward,
                                                         reference_history, aligned_history, mode, notice],
              api_visibility="private")

    def titled(picked: str, blind: bool) -> tuple:
        """Both columns emptied under their titles: A and B in blind mode, else by model."""
        reference_label, aligned_label = BLIND_TITLES if blind else side_labels(picked)
        return gr.update(value=[], label=reference_label), gr.update(value=[], label=aligned_label)

    def pick(value: str, blind: bool = False, request: gr.Request = None):
        """New model (picked, or set by a refresh of the list): fresh conversation, column titles, no round left to
        vote on, and the mode the run was trained in (with why)."""
        voting.forget(request.session_hash if request else "")
        picked_mode, reason = default_mode(value, services.runs_dir)
        return *titled(value, blind), "", "", [], [], gr.update(value=picked_mode, info=reason), ""

    # .change, not .input: a refresh of the list that moves the picker (a deleted run) starts afresh too
    choice.change(pick, [choice, voting.blind], [reference_box, aligned_box, reference_reward, aligned_reward,
                                                 reference_history, aligned_history, mode, notice],
                  api_visibility="private")

    def reset(picked: str, blind: bool = False, request: gr.Request = None):
        """Clear (or another mode): an empty conversation under fresh titles, and no round left to vote on."""
        voting.forget(request.session_hash if request else "")
        return *titled(picked, blind), "", "", [], [], ""

    chat_outputs = [reference_box, aligned_box, reference_reward, aligned_reward, reference_history, aligned_history]
    clear.click(reset, [choice, voting.blind], [*chat_outputs, notice], api_visibility="private")
    mode.input(reset, [choice, voting.blind], [*chat_outputs, notice], api_visibility="private")
    voting.bind((reference_box, aligned_box), (reference_reward, aligned_reward), (reference_history, aligned_history),
                notice, pending, side_labels)

    def chat(text: str, picked: str, chat_mode: str, tokens: float, temp: float, nucleus: float, seed_value: float,
             reference_turns: list, aligned_turns: list, reference_view: list, aligned_view: list, blind: bool = False,
             taken: bool = True, request: gr.Request = None) -> Iterator:
        """Stream both answers to ``text``; yields (reference view, aligned view, rewards, histories, the message
        handed back, notice). An empty message or one over the chat's limits is not sent: the notice says why and
        the message is handed back ("" once answered); the oldest turns of a long conversation are left out, and
        the notice says how many. The message box itself is no output: typing goes on while an answer streams.
        ``blind``: the message is answered on its own, the columns show A and B in a seeded random order without
        rewards, and the answered round waits for this session's vote (see :mod:`.vote`). ``taken`` False: Send
        refused the message (an answer was streaming), so nothing is sent and the page is left as it is."""
        if not taken:
            yield tuple([gr.skip()] * 8)
            return
        if not text or not text.strip():
            yield *[gr.skip()] * 6, "", EMPTY_NOTICE
            return
        too_long = message_notice(text)  # before anything is tokenized
        if too_long:
            yield *[gr.skip()] * 6, text, too_long
            return
        settings = SamplingSettings(max_new_tokens=int(tokens), temperature=float(temp), top_p=float(nucleus),
                                    seed=int(seed_value or 0))
        session = request.session_hash if request else ""
        try:
            order_seed = voting.begin(picked, bool(blind), session)  # None unless blind
        except AlignLabError as error:
            yield *[gr.skip()] * 6, text, str(error)
            return
        if order_seed is not None:  # one prompt per vote: no earlier turns
            reference_turns, aligned_turns, reference_view, aligned_view = [], [], [], []
        shown = reference_view, aligned_view
        reference_view = [*reference_view, {"role": "user", "content": text}, {"role": "assistant", "content": "…"}]
        aligned_view = [*aligned_view, {"role": "user", "content": text}, {"role": "assistant", "content": "…"}]
        yield *voting.arrange(order_seed, reference_view, aligned_view), "loading the model…", "", gr.skip(), \
            gr.skip(), gr.skip(), ""
        try:
            pair = services.chat.pair(picked, chat_mode)
            count = token_counter(pair)
            too_long = message_notice(text, count)
            if too_long:
                yield *shown, "", "", gr.skip(), gr.skip(), text, too_long
                return
            (reference_turns, aligned_turns), note = fit_histories(text, [reference_turns, aligned_turns], count)
            note = note if chat_mode == "chat" else ""  # continue mode reads no history: nothing to say
            replies = pair.stream(text, settings, reference_turns, aligned_turns)
            sent = 0.0  # when the page was last sent the answers so far
            for reply in replies:
                if not reply.done and time.monotonic() - sent < STREAM_EVERY_S:
                    continue  # the next token (or the end) brings this one along
                sent = time.monotonic()
                reference_view[-1] = {"role": "assistant", "content": reply.reference or "…"}
                aligned_view[-1] = {"role": "assistant", "content": reply.aligned or "…"}
                columns = voting.arrange(order_seed, reference_view, aligned_view)
                if reply.done and order_seed is not None:  # rewards are revealed with the models, after the vote
                    voting.offer(order_seed, session, picked, text, chat_mode, reply, pair, settings)
                    yield *columns, "", "", reply.reference_history, reply.aligned_history, "", ASK
                elif reply.done:
                    name = pair.reward.name
                    yield (*columns, reward_line(reply.reference_reward, name),
                           reward_line(reply.aligned_reward, name), reply.reference_history, reply.aligned_history, "",
                           note)
                else:
                    # the notice is left alone while tokens stream: a "still coming" line stays until the end
                    yield (*columns, "generating…", "generating…", gr.skip(), gr.skip(), gr.skip(), note or gr.skip())
        except AlignLabError as error:
            raise gr.Error(str(error), title="Cannot chat") from None

    def take(text: str, streaming_now: bool):
        """Send or Enter: take the message out of the box (cleared once, here) and hold Send until it is answered;
        while an answer streams the box keeps what is typed and the notice says to wait."""
        if streaming_now:
            return gr.skip(), "", BUSY_NOTICE, gr.skip(), gr.skip(), False
        return ("" if text and text.strip() else gr.skip()), text, "", True, gr.update(interactive=False,
                                                                                       value="Answering…"), True

    def done(handed_back: str, text: str, said: str = ""):
        """The answer ended (or the message was not sent): Send again, and a message not sent back in the box. A
        message typed while the answer streamed is still in the box, and the notice (``said`` so far) says so."""
        ready = gr.update(interactive=True, value="Send")
        if handed_back and handed_back.strip():
            return (f"{handed_back}\n{text}" if text and text.strip() else handed_back), "", False, ready, gr.skip()
        if text and text.strip():
            # a note of the answer (turns left out) stays; "wait" goes, and "done" is said once
            kept = "" if said == BUSY_NOTICE else (said or "").replace(READY_NOTICE, "").strip()
            return gr.skip(), "", False, ready, f"{kept} {READY_NOTICE}".strip()
        return gr.skip(), "", False, ready, gr.skip()

    send_inputs = [pending, choice, mode, max_new_tokens, temperature, top_p, seed, reference_history,
                   aligned_history, reference_box, aligned_box, voting.blind, taken]
    send_outputs = [*chat_outputs, pending, notice]
    streaming = dict(concurrency_limit=2, concurrency_id="chat", show_progress="hidden")
    quick = dict(api_visibility="private", show_progress="hidden")
    # One chain for Send and Enter, so a second message while an answer streams is refused by ``take`` (with a
    # note) and the chain's ``chat`` step, still pending, does not run again (trigger mode "once"); if that answer
    # has just ended, ``chat`` does run, and ``taken`` tells it to send nothing.
    gr.on([send.click, message.submit], take, [message, busy], [message, pending, notice, busy, send, taken],
          **quick) \
        .then(chat, send_inputs, send_outputs, api_name="chat", **streaming) \
        .then(done, [pending, message, notice], [message, pending, busy, send, notice], **quick)
