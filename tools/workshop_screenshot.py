"""Screenshot of workshop mode's Class tab over real runs: ``python tools/workshop_screenshot.py [OUT.png]``.

Starts ``alignlab app --workshop`` (in-process, a temporary runs folder, instructor ``carol``), lets three
participants queue short tiny-random runs through the app's API as a browser would (DPO and IPO at a few β and
learning rates, the probe on so each run ends with a reward-vs-KL point), waits for them, has the instructor set
the KL budget to the median final KL (at least 0), and photographs the Class tab of ada's page with Debian's Chromium.
Default output: assets/workshop.png. Takes a few minutes on a laptop CPU.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

from gradio_client import Client
from playwright.sync_api import sync_playwright

from alignlab.ui.gradio.app import create_app
from alignlab.ui.gradio.server import serve, workshop_settings
from alignlab.workshop import class_points

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
QUICK = dict(model="tiny-random", batch_size=2, max_length=64, max_completion_length=16, max_steps=16, probe_every=8)
# who trains what: (participant, method, its knobs); high learning rates so that 16 steps move the KL
ROOM = [("ada", "dpo", {"dpo__beta": 0.1, "learning_rate": 1e-3}),
        ("bob", "dpo", {"dpo__beta": 0.5, "learning_rate": 1e-3}),
        ("cy", "dpo", {"dpo__beta": 0.1, "dpo__loss_type": "ipo", "learning_rate": 2e-3}),
        ("ada", "dpo", {"dpo__beta": 0.02, "learning_rate": 5e-3}),
        ("bob", "dpo", {"dpo__beta": 0.05, "learning_rate": 5e-3}),
        ("cy", "dpo", {"dpo__beta": 1.0, "learning_rate": 1e-2})]


def main(out: Path) -> None:
    runs = Path(tempfile.mkdtemp(prefix="alignlab-workshop-")) / "runs"
    room = workshop_settings(True, "carol", None, None)
    demo = create_app(runs, workshop=room)
    _, url, _ = serve(demo, port=None, block=False)
    try:
        clients = {}
        for name in ("ada", "bob", "cy"):
            clients[name] = Client(url, verbose=False)
            clients[name].predict(name, "", api_name="/set_name")
        carol = Client(url, verbose=False)
        carol.predict("carol", room.key, api_name="/set_name")
        for name, method, knobs in ROOM:
            print(clients[name].predict(method=method, api_name="/start_run", **QUICK, **knobs), flush=True)
        while any(job.active or job.state == "queued" for job in demo.services.jobs.jobs):
            time.sleep(2)
        print([(job.number, job.owner, job.state, job.error) for job in demo.services.jobs.jobs], flush=True)
        points = class_points(demo.services.runs())
        budget = max(0.0, round(statistics.median(point["kl"] for point in points), 4))
        print(carol.predict(str(budget), api_name="/set_kl_budget")[1], flush=True)
        for point in points:
            print(point, flush=True)
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
            page.set_default_timeout(60_000)
            page.goto(url)
            page.locator("#workshop-name textarea").press_sequentially("ada", delay=30)
            page.locator("#workshop-name textarea").press("Enter")
            page.wait_for_selector("#workshop-yours :text('You are ada')")
            page.get_by_role("tab", name="Class").click()
            page.wait_for_function("() => (document.querySelector('#class-leaderboard')?.innerText || '')"
                                   ".includes('cy')")
            page.wait_for_selector("#class-frontier .js-plotly-plot")
            time.sleep(1)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
            browser.close()
        print(f"wrote {out}")
    finally:
        demo.services.jobs.close()
        demo.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "assets/workshop.png"))
