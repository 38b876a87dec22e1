"""Every tutorial notebook runs top to bottom in quick mode (through papermill, as CI and users run it), and
is saved clean (no outputs)."""

import time
from pathlib import Path

import nbformat
import papermill
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
QUICK_SECONDS = 300  # per cell, generous: the CPU is shared with the other tests


def test_the_tutorials_are_there():
    names = {path.stem for path in NOTEBOOKS}
    assert {"01_quickstart", "02_beta_and_clipping", "04_reward_free_family"} <= names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_is_saved_clean_with_a_parameters_cell(path):
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []) and code[0].source.startswith("QUICK = False")
    assert all(not cell.outputs and cell.execution_count is None for cell in code), "clear the outputs"
    assert any("$" in cell.source for cell in notebook.cells if cell.cell_type == "markdown"), "explain with a formula"
    assert all("alignlab.ui.notebook" in cell.source or "alignlab" not in cell.source for cell in code)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_in_quick_mode(path, tmp_path):
    """What ``papermill NOTEBOOK OUT -p QUICK True --cwd SCRATCH`` does (papermill's Python API, in this process
    so the test costs no extra interpreter): papermill raises, naming the cell, if one fails; QUICK = True is
    injected after the parameters cell, a widget is shown and every run the notebook started finished."""
    started = time.time()
    notebook = papermill.execute_notebook(str(path), str(tmp_path / path.name), parameters={"QUICK": True},
                                          cwd=str(tmp_path), kernel_name="python3", progress_bar=False,
                                          execution_timeout=QUICK_SECONDS)
    print(f"{path.stem}: {time.time() - started:.1f} s in quick mode")
    injected = [cell for cell in notebook.cells if "injected-parameters" in cell.metadata.get("tags", [])]
    assert len(injected) == 1 and "QUICK = True" in injected[0].source
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    assert any("application/vnd.jupyter.widget-view+json" in output.get("data", {}) for output in outputs)
    runs = list((tmp_path / "runs").iterdir())
    assert runs and all('"state": "finished"' in (run / "status.json").read_text() for run in runs)
