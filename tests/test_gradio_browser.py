"""The Gradio app in a real browser (Playwright driving Debian's Chromium; no browser download).

Two sessions at once: session A starts a short tiny-random run and watches curve points appear while
session B chats side by side with a base model; neither blocks the other. A reload re-attaches to the
running job. Then A stops the run, chats with it, compares it on the Runs tab and reads the Learn tab.
Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from alignlab.methods import registry
from alignlab.ui.gradio import create_app, serve

playwright = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
TIMEOUT_MS = 180_000


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    demo = create_app(tmp_path_factory.mktemp("browser") / "runs")
    _, url, _ = serve(demo, port=None, block=False)
    yield demo, url
    demo.services.jobs.close()
    demo.close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make browser)")
    with playwright.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def open_app(browser, url: str):
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.wait_for_selector("#train-start")
    return page


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
    shot(trainer, "train-running")

    trainer.locator("#train-stop").click()
    trainer.wait_for_function("() => document.querySelector('#train-progress .lab-state')?.innerText.toLowerCase()"
                              " === 'stopped'")
    steps = curve_points(trainer)
    assert 2 <= steps < 400
    shot(trainer, "train-stopped")

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


def test_upload_checks_the_dataset_and_switching_method_swaps_knobs(app, browser, pairs_file):
    page = open_app(browser, app[1])
    with page.expect_file_chooser() as chooser:
        page.locator("#train-upload").click()
    chooser.value.set_files(str(pairs_file))
    page.wait_for_function("() => document.getElementById('train-dataset-check').innerText.includes('12 rows')")
    assert "preference format" in page.locator("#train-dataset-check").inner_text()
    stored = app[0].services.uploads.names()
    assert len(stored) == 1 and stored[0].startswith("pairs-")  # renamed by the server
    assert stored[0] in page.locator("#train-dataset input").input_value()
    assert page.locator("#knob-dpo__beta").is_visible()
    pick(page, "train-method", registry()["kto"].title)
    page.wait_for_selector("#knob-kto__desirable_weight", state="visible")
    assert not page.locator("#knob-dpo__beta").is_visible()
    page.wait_for_function("() => document.getElementById('train-dataset-check').innerText.includes('unpaired')")
    assert "24 rows" in page.locator("#train-dataset-check").inner_text()  # each pair: one good, one bad
    if app[0].services.jobs.current() is not None:
        page.wait_for_selector("#train-plot-0 .main-svg")  # the last job's curves are drawn on load
    shot(page, "train-form-kto-upload")
