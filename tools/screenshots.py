"""Evidence screenshots at 1280×800 (issue 27): ``python tools/screenshots.py [OUT_DIR]`` (default docs/screenshots).

What a room sees on a projector, photographed with Debian's Chromium (Playwright, no browser download):

- ``gradio-train-during.png``, ``gradio-train-after.png``: the app's Train tab right after Start (the page scrolls
  to the run) while a short run trains, and once it finished;
- ``gradio-chat-examples.png``: the Chat tab on that run (it opens on the newest finished run), an example request
  (labelled by its opening) answered by both columns;
- ``gradio-chat-blind.png``: the same in blind mode, answers as A and B with the vote buttons;
- ``jupyterlab-lab.png``: the notebook's Lab in JupyterLab after 01_quickstart ran in quick mode;
- ``gradio-learn-drift-NAME.png``: each worked example of drift in the Learn tab (shipped real runs of the default
  model, :mod:`alignlab.worked_examples`): its words, drift panel with verdict, and reward-vs-KL path.

``python tools/screenshots.py OUT_DIR learn`` takes only the Learn tab's (names: ``train``, ``lab``, ``learn``).

The runs use the tiny random model (``ALIGNLAB_DEV=1``, set here): seconds per run, gibberish answers; the pictures
show the layout, not what alignment does. Everything runs in a temporary folder; nothing is downloaded. The PNGs
are reduced to a 256-colour palette so they stay small. Not part of the test suite.
"""

from __future__ import annotations

import os

os.environ.setdefault("ALIGNLAB_DEV", "1")  # before alignlab: the pickers offer tiny-random in development only

import contextlib  # noqa: E402
import json  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from pathlib import Path  # noqa: E402

import nbformat  # noqa: E402
from PIL import Image  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from alignlab.ui.gradio.app import create_app  # noqa: E402
from alignlab.ui.gradio.server import serve  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
VIEWPORT = {"width": 1280, "height": 800}
TIMEOUT_MS = 300_000
# the Train form's settings: a short tiny-random run that probes, so the reward, KL and frontier panels fill too
RUN = {"max_steps": 60, "batch_size": 2, "probe_every": 20}
ANSWERED_JS = ("() => ['chat-reference-reward', 'chat-aligned-reward'].every(id => (document.getElementById(id)"
               "?.innerText || '').includes('reward (')) && !document.querySelector('#chat-send').disabled")
STATE_JS = "() => (document.querySelector('#train-progress .lab-state')?.innerText || '').toLowerCase()"


def save(page, path: Path) -> None:
    """The viewport (what the screen shows), as a small palette PNG."""
    page.wait_for_timeout(600)  # plotly and Gradio finish drawing
    page.screenshot(path=str(path))
    Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)
    print(f"wrote {path} ({path.stat().st_size // 1024} KiB)", flush=True)


def pick(page, elem_id: str, option: str) -> None:
    page.locator(f"#{elem_id} input").click()
    page.get_by_role("option", name=option).first.click()


@contextlib.contextmanager
def app_page(browser):
    """The app served from a temporary runs folder, and a 1280×800 page open on it: ``(demo, page)``."""
    demo = create_app(Path(tempfile.mkdtemp(prefix="alignlab-shots-")) / "runs")
    _, url, _ = serve(demo, port=None, block=False)
    try:
        page = browser.new_context(viewport=VIEWPORT).new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(url)
        yield demo, page
    finally:
        demo.services.jobs.close()
        demo.close()


def gradio_shots(browser, out: Path) -> None:
    """Train (during, after), Chat with an example, Chat in blind mode."""
    with app_page(browser) as (demo, page):
        page.wait_for_selector("#train-start")
        pick(page, "train-model", "tiny-random")
        for knob, value in RUN.items():
            page.locator(f"#knob-{knob} input").first.fill(str(value))
        page.locator("#train-start").click()
        page.wait_for_function("() => document.querySelectorAll('#train-plot-0 .js-plotly-plot .points path')"
                               ".length >= 3")
        if page.evaluate(STATE_JS) == "running":
            save(page, out / "gradio-train-during.png")
        else:
            print("the run ended before a picture of it training could be taken", flush=True)
        page.wait_for_function(f"() => ['finished', 'failed', 'stopped'].includes(({STATE_JS})())")
        page.wait_for_function("() => (document.getElementById('train-changes-note')?.innerText || '')"
                               ".includes('What changed in')")
        page.locator("#train-start").scroll_into_view_if_needed()
        page.evaluate("() => document.getElementById('train-start').scrollIntoView({block: 'start'})")
        save(page, out / "gradio-train-after.png")

        page.get_by_role("tab", name="Chat").click()
        run_id = demo.services.jobs.current().run_id
        page.wait_for_function("(id) => document.querySelector('#chat-model input')?.value.includes(id)", arg=run_id)
        page.get_by_text("I watched this on a long flight", exact=False).first.click()  # an example, by its opening
        page.locator("#chat-send").click()
        page.wait_for_function(ANSWERED_JS)
        save(page, out / "gradio-chat-examples.png")

        page.locator("#chat-blind input").check()
        page.wait_for_function("() => (document.getElementById('chat-notice')?.innerText || '')"
                               ".includes('Which answer is better')")
        page.get_by_text("The score swells at exactly", exact=False).first.click()
        page.locator("#chat-send").click()
        page.wait_for_function("() => document.querySelectorAll('#chat-aligned .message').length >= 2"
                               " && !document.querySelector('#chat-send')?.disabled")
        page.locator("#chat-blind").scroll_into_view_if_needed()
        page.evaluate("() => window.scrollBy(0, -420)")  # both columns above the vote buttons
        save(page, out / "gradio-chat-blind.png")


def learn_shots(browser, out: Path) -> None:
    """The Learn tab's worked examples of drift, one picture each (no training: the runs are shipped)."""
    from alignlab.worked_examples import worked_examples

    with app_page(browser) as (_, page):
        page.get_by_role("tab", name="Learn").click()
        page.locator("#learn-examples button").first.click()  # open the accordion
        examples = worked_examples()
        drawn = len(examples) * 2  # each example's drift panel and reward-vs-KL plot, drawn by plotly in the page
        page.wait_for_function(f"() => document.querySelectorAll('#learn-examples .js-plotly-plot').length >= {drawn}",
                               timeout=120_000)
        for example in examples:
            card = page.locator(f"#example-{example.name}")
            card.wait_for()
            page.evaluate(f"() => document.getElementById('example-{example.name}').scrollIntoView({{block: 'start'}})")
            save(page, out / f"gradio-learn-drift-{example.name}.png")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def jupyterlab_shot(browser, out: Path) -> None:
    """01_quickstart in quick mode, run in JupyterLab; the Lab (form, progress, curves) once the run finished."""
    folder = Path(tempfile.mkdtemp(prefix="alignlab-shots-lab-"))
    notebook = nbformat.read(ROOT / "notebooks" / "01_quickstart.ipynb", as_version=4)
    parameters = next(cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", []))
    parameters.source = parameters.source.replace("QUICK = False", "QUICK = True")
    nbformat.write(notebook, folder / "01_quickstart.ipynb")
    settings = folder / ".settings"
    for plugin, values in {"@jupyterlab/notebook-extension/tracker": {"autoStartDefaultKernel": True},
                           "@jupyterlab/apputils-extension/notification": {"fetchNews": "false",
                                                                           "checkForUpdates": False}}.items():
        (settings / plugin).parent.mkdir(parents=True, exist_ok=True)
        (settings / f"{plugin}.jupyterlab-settings").write_text(json.dumps(values))
    port = free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(folder / ".jupyter"), "JUPYTER_RUNTIME_DIR": str(folder / ".rt"),
           "JUPYTERLAB_SETTINGS_DIR": str(settings), "ALIGNLAB_RUNS": str(folder / "runs")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         "--IdentityProvider.token=", "--ServerApp.password=", "--allow-root", f"--ServerApp.root_dir={folder}",
         "--LabApp.news_url=", "--LabApp.extension_manager=readonly"],
        cwd=folder, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"{url}/api/status", timeout=2):
                    break
            except OSError:
                time.sleep(0.2)
        page = browser.new_context(viewport=VIEWPORT).new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{url}/lab/tree/01_quickstart.ipynb?reset")
        page.wait_for_selector(".jp-Notebook .jp-Cell")
        for _ in range(300):  # the kernel is up
            with urllib.request.urlopen(f"{url}/api/kernels", timeout=5) as response:
                if any(kernel["execution_state"] == "idle" for kernel in json.load(response)):
                    break
            time.sleep(0.2)
        page.click(".lm-MenuBar-item:has-text('Run')")
        page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
        page.wait_for_selector(".widget-html:has-text('reward (sentiment)')")  # the chat answered: the run ended
        page.evaluate("() => document.querySelector('.jp-OutputArea-output:has(.js-plotly-plot)')"
                      ".scrollIntoView({block: 'start'})")
        page.mouse.wheel(0, 330)  # past the form's first fields, to Start, the progress line and the curves
        save(page, out / "jupyterlab-lab.png")
    finally:
        server.terminate()
        server.wait(10)


SHOTS = {"train": gradio_shots, "lab": jupyterlab_shot, "learn": learn_shots}


def main(out: Path, names: list[str] | None = None) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for name in names or list(SHOTS):
                SHOTS[name](browser, out)
        finally:
            browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"), sys.argv[2:])
