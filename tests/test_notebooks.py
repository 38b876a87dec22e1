"""Every tutorial notebook runs top to bottom in quick mode, and is saved clean (no outputs)."""

import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
QUICK_SECONDS = 300  # per notebook, generous: the CPU is shared with the other tests


def quick_copy(path: Path) -> nbformat.NotebookNode:
    """The notebook with ``QUICK = True`` injected after its ``parameters`` cell (papermill's way)."""
    notebook = nbformat.read(path, as_version=4)
    index = next(i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", []))
    notebook.cells.insert(index + 1, nbformat.v4.new_code_cell("QUICK = True", metadata={"tags": ["injected"]}))
    return notebook


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
    notebook = quick_copy(path)
    started = time.time()
    # allow_errors: every cell runs and the assert below lists every error (the client would stop at the first)
    NotebookClient(notebook, timeout=QUICK_SECONDS, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    print(f"{path.stem}: {time.time() - started:.1f} s in quick mode")
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    errors = [f"{output.ename}: {output.evalue}" for output in outputs if output.output_type == "error"]
    assert not errors, errors
    assert any("application/vnd.jupyter.widget-view+json" in output.get("data", {}) for output in outputs)
    runs = list((tmp_path / "runs").iterdir())
    assert runs and all('"state": "finished"' in (run / "status.json").read_text() for run in runs)
