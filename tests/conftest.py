"""Shared fixtures and helpers: small preference data, a quick tiny-random run config, Debian's Chromium, the Gradio
app served on a free port (:func:`served_app`), a wait on a condition instead of a fixed sleep (:func:`wait_for`),
and the CLI's one-line errors (:func:`one_error_line`). Test modules import the plain helpers with
``from conftest import wait_for``."""

import json
import os
import time
from collections.abc import Callable
from typing import Any

import pytest

# Tests pick the tiny random model in the app's and the notebook's pickers, which offer it only in development.
os.environ.setdefault("ALIGNLAB_DEV", "1")
CHROMIUM = "/usr/bin/chromium"  # Debian's package (make browser); Playwright drives it, no browser download
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def pytest_collection_modifyitems(config, items):
    """Slow real-model tests run only with ALIGNLAB_SLOW=1, except those marked ``ci`` too."""
    if os.environ.get("ALIGNLAB_SLOW"):
        return
    skip = pytest.mark.skip(reason="real default model; set ALIGNLAB_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords and "ci" not in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def pairs_file(tmp_path):
    """Twelve small preference pairs in the built-in task's shape."""
    rows = [
        {"prompt": f"Review {i}: the film", "chosen": " was wonderful and moving.", "rejected": " was dull and awful."}
        for i in range(12)
    ]
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def tiny(tmp_path, pairs_file):
    """Keyword arguments for a 2-step tiny-random run on the small pair file."""
    return dict(model="tiny-random", dataset=str(pairs_file), max_steps=2, batch_size=2,
                max_length=48, max_completion_length=8, output_dir=str(tmp_path / "runs"))


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, through Playwright; the test is skipped where either is missing."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (make browser)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def wait_for(condition: Callable[[], Any], timeout: float, every: float = 0.1, what: str = "condition") -> Any:
    """Poll ``condition()`` every ``every`` seconds until it returns something truthy, and return that; an
    AssertionError naming ``what`` after ``timeout`` seconds. What a test waits on instead of a fixed sleep."""
    end = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= end:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(every)


@pytest.fixture(scope="module")
def served_app():
    """``serve_app(runs_dir, serve_options=None, **create_options) -> (demo, url)``: the Gradio app over
    ``runs_dir`` (``create_app``'s options), served on a free port (``serve``'s options, e.g. ``auth``); every app
    served so is closed, with its job queue, at the end of the test module."""
    apps = []

    def serve_app(runs_dir, serve_options: dict | None = None, **create_options):
        from alignlab.ui.gradio.app import create_app
        from alignlab.ui.gradio.server import serve

        demo = create_app(runs_dir, **create_options)
        apps.append(demo)
        _, url, _ = serve(demo, port=None, block=False, **(serve_options or {}))
        return demo, url

    yield serve_app
    for demo in apps:
        demo.services.jobs.close()
        demo.close()


def threads_ended(*names: str) -> bool:
    """True when no thread of these names is alive (a UI's follower of a run, ``progress-<run id>``)."""
    import threading

    return not any(thread.name in names for thread in threading.enumerate())


def flags_of(values: dict) -> list[str]:
    """CLI flags for ``values``: ``{"max_steps": 2}`` -> ``["--max-steps", "2"]``."""
    flags = []
    for key, value in values.items():
        flags += ["--" + key.replace("_", "-"), str(value)]
    return flags


def one_error_line(capsys) -> str:
    """The command's stderr, which must be exactly one ``error: ...`` line; returns it."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]
