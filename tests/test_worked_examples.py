"""The Learn tab's worked examples of drift: shipped real runs, drawn with the verdict a live run gets."""

import json

import pytest

from alignlab.worked_examples import LESSONS, worked_examples


def test_each_shipped_example_is_a_real_run_with_probes_a_command_and_a_lesson():
    examples = worked_examples()
    assert [example.name for example in examples] == list(LESSONS)
    for example in examples:
        assert example.command.startswith(f"alignlab train --method {example.name.split('-')[0]}")
        steps = [row["step"] for row in example.rows]
        assert steps[0] == 0 and len(steps) >= 2 and steps == sorted(steps)
        assert all("probe/length_ratio" in row and "probe/ref_ppl_ratio" in row and "probe/follow" in row
                   for row in example.rows)  # the drift panel's curves
        assert example.verdict() is not None and example.summary().startswith("Step 0 → ")
        assert "CPUs" in example.machine


def test_the_cheap_kl_ppo_run_alarms_and_the_default_dpo_run_does_not():
    """What the lessons say is what the rows show: PPO with a cheap KL penalty drifts, DPO at its defaults keeps
    the instruction."""
    found = {example.name: example for example in worked_examples()}
    assert found["ppo-cheap-kl"].verdict().alarm
    assert not found["dpo"].verdict().alarm


def test_bench_writes_an_example_from_a_finished_run_with_the_command_that_makes_it_again(tiny, tmp_path):
    from alignlab import RunConfig, start
    from alignlab.worked_examples import worked_examples as read
    from bench.worked_examples import main

    handle = start(RunConfig(method="dpo", method_args={"beta": 0.3}, **{**tiny, "probe_every": 1}), background=False)
    assert handle.state == "finished", handle.error
    out = tmp_path / "examples.json"
    assert main([f"dpo={handle.run_dir}", "--note", "a test", "--out", str(out)]) == 0
    (example,) = read(out)
    assert "--beta 0.3" in example.command and "--max-steps 2" in example.command and "--model tiny-random" in (
        example.command)
    assert "--output-dir" not in example.command and "a test" in example.machine
    assert [row["step"] for row in example.rows] == [0, 1, 2]
    assert all(key == "step" or key.startswith("probe/") for row in example.rows for key in row)
    assert json.loads(out.read_text())["written_by"] == "python -m bench.worked_examples"
    # naming one example again replaces it and keeps the others, in the Learn tab's order
    assert main([f"simpo={handle.run_dir}", "--out", str(out)]) == 0
    assert main([f"dpo={handle.run_dir}", "--note", "again", "--out", str(out)]) == 0
    written = json.loads(out.read_text())["examples"]  # (read() keeps what it read first of a path)
    assert [(example["name"], "again" in example["machine"]) for example in written] == [("simpo", False),
                                                                                         ("dpo", True)]
    with pytest.raises(SystemExit):
        main([str(handle.run_dir), "--out", str(out)])  # NAME= missing


def test_the_learn_tab_draws_each_example_with_its_drift_panel_and_path():
    import gradio as gr

    from alignlab.ui.gradio.components.learn import create_learn_tab, example_text

    with gr.Blocks() as demo:
        create_learn_tab()
    plots = [block for block in demo.blocks.values() if isinstance(block, gr.Plot)]
    assert len(plots) == 2 * len(worked_examples())
    for example in worked_examples():
        text = example_text(example)
        assert example.command in text and example.verdict().text in text and example.lesson in text
