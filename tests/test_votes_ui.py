"""Blind votes in both front ends, on one real tiny-random run: twenty browsers voting at once through the app's
API (gradio_client), the reveal, the win-rate in the Chat and the Runs table, the voter's name from auth, Train on
these votes through the app's queue, and the notebook chat's switch, buttons and lines."""

from __future__ import annotations

import contextlib
import html
import json
import threading

import pytest
from conftest import wait_for
from gradio_client import Client

from alignlab import rundir
from alignlab.cli import main
from alignlab.data import VOTES_PREFIX
from alignlab.errors import AlignLabError
from alignlab.ui.gradio.app import create_app
from alignlab.ui.gradio.components.vote import ASK, NO_ROUND, NOT_A_RUN, votes_config
from alignlab.ui.gradio.server import serve, workshop_settings
from alignlab.vote_runs import votes_run_config
from alignlab.votes import CHOICES, Round, append_vote, read_votes, reward_figure, run_votes, summary, win_rate_cell

pytestmark = pytest.mark.timeout(300)
RUN_ID = "voted"
VOTERS = 20
PATIENT = {"timeout": 120}  # httpx: twenty browsers share one busy CPU core in this test


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """A runs folder with one finished 2-step tiny-random DPO run (and its samples)."""
    data = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Review {i}: the film", "chosen": " was wonderful.",
                                        "rejected": " was awful."}) + "\n" for i in range(12)))
    runs = tmp_path_factory.mktemp("votes") / "runs"
    assert main(["train", "--method", "dpo", "--model", "tiny-random", "--dataset", str(data), "--max-steps", "2",
                 "--batch-size", "2", "--max-length", "48", "--max-completion-length", "8", "--probe-every", "0",
                 "--output-dir", str(runs), "--run-id", RUN_ID, "--quiet"]) == 0
    return runs


@contextlib.contextmanager
def serving(demo, **options):
    """Serve ``demo`` in the background (``options`` for :func:`serve`); its queue and server closed after."""
    _, url, _ = serve(demo, port=None, block=False, **options)
    try:
        yield url
    finally:
        demo.services.jobs.close()
        demo.close()


@pytest.fixture(scope="module")
def app(runs_dir):
    demo = create_app(runs_dir)
    with serving(demo) as url:
        yield demo, url


def blind_chat(client: Client, text: str, choice: str = "run:" + RUN_ID):
    """Send ``text`` with Blind vote on (4 tokens, continue mode); returns the chat's outputs."""
    client.predict(api_name="/chat_models")  # the session's picker learns the runs
    return client.predict(text, choice, "chat", 4, 1.0, 1.0, 5, [], [], True, api_name="/chat")


def test_twenty_browsers_vote_at_once_and_no_vote_is_lost(app, runs_dir):
    _, url = app
    blind_chat(Client(url, verbose=False, httpx_kwargs=PATIENT), "Warm up.")  # the run's models load once, first
    ready = threading.Barrier(VOTERS)
    results: dict[int, tuple] = {}
    errors: list[BaseException] = []

    def browser(number: int) -> None:
        try:
            client = Client(url, verbose=False, httpx_kwargs=PATIENT)
            left, right, left_reward, right_reward, handed_back, notice = blind_chat(client, f"Film {number}, go.")
            assert (left["label"], right["label"]) == ("A", "B")  # titled in the same update as the answers
            left, right = left["value"], right["value"]
            assert left[-1]["role"] == right[-1]["role"] == "assistant" and handed_back == ""
            assert left_reward == right_reward == "" and notice == ASK  # rewards wait for the vote
            choice = CHOICES[number % len(CHOICES)]
            ready.wait(120)  # every vote is sent at the same moment
            results[number] = (choice, client.predict(f"voter {number}", "run:" + RUN_ID,
                                                      api_name=f"/vote_{choice.lower().replace('-', '_')}"))
            assert client.predict("", "run:" + RUN_ID, api_name="/vote_a")[0] == NO_ROUND  # one vote per answer
            client.close()
        except BaseException as error:  # noqa: BLE001 - reported by the test thread
            errors.append(error)
            ready.abort()

    threads = [threading.Thread(target=browser, args=(number,)) for number in range(VOTERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    assert not errors, errors
    path = rundir.votes_path(runs_dir, RUN_ID)
    lines = path.read_bytes().split(b"\n")
    assert len(lines) == VOTERS + 1 and lines[-1] == b""  # twenty whole lines, nothing else
    votes, problems = read_votes(path)
    assert problems == [] and len(votes) == VOTERS
    by_voter = {vote["voter"]: vote for vote in votes}
    assert set(by_voter) == {f"voter {number}" for number in range(VOTERS)}
    for number, (choice, (revealed, win_rate, left_label, right_label, *rewards)) in results.items():
        vote = by_voter[f"voter {number}"]
        assert vote["vote"] == choice and vote["prompt"] == [{"role": "user", "content": f"Film {number}, go."}]
        if choice in ("A", "B"):  # the seeded order decides which model the letter was
            assert vote["outcome"] == vote["order"][0 if choice == "A" else 1] == vote["chosen_model"]
        assert revealed.startswith("✓ A was the ") and vote["aligned_model"] == RUN_ID
        assert {left_label["label"][:2], right_label["label"][:2]} == {"A:", "B:"}
        assert all(reward.startswith("reward (sentiment)") for reward in rewards)
        assert win_rate.startswith("People:")
    table = Client(url, verbose=False, httpx_kwargs=PATIENT).predict(api_name="/list_runs")[0]
    column = table["headers"].index("win-rate (people; AI)")
    assert table["data"][0][0] == RUN_ID and table["data"][0][column].endswith(f"· {VOTERS} votes")


def test_blind_vote_needs_a_trained_run(app):
    client = Client(app[1], verbose=False, httpx_kwargs=PATIENT)
    *_, handed_back, notice = blind_chat(client, "Hello there", choice="base:tiny-random")
    assert notice == NOT_A_RUN and handed_back == "Hello there"  # not sent: the message comes back
    assert client.predict("base:tiny-random", "dpo", False, api_name="/chat_train_on_votes") == NOT_A_RUN


def test_the_signed_in_user_is_the_voter_when_no_name_is_typed(runs_dir):
    with serving(create_app(runs_dir), auth="ada:lovelace") as url:
        client = Client(url, auth=("ada", "lovelace"), verbose=False, httpx_kwargs=PATIENT)
        blind_chat(client, "One more film.")
        assert client.predict("", "run:" + RUN_ID, api_name="/vote_tie")[0].startswith("✓ ")
    last = read_votes(rundir.votes_path(runs_dir, RUN_ID))[0][-1]
    assert last["voter"] == "ada" and last["outcome"] == "tie" and last["chosen"] is None


def test_the_workshop_name_is_the_voter_when_no_name_is_typed(runs_dir):
    with serving(create_app(runs_dir, workshop=workshop_settings(True, "carol", None, None))) as url:
        client = Client(url, verbose=False, httpx_kwargs=PATIENT)
        assert client.predict("grace", "", api_name="/set_name")[0] == "grace"  # the name at the top of the page
        blind_chat(client, "A film for the class.")
        assert client.predict("", "run:" + RUN_ID, api_name="/vote_both_bad")[0].startswith("✓ ")
    last = read_votes(rundir.votes_path(runs_dir, RUN_ID))[0][-1]
    assert last["voter"] == "grace" and last["outcome"] == "both-bad"


def test_train_on_these_votes_queues_a_run_like_the_voted_one(app, runs_dir):
    demo, url = app
    for number in range(2):  # two decisive votes of its own, whatever ran before
        decided = Round(RUN_ID, f"Film {number}", "chat", " was dull.", " was wonderful.", "tiny-random", RUN_ID,
                        {"max_new_tokens": 4, "temperature": 1.0, "top_p": 1.0, "seed": 5})
        append_vote(rundir.votes_path(runs_dir, RUN_ID), decided.record("A" if decided.order[0] == "aligned" else "B"))
    config = votes_config(demo.services, RUN_ID, "kto", True)
    assert config.dataset == f"{rundir.votes_path(demo.services.runs_dir, RUN_ID)}+positive-reviews"
    assert (config.method, config.model, config.max_steps, config.run_name) == ("kto", "tiny-random", 2, "votes")
    client = Client(url, verbose=False, httpx_kwargs=PATIENT)
    client.predict(api_name="/list_runs")  # the session's run pickers learn the run ids
    message = client.predict(RUN_ID, "dpo", False, api_name="/runs_train_on_votes")
    assert message.startswith("✓ Queued job") and f"`{RUN_ID}`" in message
    job = demo.services.jobs.jobs[-1]
    wait_for(lambda: job.state in ("finished", "stopped", "failed"), 240, what="the job ending")
    assert job.state == "finished", job.log_tail()
    assert rundir.read_config(job.run_dir)["dataset"] == str(rundir.votes_path(demo.services.runs_dir, RUN_ID))


def test_the_notebook_chat_votes_blind_and_shows_the_win_rate(runs_dir):
    from alignlab.ui.notebook import Chat

    def shown_tally() -> str:
        counted = run_votes(runs_dir, RUN_ID)[0]
        return html.escape(summary(counted, reward_figure(runs_dir / RUN_ID))[0])

    chat = Chat(str(runs_dir / RUN_ID), max_new_tokens=4)
    assert shown_tally() in chat.voting.win_rate.value  # every vote so far, the app's included
    assert chat.voting.vote("A") is None and "Nothing to vote on" in chat.voting.revealed.value
    chat.send("An earlier turn")  # blind mode starts afresh: one prompt per vote
    chat.voting.blind.value = True
    assert chat.turns == []
    reply = chat.send("The film")
    assert reply is not None and [turn["message"] for turn in chat.turns] == ["The film"]
    left, right = chat.reference_column.value, chat.aligned_column.value
    assert ">A</div>" in left and ">B</div>" in right and "reward" not in left + right  # named after the vote
    assert ASK in chat.voting.revealed.value
    chat.voting.name.value = "grace"
    vote = chat.voting.vote("B")
    assert vote["voter"] == "grace" and vote["outcome"] == vote["order"][1] and vote["vote"] == "B"
    assert read_votes(rundir.votes_path(runs_dir, RUN_ID))[0][-1] == vote
    expected = {"aligned": reply.aligned, "reference": reply.reference}
    assert (vote["aligned"], vote["reference"]) == (expected["aligned"], expected["reference"])
    assert "A: " in chat.reference_column.value and "reward (sentiment)" in chat.aligned_column.value
    assert "✓ A was the" in chat.voting.revealed.value and shown_tally() in chat.voting.win_rate.value
    assert chat.voting.vote("A") is None  # one vote per answer
    # The next round: the reveal's titles are gone before its answer starts, and stay A and B until its vote
    seen_at_start = []
    chat.status.observe(lambda change: seen_at_start.append(chat.reference_column.value)
                        if "answering" in change["new"] else None, names="value")
    chat.send("The sequel")
    assert seen_at_start and all(">A</div>" in value and "A: " not in value for value in seen_at_start)
    assert ">A</div>" in chat.reference_column.value and ">B</div>" in chat.aligned_column.value
    chat.clear()
    assert ">A</div>" in chat.reference_column.value  # blind mode is still on
    chat.bind("tiny-random")
    chat.voting.blind.value = True
    assert chat.send("Hello") is None and "not a base model" in chat.status.value


def decisive_votes(runs_dir, count: int = 2) -> None:
    """Append ``count`` decisive votes for the aligned model to the run's votes file, whatever ran before."""
    for number in range(count):
        decided = Round(RUN_ID, f"Film {number}", "chat", " was dull.", " was wonderful.", "tiny-random", RUN_ID,
                        {"max_new_tokens": 4, "temperature": 1.0, "top_p": 1.0, "seed": 5})
        append_vote(rundir.votes_path(runs_dir, RUN_ID), decided.record("A" if decided.order[0] == "aligned" else "B"))


def test_the_notebook_runs_view_shows_the_win_rate_and_trains_on_these_votes(runs_dir):
    from alignlab.ui.notebook import RunsView

    decisive_votes(runs_dir)
    view = RunsView(runs_dir)
    cell = win_rate_cell(runs_dir, RUN_ID)  # the engine's cell, as the app's Runs table shows it
    assert cell and "win-rate (people; AI)" in view.table.value and f"<td>{html.escape(cell)}</td>" in view.table.value
    assert view.train_on_votes() is None and "Select the one run" in view.votes_note.value
    view.picker.value = (RUN_ID,)
    view.votes_method.value, view.votes_mix.value = "orpo", True
    handle = view.train_on_votes()
    assert handle is not None and "✓ Started" in view.votes_note.value and handle.run_id in view.votes_note.value
    expected = votes_run_config(runs_dir, RUN_ID, "orpo", True)
    assert (handle.config.method, handle.config.dataset, handle.config.model) == \
        (expected.method, expected.dataset, expected.model)
    assert handle.wait(240) == "finished", handle.error
    view.refresh([handle.run_id])
    assert handle.run_id in view.runs and "orpo" in view.table.value
    view.votes_method.value = "dpo"
    assert view.train_on_votes(handle.run_id) is None and "no votes named" in view.votes_note.value


def test_the_train_tab_offers_the_votes_of_each_run_as_a_dataset(runs_dir):
    from alignlab.ui.gradio.components.train import check_dataset, dataset_choices, dataset_source
    from alignlab.ui.gradio.forms import config_from_form

    decisive_votes(runs_dir)
    demo = create_app(runs_dir)
    try:
        picker = next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "train-dataset")
        offered = [value for _, value in picker.choices]
        assert [value for _, value in dataset_choices(demo.services)] == offered
        assert [VOTES_PREFIX + name for name in rundir.votes_names(runs_dir)] == \
            [value for value in offered if value.startswith(VOTES_PREFIX)] and VOTES_PREFIX + RUN_ID in offered
        path = rundir.votes_path(runs_dir, RUN_ID)
        assert dataset_source(demo.services, VOTES_PREFIX + RUN_ID) == str(path)
        message, preview = check_dataset(demo.services, VOTES_PREFIX + RUN_ID, "kto")
        assert message.startswith("✓") and preview["visible"]
        config = config_from_form("dpo", "tiny-random", dataset_source(demo.services, VOTES_PREFIX + RUN_ID), {},
                                  str(runs_dir), False)
        assert config.dataset == str(path)
        for unknown in ("votes:no-such-run", "votes:../" + RUN_ID, "votes:" + str(path)):
            with pytest.raises(AlignLabError, match="expected a built-in dataset"):
                dataset_source(demo.services, unknown)
    finally:
        demo.services.jobs.close()


def test_the_labs_runs_tab_trains_on_votes_in_its_train_tab_one_run_at_a_time(runs_dir):
    from alignlab.ui.notebook import Lab

    decisive_votes(runs_dir)
    lab = Lab(method="dpo", model="tiny-random", output_dir=str(runs_dir))
    lab.tabs.selected_index = 1
    lab.runs.picker.value = (RUN_ID,)
    handle = lab.runs.train_on_votes()
    assert handle is not None and lab.run is handle and lab.tabs.selected_index == 0  # followed in the Train tab
    assert lab.runs.train_on_votes() is None and "already training" in lab.runs.votes_note.value
    assert handle.wait(240) == "finished", handle.error
    assert rundir.read_config(handle.run_dir)["dataset"] == str(rundir.votes_path(runs_dir, RUN_ID))
