"""Honest evaluation: paired gain and its s.e., Wilson win-rate, fluency guards, whole sentences."""

import json
import math
import subprocess
import sys

import pytest

from alignlab.fluency import distinct_ratio, fluency
from alignlab.generation import sentence_end, stop_token_ids
from alignlab.stats import mean_se, paired_difference, wilson_interval


def test_paired_difference_averages_samples_within_a_prompt_first():
    aligned = [0.9, 0.7, 0.2, 0.4, -0.1, 0.1]
    reference = [0.1, 0.1, 0.2, 0.4, 0.3, 0.3]
    paired = paired_difference(aligned, reference, groups=[0, 0, 1, 1, 2, 2])
    per_prompt = [0.7, 0.0, -0.3]
    assert paired.groups == 3 and (paired.wins, paired.losses, paired.ties) == (1, 1, 1)
    assert paired.mean == pytest.approx(sum(per_prompt) / 3)
    assert paired.se == pytest.approx(mean_se(per_prompt)[1])
    assert paired.win_rate == pytest.approx(0.5)  # one win, one tie (half), one loss
    # The paired s.e. is far below the unpaired one when both columns share the prompt's difficulty.
    hard_and_easy = [i % 2 * 2.0 for i in range(20)]
    shifted = [x + 0.1 for x in hard_and_easy]
    assert paired_difference(shifted, hard_and_easy, list(range(20))).se < 1e-9
    with pytest.raises(ValueError):
        paired_difference([1.0], [1.0, 2.0], [0])


def test_wilson_interval_matches_the_formula_and_stays_in_bounds():
    low, high = wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(52, 60)
    assert 0.75 < low < 52 / 60 < high < 0.95
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def test_sentence_end_cuts_back_to_the_last_full_sentence():
    assert sentence_end("A warm film. The ending drags on and") == "A warm film."
    assert sentence_end('She said "wow!" and then') == 'She said "wow!"'
    assert sentence_end("No sentence end at all") == "No sentence end at all"
    assert sentence_end("Mr. Smith was great. Really") == "Mr. Smith was great."
    assert sentence_end("  Done!  ") == "Done!"


def test_completions_stop_at_any_special_token_of_the_chat_format():
    from alignlab.models import load_model, load_tokenizer

    tokenizer, model = load_tokenizer("tiny-random"), load_model("tiny-random")
    stops = stop_token_ids(model, tokenizer)
    assert set(tokenizer.convert_tokens_to_ids(["<|im_end|>", "<|im_start|>"])) <= set(stops)


def test_distinct_ratio_exposes_repetition():
    assert distinct_ratio(["great great great great"]) == 0.25
    assert distinct_ratio(["Warm, funny film with a great cast."]) == 1.0
    assert fluency(["great great", "a fine film"]).words == 2.5


@pytest.mark.slow
@pytest.mark.ci
def test_reference_perplexity_flags_a_reward_hack():
    from alignlab.models import load_model, load_tokenizer
    from alignlab.task import task_prompts

    model, tokenizer = load_model("smollm2-135m-instruct"), load_tokenizer("smollm2-135m-instruct")
    prompts = task_prompts("eval")[:2]
    natural = fluency(["The film is warm and funny, and the cast is wonderful.",
                       "A slow start, but the ending made me smile."], prompts, model, tokenizer)
    hacked = fluency(["great great great great great great great great",
                      "love love love love love wonderful wonderful wonderful"], prompts, model, tokenizer)
    assert hacked.perplexity > 3 * natural.perplexity
    assert hacked.distinct < 0.5 < natural.distinct


def test_eval_cli_reports_paired_gain_win_rate_and_fluency(tiny, tmp_path):
    from alignlab import RunConfig, start

    handle = start(RunConfig(method="dpo", **tiny), background=False)
    assert handle.state == "finished", handle.error
    out = tmp_path / "eval.json"
    result = subprocess.run([sys.executable, "-m", "alignlab", "eval", str(handle.run_dir), "--samples", "2",
                             "--json", str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "paired s.e." in result.stdout and "win-rate" in result.stdout and "perplexity" in result.stdout
    figures = json.loads(out.read_text())
    held_out = json.loads((handle.run_dir / "held_out.json").read_text())["prompts"]
    assert figures["prompts"] == len(held_out) == 3 and figures["samples_per_prompt"] == 2  # 20% of 12, held out
    assert figures["wins"] + figures["losses"] + figures["ties"] == figures["prompts"]
    assert figures["gain"] == pytest.approx(figures["aligned_mean"] - figures["reference_mean"], abs=2e-4)
    assert figures["win_low"] <= figures["win_rate"] <= figures["win_high"]
    assert figures["aligned_fluency"]["perplexity"] > 1
    samples = [json.loads(line) for line in (handle.run_dir / "samples.jsonl").read_text().splitlines()]
    assert [row["prompt"] for row in samples] == held_out
    # bench.eval_runs keeps the evaluated run's figures, and the Learn card's figures read them
    from bench.eval_runs import main as keep_runs
    from bench.eval_runs import table
    from bench.learn_figures import learn_figures

    kept = tmp_path / "eval_runs.json"
    assert keep_runs([str(handle.run_dir), "--threads", "1", "--note", "test", "--out", str(kept)]) == 0
    (record,) = json.loads(kept.read_text())["runs"]
    assert record["final"]["gain"] == pytest.approx(figures["gain"]) and record["train_s"] > 0
    assert record["final"]["kl"] is not None  # the last probe's
    from alignlab.methods import get_method
    from bench.learn_figures import changed_knobs

    changed = changed_knobs(record, get_method("dpo").defaults())
    assert {"max_steps", "batch_size"} <= set(changed)  # a tiny run is no run at the defaults: a variant, so labelled
    dpo = learn_figures({"runs": []}, json.loads(kept.read_text()))["methods"]["dpo"]
    assert dpo["defaults"] == [] and [run["gain"] for run in dpo["variants"]] == [record["final"]["gain"]]
    assert "test" in dpo["variants"][0]["machine"] and dpo["variants"][0]["label"] == f"dpo {json.dumps(changed)}"
    assert f"| dpo {json.dumps(changed)} | {record['seed']} | {figures['gain']:+.3f} ± {figures['gain_se']:.3f} |" in (
        table(json.loads(kept.read_text())))


def test_eval_cli_samples_at_the_temperature_asked_and_says_so(tiny, tmp_path):
    """The probe samples the whole distribution (temperature 1), the eval the lab's reading setting: eval can read at
    the probe's setting, and its report, figures and the model card say which setting was read."""
    from alignlab import RunConfig, start
    from alignlab.rundir import MODEL_CARD, model_dir

    handle = start(RunConfig(method="dpo", **tiny), background=False)
    assert handle.state == "finished", handle.error
    out = tmp_path / "eval.json"
    refused = subprocess.run([sys.executable, "-m", "alignlab", "eval", str(handle.run_dir), "--top-p", "1.5"],
                             capture_output=True, text=True, timeout=600)
    assert refused.returncode != 0 and "top_p: got 1.5" in refused.stderr
    result = subprocess.run([sys.executable, "-m", "alignlab", "eval", str(handle.run_dir), "--samples", "1",
                             "--temperature", "1", "--top-p", "1", "--no-fluency", "--json", str(out)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "temperature 1, top-p 1)" in result.stdout
    assert "reference perplexity not measured" in result.stdout and "nan" not in result.stdout  # --no-fluency
    figures = json.loads(out.read_text())
    assert (figures["temperature"], figures["top_p"]) == (1.0, 1.0)
    assert figures["aligned_fluency"]["perplexity"] is None and "NaN" not in out.read_text()  # not measured
    card = (model_dir(handle.run_dir) / MODEL_CARD).read_text()
    assert "seed 1234, temperature 1, top-p 1): gain" in card
