"""Workshop mode in a real browser: a participant names the page (remembered across a reload) and reads the Class
tab's leaderboard and frontier; the instructor's name is refused without the instructor key and, with it, unlocks
the KL budget. The screenshot goes to ``test-artifacts/workshop-class.png``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alignlab import rundir
from alignlab.config import RunConfig
from alignlab.ui.gradio.app import create_app
from alignlab.ui.gradio.server import serve, workshop_settings

playwright = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
TIMEOUT_MS = 180_000  # waits for the page under a busy CPU (the suite must pass with one core taken)
# Finished runs of three participants (owner, beta, final probe reward, final probe KL), written without training.
ROOM = [("ada", 0.05, 0.92, 0.81), ("ada", 0.5, 0.41, 0.12), ("bob", 0.1, 0.63, 0.24), ("cy", 0.2, 0.35, 0.66)]


@pytest.fixture
def app(tmp_path):
    runs = tmp_path / "runs"
    for number, (owner, beta, reward, kl) in enumerate(ROOM, start=1):
        run_id = f"20260101-10000{number}-dpo-{owner}"
        config = RunConfig(model="tiny-random", owner=owner, method_args={"beta": beta})
        run_dir = rundir.create(runs / run_id, {"run_id": run_id, **config.to_dict()})
        rundir.write_status(run_dir, {"run_id": run_id, "state": "finished", "step": 12})
        rows = [{"step": 0, "probe/reward": 0.0, "probe/kl": 0.0}, {"step": 12, "probe/reward": reward, "probe/kl": kl}]
        (run_dir / rundir.METRICS).write_text("".join(json.dumps(row) + "\n" for row in rows))
    demo = create_app(runs, workshop=workshop_settings(True, "carol", 0.5, None))
    _, url, _ = serve(demo, port=None, block=False)
    yield url, demo.services.workshop.key
    demo.services.jobs.close()
    demo.close()


def test_a_named_participant_reads_the_class_leaderboard(app):
    url, key = app
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (make browser)")
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        page.locator("#workshop-name textarea").fill("ada")
        page.locator("#workshop-name textarea").press("Enter")
        page.wait_for_selector("#workshop-yours :text('You are ada')")
        assert "(instructor)" not in page.locator("#workshop-yours").inner_text()
        page.reload()  # the browser remembers the name
        page.wait_for_function("() => document.querySelector('#workshop-name textarea')?.value === 'ada'")
        page.get_by_role("tab", name="Class").click()
        board = page.locator("#class-leaderboard")
        page.wait_for_function("() => (document.querySelector('#class-leaderboard')?.innerText || '').includes('bob')")
        text = board.inner_text()
        # at KL ≤ 0.5: bob's 0.63, then ada's 0.41 (her 0.92 drifted to 0.81), and cy has no run within it
        assert text.index("bob") < text.index("ada") < text.index("cy") and "no run within the KL budget" in text
        budget = page.locator("#class-kl-budget input")
        assert budget.input_value() == "0.5" and budget.is_disabled()  # ada is not the instructor
        page.wait_for_selector("#class-frontier .js-plotly-plot")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "workshop-class.png"), full_page=True)

        teacher = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        teacher.set_default_timeout(TIMEOUT_MS)
        teacher.goto(url)
        teacher.locator("#workshop-name textarea").fill("carol")
        teacher.locator("#workshop-name textarea").press("Enter")
        teacher.wait_for_selector("#workshop-yours :text('needs the instructor key')")
        teacher.locator("#workshop-key input").press_sequentially(key, delay=30)  # typed, as a person does
        teacher.locator("#workshop-key input").press("Enter")
        teacher.wait_for_selector("#workshop-yours :text('(instructor)')")
        teacher.get_by_role("tab", name="Class").click()
        teacher.wait_for_function("() => !document.querySelector('#class-kl-budget input')?.disabled")
        teacher.reload()  # the browser remembers the name and the key
        teacher.wait_for_selector("#workshop-yours :text('(instructor)')")
        browser.close()
