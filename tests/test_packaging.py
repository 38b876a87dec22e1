"""What ships with the package: its version, licence, type-hint marker and changelog."""

from importlib.metadata import version
from pathlib import Path

import pytest

from alignlab.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_version_flag_prints_the_installed_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"alignlab {version('alignlab')}"


def test_license_is_apache_2_with_the_projects_copyright():
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text and "END OF TERMS AND CONDITIONS" in text
    assert "Copyright 2026 alignlab developers" in text and "[name of copyright owner]" not in text


def test_py_typed_marker_is_package_data():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    assert (ROOT / "alignlab" / "py.typed").is_file()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "py.typed" in project["tool"]["setuptools"]["package-data"]["alignlab"]


def test_changelog_has_unreleased_and_the_current_version():
    headings = [line for line in (ROOT / "CHANGELOG.md").read_text().splitlines() if line.startswith("## ")]
    assert headings[:2] == ["## Unreleased", f"## {version('alignlab')}"]
