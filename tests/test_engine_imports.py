"""The engine never imports a UI package (DESIGN rule 1)."""

import subprocess
import sys
from pathlib import Path

UI_PACKAGES = ("gradio", "ipywidgets", "plotly", "anywidget")
ROOT = Path(__file__).resolve().parent.parent / "alignlab"

HIDE_UI = """
import importlib, importlib.abc, sys
class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in {names!r}:
            raise ImportError('hidden for this test: ' + name)
sys.meta_path.insert(0, Hide())
for module in {modules!r}:
    importlib.import_module(module)
for package in {names!r}:
    try:
        importlib.import_module(package)
    except ImportError:
        continue
    sys.exit(package + ' was not hidden: this test proves nothing')
print("ok")
"""


def engine_modules() -> list[str]:
    """Every engine module: alignlab's files outside alignlab/ui/, less the ``__main__`` entry point."""
    names = []
    for path in sorted(ROOT.rglob("*.py")):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        if parts[1:2] == ("ui",) or parts[-1] == "__main__":
            continue
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_engine_imports_with_ui_packages_hidden():
    modules = engine_modules()
    assert {"alignlab", "alignlab.cli", "alignlab.runner", "alignlab.panels", "alignlab.probe"} <= set(modules)
    code = HIDE_UI.format(names=UI_PACKAGES, modules=modules)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            cwd=ROOT.parent)
    assert result.stdout.strip() == "ok", result.stderr[-2000:]


def test_no_ui_import_lines_outside_ui():
    offenders = []
    for path in ROOT.rglob("*.py"):
        if "ui" in path.relative_to(ROOT).parts[:1]:
            continue
        for line in path.read_text().splitlines():
            words = line.split()
            if len(words) > 1 and words[0] in ("import", "from") and words[1].split(".")[0] in UI_PACKAGES:
                offenders.append(f"{path}: {line.strip()}")
    assert offenders == []
