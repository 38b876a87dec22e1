"""The engine never imports a UI package (DESIGN rule 1)."""

import subprocess
import sys
from pathlib import Path

UI_PACKAGES = ("gradio", "ipywidgets", "plotly", "anywidget")

HIDE_UI = """
import sys, importlib.abc
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in {names!r}:
            raise ImportError('hidden for this test: ' + name)
sys.meta_path.insert(0, Hide())
import alignlab, alignlab.runner, alignlab.training, alignlab.data, alignlab.models, alignlab.rewards
import alignlab.cli, alignlab.evaluate, alignlab.make_prefs, alignlab.generation, alignlab.chat
for optional in ("alignlab.plots", "alignlab.probe"):
    try:
        __import__(optional)
    except ModuleNotFoundError as error:
        if error.name != optional:
            raise
print("ok")
"""


def test_engine_imports_with_ui_packages_hidden():
    code = HIDE_UI.format(names=UI_PACKAGES)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.stdout.strip() == "ok", result.stderr[-2000:]


def test_no_ui_import_lines_outside_ui():
    root = Path(__file__).resolve().parent.parent / "alignlab"
    offenders = []
    for path in root.rglob("*.py"):
        if "ui" in path.relative_to(root).parts[:1]:
            continue
        for line in path.read_text().splitlines():
            words = line.split()
            if len(words) > 1 and words[0] in ("import", "from") and words[1].split(".")[0] in UI_PACKAGES:
                offenders.append(f"{path}: {line.strip()}")
    assert offenders == []
