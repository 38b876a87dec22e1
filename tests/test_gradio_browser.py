"""The Gradio app in a real browser (Playwright driving Debian's Chromium; no browser download).

Two sessions at once: session A starts a short tiny-random run and watches curve points appear while
session B chats side by side with a base model; neither blocks the other. A reload re-attaches to the
running job. Then A stops the run, reads what changed, chats with it, compares it on the Runs tab and reads
the Learn tab.
Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from alignlab.config import RunConfig
from alignlab.methods import registry
from alignlab.ui.gradio.app import create_app
from alignlab.ui.gradio.server import serve

playwright = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    demo = create_app(tmp_path_factory.mktemp("browser") / "runs")
    _, url, _ = serve(demo, port=None, block=False)
    yield demo, url
    demo.services.jobs.close()
    demo.close()


def open_app(browser, url: str):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.wait_for_selector("#train-start")
    return page


def form_settled(app, page) -> None:
    """Wait until a freshly opened page has set the Train form to the last job's settings (it does so once loaded,
    when there is a job), so that what a test picks or types afterwards is not replaced."""
    if app[0].services.jobs.current() is not None:
        page.wait_for_function("() => (document.getElementById('train-preset-note')?.innerText || '')"
                               ".includes('The form shows the settings of')")


def pick(page, elem_id: str, option: str) -> None:
    """Choose a dropdown option by (part of) its label."""
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option).first.click()


def fill(page, knob: str, value) -> None:
    page.locator(f"#knob-{knob} input").first.fill(str(value))


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


# Points of the longest line in a plot, read from plotly's graph div (long curves are drawn without markers).
POINTS_JS = """(plot) => {
  const graph = document.querySelector('#' + plot + ' .js-plotly-plot');
  return graph && graph.data ? Math.max(0, ...graph.data.map(trace => (trace.x || []).length)) : 0;
}"""


def curve_points(page, plot: str = "train-plot-0") -> int:
    return page.evaluate(POINTS_JS, plot)


def wait_for_points(page, plot: str = "train-plot-0", at_least: int = 1) -> None:
    page.wait_for_function(f"(plot) => ({POINTS_JS})(plot) >= {at_least}", arg=plot)


def send_chat(page, text: str) -> None:
    page.locator("#chat-message textarea").fill(text)
    page.locator("#chat-send").click()
    page.wait_for_function(
        "() => ['chat-reference-reward', 'chat-aligned-reward'].every("
        "id => (document.getElementById(id)?.innerText || '').includes('reward ('))")


def test_two_sessions_train_watch_stop_and_chat(app, browser):
    demo, url = app
    trainer = open_app(browser, url)
    pick(trainer, "train-model", "tiny-random")
    fill(trainer, "max_steps", 400)
    fill(trainer, "batch_size", 2)
    fill(trainer, "probe_every", 0)  # the probe's sampling would slow this CPU test down
    trainer.locator("#train-start").click()
    trainer.wait_for_function("() => document.getElementById('train-message').innerText.includes('Queued job 1')")

    # Session B chats with a base model while A's job loads and trains in its worker process.
    chatter = open_app(browser, url)
    chatter.get_by_role("tab", name="Chat").click()
    pick(chatter, "chat-model", "tiny-random")
    send_chat(chatter, "The opening scene")
    assert demo.services.jobs.current().active, "chat had to wait for training to end"
    shot(chatter, "chat-base-while-training")

    # Curve points appear in A (the 1 s timer follows metrics.jsonl).
    wait_for_points(trainer, at_least=2)
    assert "step" in trainer.locator("#train-progress").inner_text()

    # A reload re-attaches to the job: the state lives in the server.
    trainer.reload()
    wait_for_points(trainer)
    run_id = demo.services.jobs.current().run_id
    assert run_id in trainer.locator("#train-progress").inner_text()
    assert "tiny-random" in trainer.locator("#train-progress").inner_text()
    # and the form shows that job's settings, saying so, not the defaults beside another run's card
    trainer.wait_for_function("(id) => document.getElementById('train-preset-note').innerText"
                              ".includes('form shows the settings of ' + id)", arg=run_id)
    assert trainer.locator("#knob-max_steps input").first.input_value() == "400"
    assert trainer.locator("#knob-probe_every input").first.input_value() == "0"
    assert trainer.locator("#train-model input").input_value().startswith("tiny-random")
    shot(trainer, "train-running")

    trainer.locator("#train-stop").click()
    trainer.wait_for_function("() => document.querySelector('#train-progress .lab-state')?.innerText.toLowerCase()"
                              " === 'stopped'")
    steps = curve_points(trainer)
    assert 2 <= steps < 400
    shot(trainer, "train-stopped")

    # What changed: three held-out prompts, reference vs aligned with rewards, under the results once it ended.
    trainer.wait_for_function("() => document.getElementById('train-changes-note')?.innerText"
                              ".includes('What changed in')")
    rows = demo.services.changes.rows(demo.services.jobs.current().run_dir).result()
    shown = trainer.locator("#train-changes").inner_text()
    assert len(rows) == 3 and all(row["prompt"] in shown for row in rows)
    shot(trainer, "train-what-changed")

    # Chat with the stopped run: reference and aligned side by side, each with its reward.
    trainer.get_by_role("tab", name="Chat").click()
    pick(trainer, "chat-model", run_id)
    send_chat(trainer, "I went in with low expectations and")
    for column in ("chat-reference", "chat-aligned"):
        assert trainer.locator(f"#{column} .message").count() >= 2
    shot(trainer, "chat-run")

    # Runs tab: the run is listed; overlaying it draws its panels and the reward-vs-KL frontier.
    trainer.get_by_role("tab", name="Runs").click()
    trainer.wait_for_function(f"() => document.getElementById('runs-table').innerText.includes('{run_id}')")
    pick(trainer, "runs-compare", run_id)
    trainer.keyboard.press("Escape")  # close the multiselect menu
    wait_for_points(trainer, "runs-plot-0")
    frontier = trainer.locator(".lab-plot:visible").filter(has_text="Reward vs KL")
    assert frontier.count() == 1  # without probe points it says what it waits for
    trainer.wait_for_function("() => document.getElementById('runs-samples').innerText.includes('aligned')")
    shot(trainer, "runs")

    trainer.get_by_role("tab", name="Learn").click()
    for spec in registry().values():
        assert trainer.get_by_text(spec.title, exact=True).count() >= 1
    shot(trainer, "learn")


def test_a_value_typed_before_the_page_shows_the_last_jobs_settings_is_kept(app, browser, monkeypatch, tmp_path):
    """A page opened beside a job fills the form with that job's settings, but on a busy machine that answer can
    come after the user began typing: what they typed stays, and the note says whose run the card shows. An
    untouched page is still filled."""
    import threading

    import alignlab.ui.gradio.components.train as train
    from alignlab.ui.gradio.jobs import Job

    demo, url = app
    jobs = demo.services.jobs
    if jobs.current() is None:  # this test alone: a finished job of 7 steps for the page to show
        jobs.jobs.append(Job(99, RunConfig(model="tiny-random", max_steps=7), tmp_path / "99.json", tmp_path / "99.log",
                             state="finished", started=1.0))
    steps = str(jobs.current().config.max_steps)
    typed, found = threading.Event(), train.page_job

    def late(*args):  # the load answer waits until the user has typed: a busy server
        typed.wait(60)
        return found(*args)

    monkeypatch.setattr(train, "page_job", late)
    page = open_app(browser, url)
    fill(page, "max_steps", 5)
    typed.set()
    page.wait_for_function("() => (document.getElementById('train-preset-note')?.innerText || '')"
                           ".includes('keeps the values you changed')")
    assert page.locator("#knob-max_steps input").first.input_value() == "5"
    assert jobs.current().label in page.locator("#train-preset-note").inner_text()
    monkeypatch.setattr(train, "page_job", found)
    untouched = open_app(browser, url)
    form_settled(app, untouched)
    assert untouched.locator("#knob-max_steps input").first.input_value() == steps
    assert untouched.locator("#train-model input").input_value().startswith("tiny-random")


def test_upload_checks_the_dataset_and_switching_method_swaps_knobs(app, browser, pairs_file):
    page = open_app(browser, app[1])
    form_settled(app, page)
    with page.expect_file_chooser() as chooser:
        page.locator("#train-upload").click()
    chooser.value.set_files(str(pairs_file))
    page.wait_for_function("() => document.getElementById('train-dataset-check').innerText.includes('12 rows')")
    assert "preference format" in page.locator("#train-dataset-check").inner_text()
    stored = app[0].services.uploads.names()
    assert len(stored) == 1 and stored[0].startswith("pairs-")  # renamed by the server
    # on a busy machine the dataset box may be filled after the check shows: wait for it too
    page.wait_for_function("(name) => document.querySelector('#train-dataset input').value.includes(name)",
                           arg=stored[0])
    assert page.locator("#knob-dpo__beta").is_visible()
    pick(page, "train-method", registry()["kto"].title)
    page.wait_for_selector("#knob-kto__desirable_weight", state="visible")
    assert not page.locator("#knob-dpo__beta").is_visible()
    page.wait_for_function("() => document.getElementById('train-dataset-check').innerText.includes('unpaired')")
    assert "24 rows" in page.locator("#train-dataset-check").inner_text()  # each pair: one good, one bad
    if app[0].services.jobs.current() is not None:
        page.wait_for_selector("#train-plot-0 .main-svg")  # the last job's curves are drawn on load
    shot(page, "train-form-kto-upload")


def test_picking_the_classroom_preset_fills_the_form(app, browser):
    page = open_app(browser, app[1])
    form_settled(app, page)
    pick(page, "train-preset", "Classroom")
    page.wait_for_function("() => document.getElementById('train-preset-note').innerText.includes('178 s')")
    assert "estimate of its time" in page.locator("#train-preset-note").inner_text()  # no run of it here yet
    assert page.locator("#knob-max_steps input").first.input_value() == "6"
    assert page.locator("#knob-probe_every input").first.input_value() == "3"
    assert page.locator("#knob-dpo__beta").is_visible()
    shot(page, "train-preset-classroom")


# The answer's state as the page shows it: both reward lines, the Send button, the message box and the notice.
CHAT_STATE_JS = """() => ({
  rewards: ['chat-reference-reward', 'chat-aligned-reward'].map(id => document.getElementById(id)?.innerText || ''),
  send: document.querySelector('#chat-send').innerText.trim(), disabled: document.querySelector('#chat-send').disabled,
  box: document.querySelector('#chat-message textarea').value,
  notice: document.getElementById('chat-notice')?.innerText || '',
  asked: [...document.querySelectorAll('#chat-aligned [data-testid=user]')].map(m => m.innerText.trim()),
})"""
STREAMING_JS = f"() => {{ const state = ({CHAT_STATE_JS})(); return state.rewards.includes('generating…') && state; }}"
ANSWERING_JS = "() => document.querySelector('#chat-send').innerText.trim() === 'Answering…'"
ANSWERED_JS = ("() => ['chat-reference-reward', 'chat-aligned-reward'].every(id => (document.getElementById(id)"
               "?.innerText || '').includes('reward (')) && !document.querySelector('#chat-send').disabled")


def test_a_message_typed_while_an_answer_streams_is_never_lost(app, browser):
    from alignlab.ui.gradio.components.chat import BUSY_NOTICE, READY_NOTICE

    page = open_app(browser, app[1])
    page.get_by_role("tab", name="Chat").click()
    pick(page, "chat-model", "tiny-random")
    page.get_by_text("Generation settings").click()
    page.locator("#chat-max-new-tokens input[type=number]").fill("256")
    page.keyboard.press("Tab")
    box = page.locator("#chat-message textarea")
    box.fill("First message")
    page.locator("#chat-send").click()
    page.wait_for_function(ANSWERING_JS)  # the answer is on its way: the box is free again
    box.fill("Second message, typed while the first answer streams")
    # The page as it shows tokens streaming in; on a starved CPU the browser may draw only the finished answer
    # (it renders the latest of the updates that arrived together), and then there is no such moment to look at.
    state = page.wait_for_function(f"() => ({STREAMING_JS})() || (({ANSWERED_JS})() && 'answered')").json_value()
    if state != "answered":
        assert state["box"] == "Second message, typed while the first answer streams"
        assert state["disabled"] and state["send"] == "Answering…"  # Send says plainly that it waits
        shot(page, "chat-typing-while-streaming")
    # the button and the notice come in one update, but the page draws the Markdown notice a moment later
    page.wait_for_function(f"() => ({ANSWERED_JS})() && (document.getElementById('chat-notice')?.innerText || '')")
    state = page.evaluate(CHAT_STATE_JS)
    assert state["box"] == "Second message, typed while the first answer streams"  # kept through the stream
    assert state["notice"] == READY_NOTICE and state["asked"] == ["First message"]  # not sent behind the user's back
    page.locator("#chat-send").click()  # and it is answered once sent
    page.wait_for_function("() => document.querySelectorAll('#chat-aligned [data-testid=user]').length === 2")
    page.wait_for_function(ANSWERED_JS)
    assert page.evaluate(CHAT_STATE_JS)["asked"][-1] == "Second message, typed while the first answer streams"

    # Enter while an answer streams: the message stays in the box with a note, or, if the answer ended first, it
    # is sent and answered; either way it is never gone.
    fourth = "Fourth message, sent with Enter while streaming"
    box.fill("Third message")
    page.locator("#chat-send").click()
    page.wait_for_function(ANSWERING_JS)
    box.fill(fourth)
    page.wait_for_function(f"() => ({STREAMING_JS})() || ({ANSWERED_JS})()")  # streaming, or already answered
    box.press("Enter")
    page.wait_for_function("""([fourth, notices]) => {
      const box = document.querySelector('#chat-message textarea').value;
      const notice = document.getElementById('chat-notice')?.innerText || '';
      const asked = [...document.querySelectorAll('#chat-aligned [data-testid=user]')].map(m => m.innerText.trim());
      return (box === fourth && notices.includes(notice)) || asked.includes(fourth);
    }""", arg=[fourth, [BUSY_NOTICE, READY_NOTICE]])
    state = page.evaluate(CHAT_STATE_JS)
    if state["box"]:  # refused while streaming: kept, and the notice says so
        assert fourth not in state["asked"]
        shot(page, "chat-enter-while-streaming")
    page.wait_for_function(ANSWERED_JS)
    state = page.evaluate(CHAT_STATE_JS)
    assert state["box"] == fourth or state["asked"][-1] == fourth


def test_a_reloaded_page_lists_uploads_from_disk_and_the_queue_shows_whole_run_ids(app, browser, pairs_file):
    demo, url = app
    page = open_app(browser, url)
    stored = demo.services.uploads.add(pairs_file, "pairs.jsonl")  # after the page was built, as another tab would
    if not any(job.run_id for job in demo.services.jobs.jobs):  # run alone: a one-step job puts a run id in the queue
        demo.services.jobs.submit(RunConfig(method="dpo", model="tiny-random", max_steps=1, batch_size=2, max_length=96,
                                            max_completion_length=8, probe_every=0))
    page.reload()
    page.wait_for_selector("#train-start")
    # the list is read from disk by the page's load event, which may end after the layout is drawn: open the
    # dropdown again until it has answered (30 s at most)
    option = page.get_by_role("option", name=f"{stored} (uploaded)")
    for _attempt in range(15):
        page.locator("#train-dataset input").click()
        try:
            option.wait_for(timeout=2000)
            break
        except playwright.TimeoutError:
            page.keyboard.press("Escape")
    assert option.count() == 1
    page.keyboard.press("Escape")
    page.wait_for_function("() => [...document.querySelectorAll('#train-queue [role=gridcell]')]"
                           ".some(cell => /\\d{8}-\\d{6}-/.test(cell.innerText))")
    run_ids = [job.run_id for job in demo.services.jobs.jobs if job.run_id]
    page.locator("#train-queue").scroll_into_view_if_needed()
    for run_id in run_ids:  # the whole id is inside every box that clips the cell (no ellipsis, no cut)
        assert page.evaluate(WHOLE_IN_CELL_JS, run_id), run_id
    shot(page, "train-queue-run-ids")


# True when the queue cell holding ``id`` shows all of it: its text neither overflows the cell nor runs past any
# ancestor that clips (up to the table's block).
WHOLE_IN_CELL_JS = """(id) => {
  const cell = [...document.querySelectorAll('#train-queue [role=gridcell]')].find(c => c.innerText.includes(id));
  if (!cell) return false;
  const range = document.createRange();
  range.selectNodeContents(cell.querySelector('span') || cell);
  const text = range.getBoundingClientRect();
  for (let box = cell; box; box = box.parentElement) {
    if (box.scrollWidth > box.clientWidth + 1 && getComputedStyle(box).overflowX !== 'visible' && box === cell)
      return false;
    const edge = box.getBoundingClientRect();
    if (getComputedStyle(box).overflowX !== 'visible' && (text.right > edge.right + 1 || text.left < edge.left - 1))
      return false;
    if (box.id === 'train-queue') break;
  }
  return true;
}"""


VISIBLE_PLOTS_JS = "() => [...document.querySelectorAll('.lab-plot')].filter(plot => plot.offsetParent !== null).length"
# Line boxes of each queue header's text and of each state cell's (1 when a word is not broken across lines).
QUEUE_LINES_JS = """() => [...document.querySelectorAll('#train-queue th span.text'),
    ...[...document.querySelectorAll('#train-queue .virtual-row')]
      .map(row => row.children[3]?.querySelector('span.text'))]
  .filter(Boolean).map(span => { const range = document.createRange(); range.selectNodeContents(span);
                                 return [span.innerText.trim(), range.getClientRects().length]; })"""
IN_VIEW_JS = """(id) => { const box = document.getElementById(id).getBoundingClientRect();
  return box.top >= 0 && box.top < window.innerHeight; }"""


def test_at_1280_by_800_start_brings_the_run_into_view_the_grid_stays_fixed_and_the_queue_reads_whole(app, browser):
    _, url = app
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.wait_for_selector("#train-start")
    page.wait_for_selector("#train-progress", state="attached")  # drawn a moment later on a busy machine
    assert not page.evaluate(IN_VIEW_JS, "train-progress")  # the form fills the first screen
    form_settled(app, page)
    pick(page, "train-model", "tiny-random")
    for knob, value in (("max_steps", 4), ("batch_size", 2), ("probe_every", 2)):
        fill(page, knob, value)
    page.locator("#train-start").click()
    page.wait_for_function(IN_VIEW_JS, arg="train-progress")  # scrolled to the run
    page.wait_for_function("() => ['queued', 'starting', 'running'].includes(document.querySelector("
                           "'#train-progress .lab-state')?.innerText.toLowerCase())")  # this job, not an earlier one
    counts = []
    while page.locator("#train-progress .lab-state").inner_text().lower() not in ("finished", "failed"):
        shown = page.evaluate(VISIBLE_PLOTS_JS)
        if shown:
            counts.append(shown)
        page.wait_for_timeout(250)
    counts.append(page.evaluate(VISIBLE_PLOTS_JS))
    assert page.locator("#train-progress .lab-state").inner_text().lower() == "finished"
    assert len(set(counts)) == 1 and counts[0] >= 7, counts  # every DPO panel from the first point to the end
    lines = page.evaluate(QUEUE_LINES_JS)
    assert ["job", 1] in lines and ["finished", 1] in lines and all(count == 1 for _, count in lines), lines
    shot(page, "train-first-screen-after-start")
