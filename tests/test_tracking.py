"""Experiment tracking (report_to: one tracker or several) and the metrics export, on one tiny-random run that
reports to TensorBoard: the trainer's logs and the probe's reward and KL reach it."""

import importlib.util
import json

import pandas
import pytest

from alignlab import rundir
from alignlab.cli import main
from alignlab.config import RunConfig, common_knobs
from alignlab.errors import AlignLabError
from alignlab.runner import start
from alignlab.tracking import TRACKERS, tracker_names, trackers_last


@pytest.fixture(scope="module")
def tensorboard_run(tmp_path_factory):
    """A finished 2-step DPO run with report_to=tensorboard that probed and saved a checkpoint at each step (the
    checkpoints removed when it finished)."""
    pytest.importorskip("tensorboard")
    folder = tmp_path_factory.mktemp("tracking")
    pairs = folder / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"Review {i}: the film", "chosen": " was wonderful.",
                                         "rejected": " was dull."}) + "\n" for i in range(8)))
    config = RunConfig(method="dpo", model="tiny-random", dataset=str(pairs), max_steps=2, batch_size=2, max_length=48,
                       max_completion_length=8, probe_every=1, save_every=1, report_to="tensorboard",
                       output_dir=str(folder / "runs"))
    handle = start(config, background=False)
    assert handle.state == "finished", handle.error
    return handle.run_dir


def scalars(logs_dir) -> dict[str, dict[int, float]]:
    """Every scalar in the TensorBoard event files under ``logs_dir``: tag -> {step: value}."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(logs_dir))
    events.Reload()
    return {tag: {event.step: event.value for event in events.Scalars(tag)} for tag in events.Tags()["scalars"]}


def test_tensorboard_scalars_equal_the_metrics_file(tensorboard_run):
    logged = scalars(rundir.logs_dir(tensorboard_run))
    rows, _ = rundir.read_metrics(tensorboard_run)
    assert {row["step"] for row in rows} == {0, 1, 2} and {"train/loss", "train/rewards/margins"} <= set(logged)
    probed = {row["step"] for row in rows if "probe/reward" in row}
    assert probed == {0, 1, 2}  # the probe's rows too: before the first step, at each step, the last one included
    assert set(logged["train/probe/reward"]) == set(logged["train/probe/kl"]) == probed
    compared = 0
    for row in rows:
        for key, value in row.items():
            if key in ("step", "time") or value is None:
                continue
            tag = "train/" + key  # transformers' TensorBoard callback files every log under train/, the probe's too
            assert logged[tag][row["step"]] == pytest.approx(value, rel=1e-6), (tag, row["step"])
            compared += 1
    assert compared >= 2 * len({"loss", "rewards/margins", "grad_norm"}) + 3 * len({"probe/reward", "probe/kl"})


def test_tensorboard_logs_stay_when_the_checkpoints_go(tensorboard_run):
    assert not rundir.checkpoints_dir(tensorboard_run).exists()  # saved at each step, removed at the end
    assert list(rundir.logs_dir(tensorboard_run).rglob("events.out.tfevents.*"))


def test_report_to_is_a_run_setting_of_the_cli_the_config_file_and_both_forms(tmp_path, capsys):
    knob = next(knob for knob in common_knobs() if knob.name == "report_to")
    assert tuple(knob.suggestions()) == ("none", "tensorboard", "trackio", "wandb", "mlflow") and knob.default == "none"
    config_file = tmp_path / "run.yaml"
    config_file.write_text("method: dpo\nreport_to: tensorboard\n")
    assert RunConfig.from_file(config_file).report_to == "tensorboard"
    config_file.write_text("method: dpo\nreport_to: [tensorboard, wandb]\n")  # a list, as transformers takes it
    assert RunConfig.from_file(config_file).report_to == "tensorboard,wandb"
    with pytest.raises(AlignLabError, match="report_to: got 'neptune', expected one of none, tensorboard"):
        RunConfig(report_to="neptune")
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert "--report-to" in capsys.readouterr().out


@pytest.mark.parametrize(("value", "names"), [
    ("none", []), ("", []), ("tensorboard", ["tensorboard"]), (" tensorboard , wandb ", ["tensorboard", "wandb"]),
    (["wandb", "tensorboard,wandb"], ["wandb", "tensorboard"]), (("mlflow",), ["mlflow"]),
])
def test_report_to_names_several_trackers_as_transformers_does(value, names):
    assert tracker_names(value) == names
    assert RunConfig(report_to=value).report_to == (",".join(names) or "none")


@pytest.mark.parametrize(("value", "match"), [
    ("tensorboard,neptune", "report_to: got 'neptune', expected one of none, tensorboard, trackio, wandb, mlflow"),
    ("none,wandb", "report_to: got none, wandb, expected none alone"),
    ([1], "report_to: got \\[1\\], expected tracker names"),
])
def test_a_bad_tracker_list_is_refused_in_one_line(value, match):
    with pytest.raises(AlignLabError, match=match):
        RunConfig(report_to=value)


def test_several_trackers_go_to_the_trainer_as_a_list(tmp_path):
    from alignlab.training import trl_arguments

    arguments = trl_arguments(RunConfig(model="tiny-random", report_to="tensorboard,trackio"), tmp_path / "run-1")
    assert (arguments["report_to"], arguments["run_name"], arguments["project"]) == (
        ["tensorboard", "trackio"], "run-1", "alignlab")
    assert trl_arguments(RunConfig(model="tiny-random"), tmp_path)["report_to"] == "none"


def test_trackers_run_last_so_the_final_probe_reaches_them_before_they_close(tmp_path):
    """transformers puts the tracker callbacks before the ones a trainer is given; the lab's (the probe's
    on_train_end among them) must come first, or trackio and mlflow would have ended their run."""
    pytest.importorskip("tensorboard")
    from transformers import Trainer, TrainerCallback, TrainingArguments
    from transformers.integrations import TensorBoardCallback

    from alignlab.models import load_model

    class Mine(TrainerCallback):
        pass

    mine = Mine()
    arguments = TrainingArguments(output_dir=str(tmp_path), report_to="tensorboard", use_cpu=True)
    trainer = Trainer(model=load_model("tiny-random"), args=arguments, callbacks=[mine])
    kinds = [type(callback) for callback in trainer.callback_handler.callbacks]
    assert kinds.index(TensorBoardCallback) < kinds.index(Mine)  # transformers' order
    trackers_last(trainer)
    kinds = [type(callback) for callback in trainer.callback_handler.callbacks]
    assert kinds[-1] is TensorBoardCallback and kinds.index(Mine) < kinds.index(TensorBoardCallback)


def missing_tracker() -> str:
    """A tracker whose package is not installed here (the test skips when there is none)."""
    missing = [name for name, needs in TRACKERS.items() if needs and importlib.util.find_spec(needs[0]) is None]
    if not missing:
        pytest.skip("every tracker's package is installed here")
    return missing[0]


def test_a_tracker_that_is_not_installed_is_refused_in_one_line_before_the_run(tiny, capsys):
    name = missing_tracker()
    package, install = TRACKERS[name]
    flags = ["--" + key.replace("_", "-") + "=" + str(value) for key, value in tiny.items()]
    assert main(["train", "--method", "dpo", "--report-to", name, *flags]) == 2
    error = capsys.readouterr().err.strip()
    assert error == f"error: report_to: {name} needs the {package} package, which is not installed ({install})"
    assert not rundir.list_runs(tiny["output_dir"])  # no run directory left behind


def test_each_repeated_report_to_flag_is_checked(tiny, capsys):
    name = missing_tracker()
    flags = ["--" + key.replace("_", "-") + "=" + str(value) for key, value in tiny.items()]
    assert main(["train", "--method", "dpo", "--report-to", "none", "--report-to", name, *flags]) == 2
    assert "expected none alone" in capsys.readouterr().err
    pytest.importorskip("tensorboard")
    assert main(["train", "--method", "dpo", "--report-to", "tensorboard", "--report-to", name, *flags]) == 2
    assert capsys.readouterr().err.strip().startswith(f"error: report_to: {name} needs the")
    assert not rundir.list_runs(tiny["output_dir"])


def test_the_app_refuses_a_tracker_that_is_not_installed_before_queueing(tmp_path):
    pytest.importorskip("gradio")
    from alignlab.ui.gradio.jobs import JobQueue

    name = missing_tracker()
    queue = JobQueue(tmp_path / "runs", tmp_path / "jobs")
    try:
        with pytest.raises(AlignLabError, match=f"report_to: {name} needs the {TRACKERS[name][0]} package"):
            queue.submit(RunConfig(model="tiny-random", report_to=name))
        assert queue.jobs == []
    finally:
        queue.close()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_runs_export_has_every_metrics_row_of_every_run(tensorboard_run, fmt, tmp_path, capsys):
    out = tmp_path / f"metrics.{fmt}"
    assert main(["runs", "--output-dir", str(tensorboard_run.parent), "--export", fmt, "--out", str(out)]) == 0
    rows, _ = rundir.read_metrics(tensorboard_run)
    assert capsys.readouterr().out.strip() == f"{len(rows)} metric rows of 1 runs -> {out}"
    table = pandas.read_csv(out) if fmt == "csv" else pandas.read_parquet(out)
    assert list(table.columns[:3]) == ["run_id", "method", "step"]
    assert len(table) == len(rows)
    assert set(table["run_id"]) == {tensorboard_run.name} and set(table["method"]) == {"dpo"}
    for (_, exported), row in zip(table.iterrows(), rows):
        for key, value in row.items():
            if value is None:
                assert pandas.isna(exported[key])
            else:
                assert exported[key] == pytest.approx(value, rel=1e-12), key


def test_runs_out_without_export_is_refused(tmp_path, capsys):
    assert main(["runs", "--output-dir", str(tmp_path), "--out", str(tmp_path / "x.csv")]) == 2
    assert "--export" in capsys.readouterr().err
