"""Instruction-following is recorded wherever the reward is, in real tiny-random runs: the probe, the end-of-run
samples and ``alignlab eval``; then shown beside the reward and the KL by the model card, the report, the CLI's runs
list and both UIs' runs and samples tables."""

from __future__ import annotations

import pytest

from alignlab import rundir
from alignlab.cli import main
from alignlab.config import RunConfig
from alignlab.evaluate import compare_run
from alignlab.follow import _CHECKS as CHECKS
from alignlab.follow import register_check, requested_opening
from alignlab.metrics import PROBE_FOLLOW, PROBE_KL, se_key
from alignlab.model_card import card_text
from alignlab.runner import start
from alignlab.task import BUILTIN_TASK

pytestmark = pytest.mark.timeout(300)


def odd_openings(prompts, completions):
    """A declared check that answers by the prompt alone: followed when the prompt's review number is odd."""
    return [int(prompt.rsplit(" ", 1)[-1]) % 2 == 1 for prompt in prompts]


@pytest.fixture(scope="module")
def builtin_run(tmp_path_factory):
    """A 2-step tiny-random DPO run on the built-in task (its check: the review begins with the opening), evaluated."""
    runs = tmp_path_factory.mktemp("follow") / "runs"
    config = RunConfig.from_dict({"method": "dpo", "model": "tiny-random", "dataset": BUILTIN_TASK, "max_steps": 2,
                                  "batch_size": 2, "max_length": 96, "max_completion_length": 6, "probe_every": 10,
                                  "output_dir": str(runs)})
    handle = start(config, background=False)
    assert handle.state == "finished", handle.error
    compare_run(handle.run_dir, samples_per_prompt=1, with_fluency=False)
    return handle.run_dir


def test_the_probe_records_the_share_that_followed_with_each_sample(builtin_run):
    rows, _ = rundir.read_metrics(builtin_run)
    probed = [row for row in rows if PROBE_KL in row]
    assert [row["step"] for row in probed] == [0, 2]
    samples = rundir.read_probe_samples(builtin_run)
    for row in probed:
        answers = [sample["followed"] for sample in samples if sample["step"] == row["step"]]
        assert answers and all(isinstance(answer, bool) for answer in answers)  # every prompt asks for an opening
        assert row[PROBE_FOLLOW] == pytest.approx(sum(answers) / len(answers)) and row[se_key(PROBE_FOLLOW)] >= 0
    assert all(requested_opening(sample["prompt"]) for sample in samples)


def test_the_samples_and_the_evaluation_record_reference_and_aligned(builtin_run):
    samples = rundir.read_samples(builtin_run)
    assert samples and all(isinstance(row["reference_followed"], bool) and isinstance(row["aligned_followed"], bool)
                           for row in samples)
    summary = rundir.samples_summary(builtin_run)
    assert summary["checked"] == len(samples)
    assert summary["aligned_follow"] == sum(row["aligned_followed"] for row in samples) / len(samples)
    evaluation = rundir.read_eval(builtin_run)
    assert evaluation["follow_checked"] == evaluation["prompts"] > 0
    assert 0 <= evaluation["aligned_follow"] <= 1 and 0 <= evaluation["reference_follow"] <= 1
    assert evaluation["follow_change"] == pytest.approx(evaluation["aligned_follow"] - evaluation["reference_follow"],
                                                       abs=1e-3)


def test_a_declared_check_reaches_the_probe_the_samples_and_the_evaluation(tiny, pairs_file):
    register_check(str(pairs_file), odd_openings)  # the prompts of the fixture's file: "Review <i>: the film"
    try:
        pairs_file.write_text(pairs_file.read_text().replace(": the film", ""))  # "Review <i>"
        handle = start(RunConfig.from_dict({**tiny, "method": "dpo", "max_completion_length": 6, "probe_every": 10}),
                       background=False)
        assert handle.state == "finished", handle.error
        result = compare_run(handle.run_dir, samples_per_prompt=1, with_fluency=False)
    finally:
        CHECKS.pop(str(pairs_file), None)
    prompts = [sample["prompt"] for sample in rundir.read_probe_samples(handle.run_dir) if sample["step"] == 2]
    odd = sum(int(prompt.rsplit(" ", 1)[-1]) % 2 for prompt in prompts) / len(prompts)
    assert rundir.read_run(handle.run_dir)["follow"] == pytest.approx(odd)
    summary = rundir.samples_summary(handle.run_dir)
    assert summary["aligned_follow"] == summary["reference_follow"] and result.follow_change == 0
    assert result.aligned_follow == result.reference_follow and "instruction followed" in result.report()


def test_the_card_the_report_and_the_runs_tables_show_it(builtin_run, capsys):
    from alignlab.ui.gradio.components.runs import RUN_COLUMNS, samples_table
    from alignlab.ui.gradio.components.runs import runs_table as app_table
    from alignlab.ui.notebook.runs import runs_table as notebook_table
    from alignlab.ui.report import eval_table, runs_table, samples_html

    run = rundir.read_run(builtin_run)
    follow, summary, evaluation = run["follow"], rundir.samples_summary(builtin_run), rundir.read_eval(builtin_run)
    shown = f"{follow:.0%}"
    samples_shown = f"{summary['reference_follow']:.0%} → {summary['aligned_follow']:.0%}"
    card = card_text(builtin_run)
    assert "**Instruction followed** (the probe's completions" in card and f"{shown}" in card
    assert (f"Instruction followed: {summary['reference_follow']:.0%} for the reference, "
            f"{summary['aligned_follow']:.0%} aligned (of {summary['checked']} checked)") in card
    assert f"Instruction followed: {evaluation['aligned_follow']:.0%} aligned vs" in card
    assert main(["runs", "--output-dir", str(builtin_run.parent)]) == 0
    header, line = capsys.readouterr().out.strip().splitlines()
    assert header.split()[-3:] == ["reward", "KL", "followed"] and line.split()[-1] == shown
    table = app_table([run])
    assert table["data"][0][RUN_COLUMNS.index("instruction followed")] == shown
    assert samples_table(builtin_run)["data"][0][-1] in ("yes → yes", "yes → no", "no → yes", "no → no")
    assert "<th>instruction followed</th>" in notebook_table([run]).replace(
        " style='text-align:left;padding-right:12px'", "") and samples_shown in notebook_table([run])
    report = runs_table([run])
    assert f"<td class=num>{shown}</td><td>{samples_shown}</td>" in report
    assert "instruction followed (aligned vs reference)" in eval_table([run])
    assert "instruction followed: reference → aligned" in samples_html([run])
