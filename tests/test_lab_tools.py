"""`make lab`'s JupyterLab settings (no news pop-up) and the notebook strip filter (no output noise in git)."""

import json
import os
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from conftest import wait_for

ROOT = Path(__file__).resolve().parent.parent
OVERRIDES = ROOT / "tools" / "jupyterlab-overrides.json"
STRIP = ROOT / "tools" / "strip_notebook.py"
NOTIFICATION = "@jupyterlab/apputils-extension:notification"


def test_the_overrides_file_is_json_that_turns_the_news_off_as_the_installed_schema_allows():
    settings = json.loads(OVERRIDES.read_text())
    assert settings == {NOTIFICATION: {"fetchNews": "false", "checkForUpdates": False}}
    plugin, name = NOTIFICATION.split(":")
    schema = json.loads((Path(sys.prefix) / "share/jupyter/lab/schemas" / plugin / f"{name}.json").read_text())
    assert "false" in [choice["const"] for choice in schema["properties"]["fetchNews"]["oneOf"]]
    assert schema["properties"]["checkForUpdates"]["type"] == "boolean"
    assert schema["properties"]["fetchNews"]["default"] == "none"  # JupyterLab's own default asks: the pop-up


def test_make_lab_installs_the_overrides_where_jupyterlab_reads_them_and_serves_on_localhost():
    from jupyterlab.commands import get_app_dir

    # -W: as if the overrides file were new, so the copy shows whether or not `make lab` ran in this clone before
    commands = subprocess.run(["make", "-n", "-W", "tools/jupyterlab-overrides.json", "lab", f"VENV={sys.prefix}"],
                              cwd=ROOT, capture_output=True, text=True, check=True).stdout
    installed = Path(get_app_dir()) / "settings" / "overrides.d" / "alignlab.json"
    assert f"cp tools/jupyterlab-overrides.json {installed}" in commands
    assert "jupyter lab --ip=127.0.0.1 --ServerApp.root_dir=notebooks" in commands
    assert ("--allow-root" in commands) == (os.geteuid() == 0)  # Jupyter refuses root without it


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_jupyterlab_serves_the_news_setting_off_from_the_installed_overrides(tmp_path):
    settings = tmp_path / "settings"  # stands in for <venv>/share/jupyter/lab/settings
    (settings / "overrides.d").mkdir(parents=True)
    (settings / "overrides.d" / "alignlab.json").write_bytes(OVERRIDES.read_bytes())
    port = free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / ".jupyter"), "JUPYTER_RUNTIME_DIR": str(tmp_path / "rt"),
           "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "user-settings")}
    with open(tmp_path / "jupyterlab.log", "w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
             "--IdentityProvider.token=", "--ServerApp.password=", "--allow-root", f"--ServerApp.root_dir={tmp_path}",
             f"--LabApp.app_settings_dir={settings}"], env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        url = f"http://127.0.0.1:{port}/lab/api/settings/{NOTIFICATION}"

        def settings() -> dict | None:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    return json.load(response)
            except OSError:
                if server.poll() is not None:
                    pytest.fail("JupyterLab did not start:\n" + (tmp_path / "jupyterlab.log").read_text()[-2000:])
                return None

        served = wait_for(settings, 90, every=0.2, what="JupyterLab serving its settings")
    finally:
        server.terminate()
        server.wait(20)
    properties = served["schema"]["properties"]
    assert (properties["fetchNews"]["default"], properties["checkForUpdates"]["default"]) == ("false", False)


def small_notebook() -> dict:
    code = {"cell_type": "code", "execution_count": 7, "id": "a1", "source": ["x = 1\n", "x"],
            "metadata": {"tags": ["parameters"], "execution": {"iopub.status.idle": "2026-01-01T00:00:00Z"}},
            "outputs": [{"output_type": "execute_result", "execution_count": 7, "data": {"text/plain": ["1"]},
                         "metadata": {}}]}
    text = {"cell_type": "markdown", "id": "a2", "metadata": {}, "source": ["# β ■"]}
    return {"cells": [text, code], "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3"}, "widgets": {"application/vnd.jupyter.widget-state+json":
                                                                         {"state": {}}}}}


def run_strip(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(STRIP), *args], input=stdin, capture_output=True, text=True,
                          check=True)


def test_strip_removes_outputs_execution_counts_and_widget_state_and_keeps_the_rest(tmp_path):
    stripped = json.loads(run_strip(stdin=json.dumps(small_notebook())).stdout)  # the git filter: stdin -> stdout
    text, code = stripped["cells"]
    assert code["outputs"] == [] and code["execution_count"] is None
    assert code["metadata"] == {"tags": ["parameters"]} and code["source"] == ["x = 1\n", "x"]
    assert text == small_notebook()["cells"][0] and stripped["metadata"] == {"kernelspec": {"name": "python3"}}
    path = tmp_path / "n.ipynb"
    path.write_text(json.dumps(small_notebook()))
    assert run_strip(str(path)).stdout == f"stripped {path}\n"  # in place (make strip)
    once = path.read_text(encoding="utf-8")
    assert "■" in once and once.endswith("}\n") and json.loads(once) == stripped
    assert run_strip(str(path)).stdout == "" and path.read_text(encoding="utf-8") == once  # a clean file stays as is


def test_strip_leaves_the_clean_tutorial_notebooks_byte_for_byte_the_same():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        assert run_strip(stdin=path.read_text(encoding="utf-8")).stdout == path.read_text(encoding="utf-8"), path
