"""Shared fixtures: small preference data, a quick tiny-random run config and Debian's Chromium."""

import json
import os

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
