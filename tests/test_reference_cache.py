"""Reference log-probs of DPO pairs: computed once per (model, data), reused by later runs."""

import json

import pytest

from alignlab import RunConfig, start


@pytest.fixture
def cache_folder(tmp_path, monkeypatch):
    import alignlab.reference_cache as reference_cache

    folder = tmp_path / "cache"
    monkeypatch.setattr(reference_cache, "cache_dir", lambda: folder)
    return folder / "reference-logps"


def _trainer(dataset_rows, seed, max_steps: int = 1):
    import datasets
    from trl import DPOConfig

    from alignlab.methods import get_method
    from alignlab.models import load_model, load_tokenizer, lora_config

    args = DPOConfig(output_dir="unused", max_steps=max_steps, per_device_train_batch_size=2,
                     precompute_ref_log_probs=True, report_to="none", use_cpu=True, max_length=48, seed=seed,
                     save_strategy="no")
    trainer_class = get_method("dpo").trainer_class()
    return trainer_class(model=load_model("tiny-random"), args=args, processing_class=load_tokenizer("tiny-random"),
                         train_dataset=datasets.Dataset.from_list(dataset_rows),
                         peft_config=lora_config(4, 8, 0.0, "all-linear", "causal-lm"))


def test_a_cold_run_fills_the_cache_as_its_steps_go_with_the_numbers_the_pre_pass_gives(pairs_file, cache_folder,
                                                                                         monkeypatch):
    """On a miss nothing runs before step 1; the steps compute each pair's reference log-probs once, and when
    every pair has them they are stored: the next trainer reads the numbers TRL's pre-pass would have computed."""
    import alignlab.reference_cache as reference_cache

    rows = [json.loads(line) for line in pairs_file.read_text().splitlines()]
    first = _trainer(rows, seed=1, max_steps=len(rows) // 2)  # 2 pairs a step: one epoch
    assert first.reference_cache_hit is False and not list(cache_folder.glob("*.json"))  # no pre-pass
    first.train()
    assert len(list(cache_folder.glob("*.json"))) == 1
    second = _trainer(rows, seed=2)  # another LoRA initialisation: the reference is the same
    assert second.reference_cache_hit is True
    monkeypatch.setattr(reference_cache, "LAZY", False)
    monkeypatch.setattr(reference_cache, "cache_dir", lambda: cache_folder.parent.parent / "other")
    pre_pass = _trainer(rows, seed=3)  # TRL's own pass over every pair before training
    assert pre_pass.reference_cache_hit is False
    for column in ("ref_chosen_logps", "ref_rejected_logps"):
        assert list(second.train_dataset[column]) == pytest.approx(list(pre_pass.train_dataset[column]), rel=1e-4)
    changed = [dict(row, chosen=row["chosen"] + " Truly.") if i == 0 else row for i, row in enumerate(rows)]
    monkeypatch.setattr(reference_cache, "cache_dir", lambda: cache_folder.parent)
    assert _trainer(changed, seed=1).reference_cache_hit is False  # other data, other key


def test_while_the_adapter_is_untrained_the_policys_own_forward_gives_the_reference_log_probs(pairs_file, cache_folder,
                                                                                              monkeypatch):
    """Before the first update the LoRA policy is the reference, bit for bit: step 1 takes the reference's numbers
    from the policy's forward instead of running the model twice, and stores what a separate reference pass gives."""
    import alignlab.reference_cache as reference_cache

    rows = [json.loads(line) for line in pairs_file.read_text().splitlines()]
    stored = []
    for share in (True, False):
        monkeypatch.setattr(reference_cache, "SHARE_UNTRAINED", share)
        monkeypatch.setattr(reference_cache, "cache_dir", lambda folder=cache_folder.parent / str(share): folder)
        trainer, calls = _trainer(rows, seed=1, max_steps=len(rows) // 2), []
        reference_pass = trainer.compute_ref_log_probs
        monkeypatch.setattr(trainer, "compute_ref_log_probs",
                            lambda *a, calls=calls, run=reference_pass: calls.append(1) or run(*a))
        assert reference_cache.adapter_is_untrained(trainer.model)
        trainer.train()
        assert not reference_cache.adapter_is_untrained(trainer.model)  # trained: B is no longer zero
        assert len(calls) == len(rows) // 2 - (1 if share else 0)  # every step's pairs but the first step's
        [file] = (cache_folder.parent / str(share) / "reference-logps").glob("*.json")
        stored.append(json.loads(file.read_text()))
    for column in reference_cache.COLUMNS:
        assert stored[0][column] == pytest.approx(stored[1][column], rel=1e-5)


def test_a_stopped_cold_run_stores_nothing(pairs_file, cache_folder):
    rows = [json.loads(line) for line in pairs_file.read_text().splitlines()]
    trainer = _trainer(rows, seed=1, max_steps=1)  # 2 of the pairs: the others never get theirs
    trainer.train()
    assert not list(cache_folder.glob("*.json"))


def test_runs_on_a_cold_and_a_warm_cache_train_like_the_in_step_reference(tiny, cache_folder):
    losses = []
    six_steps = dict(tiny, max_steps=6)  # 6 steps x 2 pairs: every pair of the file, no sample of it
    for precompute in (False, True, True):
        handle = start(RunConfig(method="dpo", **six_steps, probe_every=0,
                                 method_args={"precompute_ref_log_probs": precompute}), background=False)
        assert handle.state == "finished", handle.error
        rows = [json.loads(line) for line in (handle.run_dir / "metrics.jsonl").read_text().splitlines()]
        losses.append([row["loss"] for row in rows if "loss" in row])
    assert len(list(cache_folder.glob("*.json"))) == 1  # the warm run read the file the cold run wrote
    # Same losses up to the LoRA initialisation, which TRL 1.12 does not seed per run (each run in this
    # process draws other LoRA A weights): in-step reference, cold cache and warm cache train alike.
    assert losses[1] == pytest.approx(losses[0], rel=2e-2) and losses[2] == pytest.approx(losses[1], rel=2e-2)


def test_the_step0_probe_is_reused_by_the_next_run_of_the_same_base_model(tiny, cache_folder, monkeypatch):
    import alignlab.probe as probe

    sampled = []  # per run: how many probes sampled completions (the others read the cache)
    measure = probe.measure

    def counted_measure(*args, **kwargs):
        sampled[-1] += 1
        return measure(*args, **kwargs)

    monkeypatch.setattr(probe, "measure", counted_measure)
    firsts = []
    for _ in range(2):
        sampled.append(0)
        handle = start(RunConfig(method="dpo", **{**tiny, "seed": 3}, probe_every=1,
                                 method_args={"precompute_ref_log_probs": False}), background=False)
        assert handle.state == "finished", handle.error
        rows = [json.loads(line) for line in (handle.run_dir / "metrics.jsonl").read_text().splitlines()]
        probes = [row for row in rows if "probe/reward" in row]
        assert [row["step"] for row in probes] == [0, 1, 2]
        firsts.append(probes[0])
    assert len(list((cache_folder.parent / "probe").glob("*.json"))) == 1
    for key in ("probe/reward", "probe/kl", "probe/length", "probe/reward_se"):
        assert firsts[1][key] == firsts[0][key]
    assert sampled == [3, 2]  # the second run's step-0 probe came from the cache
