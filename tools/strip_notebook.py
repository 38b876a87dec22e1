#!/usr/bin/env python3
"""Strip a notebook's outputs, execution counts and saved widget state, so running it leaves no git noise.

As a git clean filter it reads a notebook on stdin and writes the stripped one to stdout (see README,
Contributing: ``git config filter.strip-notebook.clean "python3 tools/strip_notebook.py"``); given paths
(``make strip``) it rewrites those files in place, and only those that change. Standard library only, so
any ``python3`` runs it. The notebook is written as nbformat writes it (one-space indent, sorted keys,
UTF-8 kept, a final newline), so a clean notebook comes out byte for byte the same.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

# Per-run metadata that JupyterLab and ipywidgets save: cell timings and every widget's state.
CELL_METADATA = ("execution", "collapsed", "scrolled")
NOTEBOOK_METADATA = ("widgets",)


def strip(notebook: dict) -> dict:
    """``notebook`` (parsed JSON) without outputs, execution counts and per-run metadata; changed in place.

    >>> strip({"cells": [{"cell_type": "code", "execution_count": 3, "metadata": {}, "outputs": [1], "source": ""}],
    ...        "metadata": {"widgets": {}}})["cells"][0]
    {'cell_type': 'code', 'execution_count': None, 'metadata': {}, 'outputs': [], 'source': ''}
    """
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
        for key in CELL_METADATA:
            cell.get("metadata", {}).pop(key, None)
    for key in NOTEBOOK_METADATA:
        notebook.get("metadata", {}).pop(key, None)
    return notebook


def dumps(notebook: dict) -> str:
    """JSON text as nbformat (and so JupyterLab) saves a notebook."""
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def strip_text(text: str) -> str:
    """A notebook's JSON text, stripped."""
    return dumps(strip(json.loads(text)))


def main(paths: list[str]) -> int:
    """Strip stdin to stdout (no paths: the git filter), else each path in place; prints the files it changed."""
    if not paths:
        sys.stdout.write(strip_text(sys.stdin.read()))
        return 0
    for path in map(Path, paths):
        text = path.read_text(encoding="utf-8")
        stripped = strip_text(text)
        if stripped != text:
            path.write_text(stripped, encoding="utf-8")
            print(f"stripped {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
