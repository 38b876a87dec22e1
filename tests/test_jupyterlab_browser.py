"""A real browser: JupyterLab runs 01_quickstart (quick mode), the live figure draws its points, and the
browser console reports no widget state it could not set.

JupyterLab starts on 127.0.0.1 (free port, no token) in a temp folder holding a copy of the
notebook with ``QUICK = True``; headless Chromium (Debian's, driven by Playwright) runs all cells.
The screenshot lands in ``test-artifacts/``.
"""

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest
from conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
# User settings for the test server: start the notebook's kernel without asking, no news toasts.
SETTINGS = {
    "@jupyterlab/notebook-extension/tracker": {"autoStartDefaultKernel": True},
    "@jupyterlab/apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (make browser)"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def jupyterlab(tmp_path):
    """A JupyterLab server over a folder with the quick-mode quickstart; yields its base URL."""
    notebook = nbformat.read(ROOT / "notebooks" / "01_quickstart.ipynb", as_version=4)
    parameters = next(cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", []))
    parameters.source = parameters.source.replace("QUICK = False", "QUICK = True")
    nbformat.write(notebook, tmp_path / "01_quickstart.ipynb")
    settings = tmp_path / ".settings"
    for plugin, values in SETTINGS.items():
        (settings / plugin).parent.mkdir(parents=True, exist_ok=True)
        (settings / f"{plugin}.jupyterlab-settings").write_text(json.dumps(values))
    port = free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / ".jupyter"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / ".runtime"), "JUPYTERLAB_SETTINGS_DIR": str(settings)}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         "--IdentityProvider.token=", "--ServerApp.password=", "--allow-root", f"--ServerApp.root_dir={tmp_path}",
         "--LabApp.news_url=", "--LabApp.extension_manager=readonly"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "jupyterlab.log", "w"),
    )
    url = f"http://127.0.0.1:{port}"

    def serving() -> bool:
        if server.poll() is not None:
            pytest.fail("JupyterLab exited:\n" + (tmp_path / "jupyterlab.log").read_text()[-2000:])
        try:
            with urllib.request.urlopen(f"{url}/api/status", timeout=2) as response:
                return json.load(response) is not None
        except OSError:
            return False

    try:
        wait_for(serving, 60, every=0.2, what="JupyterLab serving")
    except AssertionError:
        server.kill()
        pytest.fail("JupyterLab did not start:\n" + (tmp_path / "jupyterlab.log").read_text()[-2000:])
    yield url
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()


def kernel_idle(url: str) -> bool:
    """Whether a kernel of the server is idle; False while the server cannot say (it answers 500 while a kernel it
    is starting is not registered yet, and a busy machine can make it time out)."""
    try:
        with urllib.request.urlopen(f"{url}/api/kernels", timeout=5) as response:
            return any(kernel["execution_state"] == "idle" for kernel in json.load(response))
    except (urllib.error.URLError, TimeoutError, ConnectionError):
        return False


def run_all_cells(page, url: str) -> None:
    """Run > Run All Cells once the kernel is up; again if no cell started (the click beat the kernel)."""
    from playwright.sync_api import TimeoutError

    wait_for(lambda: kernel_idle(url), 90, every=0.2, what="the notebook's kernel starting")
    started = ("() => [...document.querySelectorAll('.jp-InputPrompt')]"
               ".some(p => /\\[(\\*|\\d+)\\]/.test(p.textContent))")
    for _ in range(3):
        page.click(".lm-MenuBar-item:has-text('Run')")
        page.click(".lm-Menu-itemLabel:text-is('Run All Cells')")
        try:
            page.wait_for_function(started, timeout=15_000)
            return
        except TimeoutError:
            continue
    pytest.fail("Run All Cells did not start any cell")


# [name, whole] for each checkbox on screen: whole when its label's text ends inside the label and the widget.
CHECKBOX_LABELS_JS = """() => [...document.querySelectorAll('.widget-checkbox')].filter(box => box.offsetParent)
  .map(box => { const label = box.querySelector('.widget-label-basic span') || box.querySelector('label');
    const range = document.createRange(); range.selectNodeContents(label);
    const text = range.getBoundingClientRect();
    const whole = label.scrollWidth <= label.clientWidth + 1 && text.right <= label.getBoundingClientRect().right + 1
      && text.right <= box.getBoundingClientRect().right + 1;
    return [label.textContent.trim(), whole]; })"""


def test_quickstart_runs_in_jupyterlab_and_the_figure_receives_points(jupyterlab):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 2200})  # tall: the whole lab on one screen
        console_errors = []  # what the browser console says went wrong (widget state the front end refused)
        page.on("console", lambda message: message.type == "error" and console_errors.append(message.text))
        try:
            page.goto(f"{jupyterlab}/lab/tree/01_quickstart.ipynb?reset")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            run_all_cells(page, jupyterlab)
            # The lab's live figure: one marker per logged step on the loss panel (and the others).
            page.wait_for_selector(".js-plotly-plot", timeout=90_000)
            page.wait_for_function(
                "() => document.querySelectorAll('.js-plotly-plot .scatterlayer .trace .points path').length >= 2",
                timeout=150_000,
            )
            # The chat cell streams both columns and scores each answer once the run has finished.
            page.wait_for_selector(".widget-html:has-text('reward (sentiment)')", timeout=150_000)
            lab = page.locator(".jp-OutputArea-output:has(.js-plotly-plot)").first
            lab.evaluate("element => element.scrollIntoView()")
            page.wait_for_timeout(500)
            page.screenshot(path=str(ARTIFACTS / "jupyterlab_quickstart_lab.png"))
            chat = page.locator(".jp-OutputArea-output:has(.widget-html:has-text('reward (sentiment)'))").first
            chat.evaluate("element => element.scrollIntoView()")
            page.wait_for_timeout(500)
            page.screenshot(path=str(ARTIFACTS / "jupyterlab_quickstart_chat.png"))
            points = page.evaluate(
                "() => [...document.querySelectorAll('.js-plotly-plot')].map("
                "plot => plot.querySelectorAll('.scatterlayer .points path').length)")
            titles = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot .gtitle, "
                                   ".js-plotly-plot .annotation-text')].map(node => node.textContent)")
            errors = page.locator(".jp-OutputArea-output:has-text('Traceback')").count()
            checkboxes = page.evaluate(CHECKBOX_LABELS_JS)
        finally:
            page.screenshot(path=str(ARTIFACTS / "jupyterlab_quickstart_last.png"))
            browser.close()
    assert max(points) >= 2, points
    assert "Loss" in titles and "Reward margin" in titles, titles
    assert errors == 0
    # Every checkbox shown reads its whole name (issue 27: "precompute_ref_log_p…"), not cut by its box.
    assert "precompute_ref_log_probs" in dict(checkboxes), checkboxes
    assert all(whole for _, whole in checkboxes), checkboxes
    # The live figure's updates all apply: none names an axis plotly.js does not hold (issue 27: eight
    # "Error setting state: Cannot read properties of undefined (reading '_inputDomain')" after a run).
    assert not [text for text in console_errors if "Error setting state" in text], console_errors
