"""Reward sources: built-ins, a trained reward model, the LLM judge (both orders), bad names and NaN."""

import json
import math

import pytest
import torch

from alignlab.config import RunConfig
from alignlab.errors import AlignLabError
from alignlab.rewards import (
    REWARD_KINDS,
    RewardKind,
    RewardSource,
    check_no_path,
    get_reward,
    register_reward,
    reward_names,
)
from alignlab.runner import start


def test_length_reward_peaks_at_its_target():
    score = get_reward("length:4")
    completions = ["one two three four", "one", "one two three four five six seven eight"]
    assert score(["p"] * 3, completions) == [1.0, 0.25, 0.0]


def test_a_source_returning_nan_or_the_wrong_count_raises():
    with pytest.raises(AlignLabError, match="NaN"):
        RewardSource("broken", lambda p, c: [math.nan] * len(c))(["p"], ["c"])
    with pytest.raises(AlignLabError, match="wrong number"):
        RewardSource("short", lambda p, c: [])(["p"], ["c"])


@pytest.mark.parametrize(("name", "message"), [
    ("nope", "expected one of sentiment"),
    ("length:0", "positive word count"),
    ("reward-model", "reward-model:<run-id or path>"),
    ("reward-model:no-such-run", "train one with --method reward"),
    ("judge:no/such-model", "^reward: the judge model 'no/such-model' of 'judge:no/such-model' is not "),
])
def test_bad_reward_names_say_what_is_expected(name, message, tmp_path):
    with pytest.raises(AlignLabError, match=message):
        get_reward(name, runs_dir=tmp_path)


def test_reward_model_source_refuses_runs_of_other_methods(tmp_path):
    run = tmp_path / "some-dpo-run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"method": "dpo"}))
    with pytest.raises(AlignLabError, match=r"trained with method 'dpo', which trains a text generator; expected a run "
                       r"of a method that trains a scorer \(reward\)"):
        get_reward(f"reward-model:{run}")


def test_custom_rewards_cannot_shadow_built_in_names():
    with pytest.raises(AlignLabError, match="built-in"):
        register_reward("judge:mine", lambda p, c: [0.0] * len(c))
    register_reward("exclaim", lambda p, c: [float(text.count("!")) for text in c])
    assert get_reward("exclaim")(["p", "p"], ["wow!!", "ok"]) == [2.0, 0.0]


def test_a_new_source_is_one_registry_entry(monkeypatch):
    kind = RewardKind("shout", "shout[:N]", lambda argument: int(argument or "1"),
                      lambda times, name, **_: RewardSource(name, lambda p, c: [float(times)] * len(c)),
                      offered=("shout", "shout:3"))
    monkeypatch.setitem(REWARD_KINDS, "shout", kind)
    assert reward_names()[-2:] == ["shout", "shout:3"]
    source = get_reward("shout:3")
    assert source.name == "shout:3" and source(["p"], ["c"]) == [3.0]
    with pytest.raises(AlignLabError, match=r"shout\[:N\]"):  # unknown names list the new kind's spelling
        get_reward("whisper")


def test_built_in_names_keep_their_spelling():
    assert reward_names()[:5] == ["sentiment", "length", "length:10", "length:40", "judge"]
    assert get_reward("length").name == "length" and get_reward("length:10").name == "length:10"
    with pytest.raises(AlignLabError, match="takes no argument"):
        get_reward("sentiment:loud")
    assert [kind.prefix for kind in REWARD_KINDS.values() if kind.takes_path] == ["reward-model", "judge",
                                                                                   "judge-pairwise"]


def _fake_run(runs_dir, run_id, method):
    (runs_dir / run_id).mkdir(parents=True)
    (runs_dir / run_id / "config.json").write_text(json.dumps({"method": method}))


def test_names_from_an_untrusted_client_load_no_path(tmp_path):
    """The app's rule: a reward model is a reward run of its runs folder, a judge a built-in model."""
    _fake_run(tmp_path, "rm-1", "reward")
    _fake_run(tmp_path, "dpo-1", "dpo")
    for name in ["sentiment", "length:7", "judge", "judge:tiny-random", "reward-model:rm-1"]:
        check_no_path(name, tmp_path)
    for name in ["reward-model:/tmp", f"reward-model:{tmp_path / 'rm-1'}", "reward-model:../rm-1",
                 "reward-model:dpo-1", "judge:/home/someone/model", "judge:some-org/some-model"]:
        with pytest.raises(AlignLabError, match="not offered"):
            check_no_path(name, tmp_path)
    with pytest.raises(AlignLabError, match="reward-model:<run-id or path>"):
        check_no_path("reward-model", tmp_path)
    with pytest.raises(AlignLabError, match="none yet"):
        check_no_path("reward-model:rm-1", tmp_path / "empty")
    with pytest.raises(AlignLabError, match="expected one of"):
        check_no_path("nope", tmp_path)


@pytest.fixture(scope="module")
def reward_run(tmp_path_factory):
    """A 2-step reward model on tiny-random, as a finished run directory."""
    root = tmp_path_factory.mktemp("reward")
    pairs = root / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"prompt": f"Review {i}:", "chosen": " great", "rejected": " awful"}) + "\n"
                             for i in range(8)))
    handle = start(RunConfig(method="reward", model="tiny-random", dataset=str(pairs), max_steps=2, batch_size=2,
                             max_length=32, max_completion_length=8, output_dir=str(root / "runs")), background=False)
    assert handle.state == "finished", handle.error
    return handle


def test_reward_model_source_scores_by_run_id_or_path(reward_run):
    by_id = get_reward(f"reward-model:{reward_run.run_id}", runs_dir=reward_run.config.output_dir)
    by_path = get_reward(f"reward-model:{reward_run.run_dir}")
    prompts, completions = ["Review 1:", "Review 1:"], [" great", " a long and rambling answer"]
    scores = by_id(prompts, completions)
    assert scores == by_path(prompts, completions)
    assert len(scores) == 2 and scores[0] != scores[1]


def test_reward_model_source_drives_ppo(reward_run, tiny):
    """PPO scores the decoded completions with any reward source, a reward model's run included."""
    config = RunConfig.from_dict({"method": "ppo", **tiny, "max_completion_length": 6, "probe_every": 0,
                                  "reward": f"reward-model:{reward_run.run_dir}"})
    handle = start(config, background=False)
    assert handle.state == "finished", handle.error
    scores = [e["metrics"]["objective/scores"] for e in handle.history if "objective/scores" in e["metrics"]]
    assert len(scores) == 2 and all(math.isfinite(s) for s in scores)


@pytest.fixture(scope="module")
def judge():
    return get_reward("judge-pairwise:tiny-random", instruction="very positive")


def test_the_judge_scores_each_answer_alone_by_its_likelihood_contrast():
    """judge: the per-token log-likelihood ratio of the answer between a request for the instruction and one for
    its opposite, computed here from the model's own logits; pointwise, so there is nothing to ask in two orders."""
    from alignlab.models import load_model, load_tokenizer

    source = get_reward("judge:tiny-random", instruction="glowing praise", opposite="harsh criticism")
    assert source.prefer is None and source.pairwise() is source
    prompts, completions = ["Review the film.", "Review the film.", "Review it."], [" Great fun.", " Dull.", " Fine."]
    scores = source(prompts, completions)
    model, tokenizer = load_model("tiny-random").eval(), load_tokenizer("tiny-random")

    def log_likelihood(request: str, answer: str) -> tuple[float, int]:
        context = tokenizer.apply_chat_template([{"role": "user", "content": request}], tokenize=False,
                                                add_generation_prompt=True)
        context_ids = tokenizer(context, add_special_tokens=False)["input_ids"]
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logits = model(torch.tensor([context_ids + answer_ids])).logits[0, len(context_ids) - 1:-1]
        return float(logits.log_softmax(-1).gather(1, torch.tensor(answer_ids)[:, None]).sum()), len(answer_ids)

    for prompt, answer, score in zip(prompts, completions, scores):
        (wanted, n), (unwanted, _) = (log_likelihood(f"{prompt} Make it {wish}.", answer)
                                      for wish in ("glowing praise", "harsh criticism"))
        assert score == pytest.approx((wanted - unwanted) / n, abs=1e-4)
    plain = get_reward("judge:tiny-random", instruction="glowing praise", opposite="")(prompts, completions)
    assert plain != scores  # against the request alone when there is no opposite
    both = get_reward("judge:tiny-random", instruction="glowing praise",
                      opposite="harsh criticism; negative")(prompts, completions)
    for prompt, answer, score in zip(prompts, completions, both):  # several opposites: their log-likelihoods averaged
        (wanted, n), (harsh, _), (negative, _) = (log_likelihood(f"{prompt} Make it {wish}.", answer)
                                                  for wish in ("glowing praise", "harsh criticism", "negative"))
        assert score == pytest.approx((wanted - (harsh + negative) / 2) / n, abs=1e-4)


def test_judge_scores_are_probabilities_and_follow_the_instruction(judge):
    prompts, completions = ["The film", "The film"], [" was great.", " was bad."]
    scores = judge(prompts, completions)
    assert all(0.0 < s < 1.0 for s in scores)
    other = get_reward("judge-pairwise:tiny-random", instruction="written in French")(prompts, completions)
    assert other != scores  # the instruction is part of what the judge reads


def test_judge_compares_pairs_in_both_orders(judge):
    """Averaging both orders makes P(a over b) + P(b over a) = 1 whatever the model's position bias."""
    prompts, first, second = ["The film"] * 2, [" was great.", " ok"], [" was bad.", " a long answer"]
    forward, backward = judge.prefer(prompts, first, second), judge.prefer(prompts, second, first)
    assert forward != [0.5, 0.5]
    assert [a + b for a, b in zip(forward, backward)] == pytest.approx([1.0, 1.0])


def test_pairwise_reward_turns_a_judge_into_online_dpo_preferences(judge):
    pair_reward = judge.pairwise()
    prompts, completions = ["x", "y", "x", "y"], [" a", " b", " c", " d"]
    scores = pair_reward(prompts=prompts, completions=completions)
    assert scores[:2] == judge.prefer(["x", "y"], [" a", " b"], [" c", " d"])
    assert scores[2:] == pytest.approx([1 - s for s in scores[:2]])
    with pytest.raises(AlignLabError, match="prompts twice"):
        pair_reward(prompts=["x", "y", "y", "x"], completions=completions)
    sentiment = get_reward("sentiment")
    assert sentiment.pairwise() is sentiment  # pointwise sources score alone


def test_empty_judge_instruction_is_rejected():
    with pytest.raises(AlignLabError, match="judge_instruction"):
        get_reward("judge:tiny-random", instruction="  ")


def test_sentiment_followed_rewards_the_instruction_as_well_as_the_sentiment():
    from alignlab.follow import requested_opening
    from alignlab.task import task_prompts

    prompt = task_prompts("eval")[0]  # a chat prompt, as TRL's trainers pass it
    opening = requested_opening(prompt)
    reward = get_reward("sentiment-followed")
    kept, dropped = f"{opening} a wonderful, joyful film.", "A wonderful, joyful film."
    scores = reward([prompt, prompt, "Say something nice."], [kept, dropped, dropped])
    plain = get_reward("sentiment")([prompt, prompt, "Say something nice."], [kept, dropped, dropped])
    assert scores[0] == plain[0] > 0 and scores[1] == -1.0 < plain[1]
    assert scores[2] == plain[2]  # a prompt that asks for no opening scores plain sentiment


def test_sentiment_followed_takes_a_softer_penalty_and_rejects_a_bad_one():
    from alignlab.task import task_prompts

    prompt = task_prompts("eval")[0]
    dropped = "A wonderful, joyful film."
    plain = get_reward("sentiment")([prompt], [dropped])[0]
    assert get_reward("sentiment-followed:0.5")([prompt], [dropped])[0] == pytest.approx(plain - 0.5)
    for bad in ("sentiment-followed:0", "sentiment-followed:3", "sentiment-followed:x"):
        with pytest.raises(AlignLabError, match=r"sentiment-followed:P with P in \(0, 2\]"):
            get_reward(bad)
