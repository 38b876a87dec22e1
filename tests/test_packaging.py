"""What ships with the package: its version, licence, type-hint marker and changelog."""

import subprocess
import sys
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


@pytest.mark.timeout(300)
def test_a_wheel_install_finds_the_built_in_task_outside_the_checkout(tmp_path):
    """``pip install .`` (not editable) must carry the built-in task; it lands under ``<prefix>/share``."""
    import shutil
    import subprocess
    import sys
    import zipfile

    source, wheels = tmp_path / "source", tmp_path / "wheels"  # a copy: the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("alignlab", "assets"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels)], check=True, cwd=tmp_path)
    wheel = next(wheels.glob("alignlab-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    shipped = {Path(name).name for name in names if "/data/share/alignlab/assets/positive-reviews/" in name}
    assert shipped == {path.name for path in (ROOT / "assets" / "positive-reviews").iterdir()
                       if path.suffix in (".jsonl", ".md")}
    # A bare prefix with the wheel installed: alignlab from there, its dependencies from this environment.
    prefix = tmp_path / "prefix"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
    # --ignore-installed: without it pip would first uninstall this environment's own (editable) alignlab
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-compile", "--ignore-installed",
                    "--prefix", str(prefix), str(wheel)], check=True)
    site = next(prefix.glob("lib/python*/site-packages"))
    deps = next(Path(p) for p in sys.path if p.endswith("site-packages") and Path(p).is_dir())
    (site / "zz_deps.pth").write_text(f"{deps}\n")  # after alignlab's own folder, so the wheel's copy wins
    code = ("import alignlab, alignlab.task as t; print(alignlab.__file__); print(t.task_dir()); "
            "print(len(t.task_openings('train')))")
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("PYTHONPATH", "ALIGNLAB_ASSETS")}
    out = subprocess.run([str(prefix / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path, env=env).stdout.split("\n")
    assert out[0].startswith(str(site)), out
    assert out[1] == str(prefix / "share" / "alignlab" / "assets" / "positive-reviews")
    assert int(out[2]) > 0


def test_trl_is_pinned_to_the_installed_minor_and_its_experimental_trainers_load():
    """ORPO, CPO/SimPO and online DPO come from trl.experimental (docs/versions.md): pyproject asks for the TRL minor
    the suite runs on, and each experimental class the methods name imports from it."""
    tomllib = pytest.importorskip("tomllib")
    from packaging.requirements import Requirement
    from packaging.version import Version

    from alignlab.methods import registry

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    trl = next(Requirement(line) for line in project["project"]["dependencies"] if line.startswith("trl"))
    installed = Version(version("trl"))
    major, minor = installed.release[:2]
    assert installed in trl.specifier
    assert not trl.specifier.contains(f"{major}.{minor + 1}.0") and trl.specifier.contains(f"{major}.{minor}.99")
    experimental = [(spec.name, loader) for spec in registry().values()
                    for loader in (spec.config_class, spec.trainer_class) if ".experimental." in (loader.__doc__ or "")]
    assert {name for name, _ in experimental} == {"orpo", "simpo", "online-dpo"}
    for _, loader in experimental:
        assert any(cls.__module__.startswith("trl.experimental.") for cls in loader().__mro__)
    assert "docs/versions.md" in (ROOT / "README.md").read_text()


def test_loading_an_experimental_trainer_warns_nothing_and_leaves_the_environment_as_it_was():
    """TRL's notice is silenced for the import only: the process's environment is the user's after it."""
    code = ("import os, warnings; warnings.simplefilter('error')\n"
            "from alignlab.methods import registry\n"
            "registry()['orpo'].trainer_class(); registry()['online-dpo'].config_class()\n"
            "assert 'TRL_EXPERIMENTAL_SILENCE' not in os.environ, os.environ['TRL_EXPERIMENTAL_SILENCE']\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
