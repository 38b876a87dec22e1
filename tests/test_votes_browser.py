"""Humans in the loop in a real browser (Playwright driving Debian's Chromium): two browser sessions vote
blind on one tiny-random run, one of them trains a new run on those votes from the Chat, and the new run
then answers in the Chat beside its reference. Screenshots go to ``test-artifacts/``."""

from __future__ import annotations

import json

import pytest
from conftest import wait_for

from alignlab.cli import main
from alignlab.rundir import votes_path
from alignlab.ui.gradio.app import create_app
from alignlab.ui.gradio.server import serve
from alignlab.votes import read_votes
from tests.test_gradio_browser import open_app, pick, send_chat, shot

playwright = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]
RUN_ID = "taught"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The app on a runs folder holding one finished 2-step tiny-random DPO run."""
    data = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Review {i}: the film", "chosen": " was wonderful.",
                                        "rejected": " was awful."}) + "\n" for i in range(8)))
    runs = tmp_path_factory.mktemp("votes-browser") / "runs"
    assert main(["train", "--method", "dpo", "--model", "tiny-random", "--dataset", str(data), "--max-steps", "2",
                 "--batch-size", "2", "--max-length", "48", "--max-completion-length", "8", "--probe-every", "0",
                 "--output-dir", str(runs), "--run-id", RUN_ID, "--quiet"]) == 0
    demo = create_app(runs)
    _, url, _ = serve(demo, port=None, block=False)
    yield demo, url, runs
    demo.services.jobs.close()
    demo.close()


def vote_blind(page, voter: str, text: str, button: str) -> str:
    """In the Chat: pick the run, switch Blind vote on, send ``text``, vote; the reveal line."""
    page.get_by_role("tab", name="Chat").click()
    pick(page, "chat-model", RUN_ID)
    page.locator("#chat-blind input").check()
    page.wait_for_function("() => (document.getElementById('chat-notice')?.innerText || '')"
                           ".includes('Which answer is better')")
    page.locator("#chat-voter textarea, #chat-voter input").first.fill(voter)
    page.locator("#chat-message textarea").fill(text)
    page.locator("#chat-send").click()
    page.wait_for_function("() => document.querySelectorAll('#chat-aligned .message').length >= 2"
                           " && !document.querySelector('#chat-send')?.disabled")
    page.locator(f"#{button}").click()
    page.wait_for_function("() => (document.getElementById('chat-reveal')?.innerText || '').includes('✓')")
    return page.locator("#chat-reveal").inner_text()


def test_two_browsers_vote_blind_train_on_the_votes_and_chat_with_the_new_run(app, browser):
    demo, url, runs = app
    first, second = open_app(browser, url), open_app(browser, url)
    reveals = [vote_blind(first, "Ada", "The opening scene", "chat-vote-a"),
               vote_blind(second, "Grace", "I went in with low expectations and", "chat-vote-b")]
    assert all("reference" in line and "aligned" in line for line in reveals), reveals
    shot(second, "votes-revealed")

    votes, _ = read_votes(votes_path(runs, RUN_ID))
    assert sorted(vote["voter"] for vote in votes) == ["Ada", "Grace"]
    first.wait_for_function("() => (document.getElementById('chat-win-rate')?.innerText || '')"
                            ".includes('of 2 decisive votes')")
    shot(first, "votes-win-rate")

    # Train on these votes, from the first browser: a DPO job on the two pairs joins the queue.
    first.get_by_text("Train on these votes", exact=True).first.click()
    first.locator("#chat-train-votes").click()
    first.wait_for_function("() => (document.getElementById('chat-votes-message')?.innerText || '')"
                            ".includes('Queued job')")
    job = demo.services.jobs.current()
    assert job.config.dataset == str(votes_path(runs, RUN_ID))
    wait_for(lambda: job.state not in ("queued", "starting", "running"), 240, every=0.5, what="the job ending")
    assert job.state == "finished", (job.state, job.error, job.log_tail())
    first.get_by_role("tab", name="Train").click()
    first.wait_for_function("() => document.querySelector('#train-progress .lab-state')?.innerText"
                            ".toLowerCase() === 'finished'")

    # The taught run answers in the Chat beside its reference, in the other browser.
    second.reload()
    second.wait_for_selector("#train-start")
    second.get_by_role("tab", name="Chat").click()
    pick(second, "chat-model", job.run_id)
    send_chat(second, "The ending")
    assert second.locator("#chat-aligned .message").count() >= 2
    shot(second, "votes-taught-run-chat")


# The title a column shows over its answers (a Chatbot's block label).
TITLE_JS = "(id) => (document.querySelector('#' + id + ' [data-testid=\"block-label\"]')?.innerText || '').trim()"


def titles(page) -> tuple[str, str]:
    return page.evaluate(TITLE_JS, "chat-reference"), page.evaluate(TITLE_JS, "chat-aligned")


def test_every_blind_round_is_titled_a_and_b_until_its_vote(app, browser):
    """Round after round (a vote, Clear, a change of run between them) the columns read A and B while the answers
    stream and until the vote; only the vote names the models, and the names match the vote's recorded order. A
    round left by a change of run takes no vote."""
    _, url, runs = app
    page = open_app(browser, url)
    page.get_by_role("tab", name="Chat").click()
    pick(page, "chat-model", RUN_ID)
    page.locator("#chat-blind input").check()
    page.locator("#chat-voter textarea, #chat-voter input").first.fill("Rounds")

    def mine() -> list[dict]:
        return [vote for vote in read_votes(votes_path(runs, RUN_ID))[0] if vote["voter"] == "Rounds"]

    def answer(text: str) -> None:
        page.locator("#chat-message textarea").fill(text)
        page.locator("#chat-send").click()
        page.wait_for_function("(text) => (document.querySelector('#chat-aligned')?.innerText || '').includes(text)",
                               arg=text)
        assert titles(page) == ("A", "B"), (text, titles(page))  # as soon as the round shows
        page.wait_for_function("() => document.querySelectorAll('#chat-aligned .message').length >= 2"
                               " && !document.querySelector('#chat-send')?.disabled")
        assert titles(page) == ("A", "B"), (text, titles(page))  # answered, before the vote

    def vote(button: str) -> None:
        before = len(mine())
        page.locator(f"#{button}").click()
        page.wait_for_function(f"() => ({TITLE_JS})('chat-reference').startsWith('A: ')")
        assert len(mine()) == before + 1
        order = mine()[-1]["order"]
        left, right = titles(page)
        assert left.startswith(f"A: {order[0]}") and right.startswith(f"B: {order[1]}"), (left, right, order)

    answer("Round 1: the film")
    vote("chat-vote-a")
    answer("Round 2: the film")  # straight after a reveal
    vote("chat-vote-b")
    page.locator("#chat-clear").click()
    page.wait_for_function(f"() => ({TITLE_JS})('chat-reference') === 'A'")
    answer("Round 3: the film")  # after Clear
    vote("chat-vote-tie")
    answer("Round 4: the film")
    pick(page, "chat-model", "tiny-random")  # another model and back, before voting
    page.wait_for_function("() => document.querySelectorAll('#chat-aligned .message').length === 0")
    pick(page, "chat-model", RUN_ID)
    assert titles(page) == ("A", "B")
    page.locator("#chat-vote-a").click()
    page.wait_for_function("() => (document.getElementById('chat-reveal')?.innerText || '')"
                           ".includes('Nothing to vote')")
    answer("Round 5: the film")  # after a change of run
    vote("chat-vote-both-bad")
    assert [vote["vote"] for vote in mine()] == ["A", "B", "tie", "both-bad"]
