"""The examples in alignlab's docstrings run and hold: every module with a ``>>>`` line is checked with doctest, so an
example that drifts from the code fails here (the suite's ``--doctest-modules alignlab``, module by module)."""

import doctest
import importlib
from pathlib import Path

import pytest

import alignlab

PACKAGE = Path(alignlab.__file__).parent


def modules_with_examples() -> list[str]:
    """Dotted names of alignlab's modules whose source holds a ``>>>`` example."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if ">>> " in path.read_text(encoding="utf-8"):
            parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_the_modules_with_examples_are_found():
    found = modules_with_examples()
    assert {"alignlab.eta", "alignlab.votes", "alignlab.measured", "alignlab.rundir"} <= set(found)


@pytest.mark.parametrize("name", modules_with_examples())
def test_the_examples_in_a_modules_docstrings_hold(name, capsys):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    report = capsys.readouterr().out
    assert result.failed == 0, report
    assert result.attempted > 0 or "doctest: +SKIP" in Path(importlib.import_module(name).__file__).read_text()
