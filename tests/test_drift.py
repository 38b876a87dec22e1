"""Drift from the reference: the probe's drift metrics, the one-line verdict, and the drift panel both UIs draw."""

from __future__ import annotations

import pytest

from alignlab.drift import drift_metrics, verdict
from alignlab.metrics import PROBE_KL_RATE, PROBE_LENGTH_RATIO, PROBE_REF_PPL_RATIO
from alignlab.panels import DRIFT, DRIFT_PANEL, visible_panels


def probe(step, reward, kl, follow=None, follow_se=0.0, length=40.0, ref_ppl=20.0, **more):
    """One probe row as the probe logs it, its drift metrics against step 0 (length 40 tokens, as the built-in
    task's reviews, and perplexity 20) included."""
    row = {"step": step, "probe/reward": reward, "probe/kl": kl, "probe/length": length, "probe/ref_ppl": ref_ppl,
           "probe/length_ratio": length / 40.0, "probe/ref_ppl_ratio": ref_ppl / 20.0, **more}
    if follow is not None:
        row.update({"probe/follow": follow, "probe/follow_se": follow_se})
    return row


# The default DPO run of issue 23: reward bought with drift, the opening dropped.
HACKING = [probe(0, 0.05, 0.0, follow=0.31, follow_se=0.08), {"step": 3, "loss": 0.6},
           probe(6, 0.64, 6.4, follow=0.12, follow_se=0.06), probe(12, 0.92, 27.1, follow=0.0)]
FAITHFUL = [probe(0, 0.05, 0.0, follow=0.31, follow_se=0.08), probe(6, 0.30, 2.0, follow=0.30, follow_se=0.08),
            probe(12, 0.45, 4.1, follow=0.33, follow_se=0.08, **{PROBE_KL_RATE: 0.35})]


def test_drift_metrics_read_each_probe_against_the_step_0_probe_and_the_one_before():
    earlier = [{"step": 0, "loss": 0.69}, probe(0, 0.0, 0.0), probe(5, 0.2, 2.0)]
    found = drift_metrics(earlier, {"probe/length": 20.0, "probe/ref_ppl": 60.0, "probe/kl": 5.0}, 8)
    assert found == {PROBE_LENGTH_RATIO: 0.5, PROBE_REF_PPL_RATIO: 3.0, PROBE_KL_RATE: 1.0}
    resumed = [probe(5, 0.2, 2.0)]  # no step-0 probe to read against: no ratio, but a rate
    assert drift_metrics(resumed, {"probe/length": 4.0, "probe/kl": 5.0}, 8) == {PROBE_KL_RATE: 1.0}
    assert drift_metrics([], {"probe/length": 4.0, "probe/kl": 0.0}, 0) == {PROBE_LENGTH_RATIO: 1.0}


def test_a_run_trading_the_instruction_for_reward_is_called_so_in_its_own_numbers():
    said = verdict(HACKING)
    assert said.alarm
    assert said.text.startswith("Trading the instruction for reward: instruction followed fell from 31% to 0% "
                                "(step 0 → 12) while reward rose by +0.87")
    assert "diminishing returns: the last +0.28 reward cost 20.7 nats" in said.text  # 6.4 → 27.1 for 0.64 → 0.92


def test_a_faithful_run_says_where_each_measure_stands():
    said = verdict(FAITHFUL)
    assert not said.alarm
    assert said.text == ("No sign of drift yet (step 0 → 12): reward +0.40 for 4.1 nats of KL (+0.35/step lately), "
                         "instruction followed 33% (31% at step 0), reference perplexity 1.00× its own, length 1.00× "
                         "the reference's.")


def test_a_fall_within_the_noise_or_small_is_no_alarm():
    noisy = [probe(0, 0.0, 0.0, follow=0.4, follow_se=0.12), probe(10, 0.5, 3.0, follow=0.2, follow_se=0.1)]
    assert not verdict(noisy).alarm  # 0.2 down, but 1.96·√(0.12² + 0.1²) = 0.31
    small = [probe(0, 0.0, 0.0, follow=0.9), probe(10, 0.5, 3.0, follow=0.82)]
    assert not verdict(small).alarm  # 8 points is under the 10-point floor


@pytest.mark.parametrize(("last", "words"), [
    (probe(10, 0.5, 3.0, ref_ppl=70.0), "the reference finds the samples 3.5× as surprising per token as its own"),
    (probe(10, 0.5, 3.0, length=80.0), "completions are 2.00× the reference's length"),
    (probe(10, -0.1, 3.0, follow=0.0), "The instruction is being dropped: instruction followed fell from 50% to 0% "
                                       "(step 0 → 10), and reward did not rise (-0.10)"),
])
def test_the_reference_losing_its_language_and_length_running_off_are_alarms(last, words):
    said = verdict([probe(0, 0.0, 0.0, follow=0.5), last])
    assert said.alarm and words.lower() in said.text.lower()


def test_samples_far_from_the_reference_per_token_are_an_alarm_whatever_the_reward():
    """PPO at kl_coef 0.01 on the built-in task: +0.46 for 31 nats over 48-token completions, no other sign."""
    far = [probe(0, 0.16, 0.0, follow=0.09, follow_se=0.05, length=44.0), probe(12, 0.62, 31.0, length=48.0)]
    # (lengths 44 → 48: 1.1× the reference's, no length alarm)
    said = verdict(far)
    assert said.alarm and "The samples are 0.65 nats per token from the reference (31 nats a completion)" in said.text
    assert not verdict([probe(0, 0.16, 0.0, length=44.0), probe(12, 0.57, 8.0, length=38.0)]).alarm  # 0.21 a token


def test_one_probe_is_no_verdict_yet():
    assert verdict([probe(0, 0.0, 0.0), {"step": 1, "loss": 0.6}]) is None


def test_the_drift_panel_says_the_verdict_in_both_front_ends_and_in_red_when_it_alarms():
    from alignlab.ui.figures import VERDICT_COLOURS, panel_figures
    from alignlab.ui.notebook.grid import grid_figure, verdict_name

    panels = visible_panels(["dpo"], {"run": HACKING})
    assert DRIFT_PANEL in panels
    figure = panel_figures(panels, {"run": HACKING})[panels.index(DRIFT_PANEL)]  # the app's
    title = figure.layout.title.text
    assert title.startswith(DRIFT) and "Trading the instruction for reward" in title and VERDICT_COLOURS[True] in title
    assert {trace.name for trace in figure.data if trace.fill != "toself"} == {
        "length ÷ reference's", "reference perplexity ÷ its own", "instruction followed"}
    grid = grid_figure(panels, {"run": HACKING})  # the notebook's
    note = next(note for note in grid.layout.annotations if note.name == verdict_name(panels.index(DRIFT_PANEL)))
    assert "Trading the instruction" in note.text and VERDICT_COLOURS[True] in note.text
    calm = grid_figure(panels, {"run": FAITHFUL})
    note = next(note for note in calm.layout.annotations if note.name == verdict_name(panels.index(DRIFT_PANEL)))
    assert note.text.startswith(f"<span style='color:{VERDICT_COLOURS[False]}'>No sign of drift yet")
