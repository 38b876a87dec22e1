"""What changed after a run: three held-out prompts picked with a fixed seed, reference vs aligned, scored."""

import pytest

from alignlab.changes import CHANGE_PROMPTS, model_changes, pick_prompts, run_changes
from alignlab.config import RunConfig
from alignlab.generation import prompt_text
from alignlab.held_out import held_out_of_run
from alignlab.rewards import reward_for
from alignlab.runner import start


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A real 2-step DPO run on tiny-random over twelve small pairs (three of them held out)."""
    folder = tmp_path_factory.mktemp("changes")
    pairs = folder / "pairs.jsonl"
    pairs.write_text("".join(f'{{"prompt": "Review {i}: the film", "chosen": " was wonderful.", "rejected": '
                             '" was awful."}\n' for i in range(12)))
    config = RunConfig(method="dpo", model="tiny-random", dataset=str(pairs), max_steps=2, batch_size=2,
                       max_length=48, max_completion_length=8, probe_every=0, output_dir=str(folder / "runs"))
    handle = start(config, background=False)
    assert handle.state == "finished", handle.error
    return handle


def test_three_distinct_held_out_prompts_each_scored_by_the_run_reward(tiny_run):
    rows = run_changes(tiny_run.run_dir)
    held_out = {prompt_text(prompt): prompt for prompt in held_out_of_run(tiny_run.run_dir).prompts}
    assert len(rows) == CHANGE_PROMPTS == 3
    assert len({row["prompt"] for row in rows}) == 3 and {row["prompt"] for row in rows} <= set(held_out)
    reward = reward_for(tiny_run.config)
    for row in rows:
        prompt = held_out[row["prompt"]]
        assert row["reference_reward"] == reward([prompt], [row["reference"]])[0]
        assert row["aligned_reward"] == reward([prompt], [row["aligned"]])[0]


def test_the_same_seed_picks_the_same_prompts_and_the_same_answers(tiny_run):
    first, again = run_changes(tiny_run.run_dir, seed=5), run_changes(tiny_run.run_dir, seed=5)
    assert first == again
    prompts = tiny_run.held_out.prompts
    assert [row["prompt"] for row in first] == [prompt_text(p) for p in pick_prompts(prompts, 3, seed=5)]
    # The model still in memory (the notebook Lab's way) and the saved one (the app's) give the same rows.
    assert model_changes(tiny_run.model, tiny_run.tokenizer, tiny_run.config, prompts, seed=5) == first


def test_picks_are_random_draws_not_the_first_prompts():
    prompts = [f"prompt {i}" for i in range(100)]
    picks = {tuple(pick_prompts(prompts, 3, seed)) for seed in range(5)}
    assert len(picks) == 5 and tuple(prompts[:3]) not in picks  # each seed its own draw, not the list's head
    assert all(len(set(pick)) == 3 for pick in picks)
    assert sorted(pick_prompts(prompts[:2], 3)) == prompts[:2]  # fewer prompts than asked for: all of them
