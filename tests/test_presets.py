"""The classroom preset: declared once, the same run from the CLI, the notebook form and the Gradio form."""

import json
from pathlib import Path

import pytest

from alignlab import cli
from alignlab.config import RunConfig
from alignlab.errors import AlignLabError
from alignlab.models import DEFAULT_MODEL
from alignlab.presets import NOT_SET_BY_PRESETS, PRESETS, get_preset

DOCS = Path(__file__).resolve().parent.parent / "docs" / "alignment.md"
CLASSROOM = {"method": "dpo", "model": DEFAULT_MODEL, "max_steps": 6, "probe_every": 3}


def test_classroom_is_dpo_on_the_default_model_for_six_steps_and_defaults_for_the_rest():
    preset = get_preset("classroom")
    config = preset.config()
    defaults = RunConfig(method="dpo").flat()
    assert {key: config.flat()[key] for key in CLASSROOM} == CLASSROOM
    assert {k: v for k, v in config.flat().items() if k not in CLASSROOM} == \
        {k: v for k, v in defaults.items() if k not in CLASSROOM}
    assert preset.values() == {k: v for k, v in config.flat().items() if k not in NOT_SET_BY_PRESETS}
    assert preset.config(max_steps=2, model="tiny-random").max_steps == 2  # overrides win
    with pytest.raises(AlignLabError, match="preset: got 'lecture', expected one of classroom"):
        get_preset("lecture")


def test_the_classroom_description_cites_what_docs_alignment_measured():
    description = PRESETS["classroom"].description
    assert "(docs/alignment.md)" in description and "minutes" not in PRESETS["classroom"].title  # no promise
    measured = DOCS.read_text()
    # The rows the description quotes: the times at the previous defaults (2 threads, cold 177.7 s / warm 110.4 s,
    # 1 thread 293.6 s), and the gains at today's (seed 42 +0.397 ± 0.042, seed 7 +0.307 ± 0.045).
    assert "| 2 | cold | 177.7 s | 6 | +0.384 ± 0.041 |" in measured and "| 2 | warm | 110.4 s | 6 |" in measured
    assert "| 1 | cold | 293.6 s | 6 |" in measured
    assert "**+0.397 ± 0.042**" in measured and "**+0.307 ± 0.045**" in measured
    for figure in ("178 s", "110 s", "+0.40 ± 0.04", "+0.31 ± 0.05", "294 s"):
        assert figure in description


def test_cli_trains_from_the_preset_with_flags_overriding_it(tmp_path, pairs_file, capsys):
    runs = tmp_path / "runs"
    code = cli.main(["train", "--preset", "classroom", "--model", "tiny-random", "--dataset", str(pairs_file),
                     "--max-steps", "2", "--batch-size", "2", "--max-length", "48", "--max-completion-length", "8",
                     "--output-dir", str(runs), "--quiet"])
    assert code == 0, capsys.readouterr().err
    (run_dir,) = runs.iterdir()
    saved = json.loads((run_dir / "config.json").read_text())
    assert (saved["method"], saved["model"], saved["max_steps"], saved["probe_every"]) == ("dpo", "tiny-random", 2, 3)
    assert saved["learning_rate"] == 1e-3 and saved["method_args"]["beta"] == 0.5


def test_cli_refuses_a_preset_with_a_config_file_or_an_unknown_preset(tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text("max_steps: 3\n")
    assert cli.main(["train", "--preset", "classroom", "--config", str(config)]) == 2
    assert "preset: --preset and --config both give" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "--preset", "lecture"])
    assert "invalid choice: 'lecture'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_the_notebook_form_starts_from_or_switches_to_the_preset(tmp_path):
    from alignlab.ui.notebook import Lab, RunForm

    form = RunForm(preset="classroom")
    assert form.config().flat() == get_preset("classroom").config().flat()
    assert "no estimate of its time here" in form.preset_note.value  # no finished run in this folder yet
    lab = Lab(preset="classroom", model="tiny-random")  # a knob value given wins over the preset's
    assert (lab.form.method.value, lab.form.inputs["model"].value, lab.form.inputs["max_steps"].value) == \
        ("dpo", "tiny-random", 6)
    form = RunForm("kto", max_steps=50, output_dir=str(tmp_path / "mine"))
    form.preset.value = "classroom"  # picked in the form: its values, the runs folder kept
    config = form.config()
    assert (config.method, config.model, config.max_steps, config.probe_every) == ("dpo", DEFAULT_MODEL, 6, 3)
    assert config.output_dir == str(tmp_path / "mine")
    form.preset.value = ""  # back to "your own settings": the values stay, the note goes
    assert form.config().max_steps == 6 and form.preset_note.value == ""


def test_the_gradio_form_values_of_the_preset_start_the_preset_run(tmp_path):
    from alignlab.ui.gradio.forms import config_from_form, preset_form_values

    values = preset_form_values("classroom")
    assert (values["method"], values["model"], values["max_steps"], values["probe_every"], values["dpo__beta"]) == \
        ("dpo", DEFAULT_MODEL, 6, 3, 0.5)
    method, model, dataset = values.pop("method"), values.pop("model"), values.pop("dataset")
    config = config_from_form(method, model, dataset, values, str(tmp_path), False)
    assert config.flat() == get_preset("classroom").config(output_dir=str(tmp_path)).flat()


def test_a_preset_estimates_its_time_from_the_finished_runs_of_its_model_here(tmp_path):
    from alignlab import rundir

    def ended(run_id: str, model: str, elapsed_s: float, step_s: float, state: str = "finished") -> None:
        run_dir = rundir.create(tmp_path / run_id, {"run_id": run_id, "method": "dpo", "model": model})
        rundir.write_status(run_dir, {"run_id": run_id, "state": state, "step": 10, "elapsed_s": elapsed_s})
        rows = [{"step": step, "time": 1000.0 + step * step_s} for step in range(1, 11)]
        (run_dir / rundir.METRICS).write_text("".join(json.dumps(row) + "\n" for row in rows))

    classroom = PRESETS["classroom"]  # 6 steps of the default model
    ended("20250101-100000-dpo-a", "smollm2-135m-instruct", elapsed_s=260.0, step_s=20.0)  # 60 s start-up
    ended("20250101-110000-dpo-b", "smollm2-135m-instruct", elapsed_s=340.0, step_s=30.0)  # 40 s start-up
    ended("20250101-120000-dpo-c", "tiny-random", elapsed_s=5.0, step_s=0.1)  # another model: not counted
    ended("20250101-130000-dpo-d", "smollm2-135m-instruct", elapsed_s=9.0, step_s=0.5, state="stopped")
    line = classroom.time_estimate(rundir.list_runs(tmp_path))
    # median start-up 50 s, median 25 s a step: 50 + 6 × 25 = 200 s
    assert line.startswith("Estimate for this machine: about 3 min (50 s to start, then 25.0 s a step")
    assert "last 2 finished smollm2-135m-instruct runs here" in line
