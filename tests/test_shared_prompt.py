"""RLOO, GRPO and online DPO score the completions of a prompt with one pass over the prompt
(alignlab.shared_prompt): the same log-probs, entropies and gradients as TRL's full pass, TRL's own pass for rows
whose prompts do not repeat, and real tiny-random runs that score every step that way."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from trl.trainer.utils import add_fused_lm_head

from alignlab import shared_prompt
from alignlab.config import RunConfig
from alignlab.models import load_model
from alignlab.runner import start
from alignlab.shared_prompt import grouped_completion_logprobs, grouped_logps
from bench.scoring import full_pass  # TRL's pass, as its RLOO and GRPO score rows

pytestmark = pytest.mark.timeout(300)
PROMPT, COMPLETION, K = 12, 9, 4


@pytest.fixture()
def policy():
    """tiny-random with TRL's fused head (temperature 0.9, entropies on) and a LoRA adapter that is not zero."""
    torch.manual_seed(0)
    model = load_model("tiny-random")
    add_fused_lm_head(model, temperature=0.9, outputs=("log_probs", "entropy"))
    return get_peft_model(model, LoraConfig(r=8, target_modules="all-linear", init_lora_weights=False))


def groups_of_rows(vocab: int):
    """Two prompts (the second left-padded), K completions of each, right-padded to different lengths."""
    prompts = torch.randint(5, vocab, (2, PROMPT))
    prompt_mask = torch.ones(2, PROMPT, dtype=torch.long)
    prompts[1, :3], prompt_mask[1, :3] = 0, 0
    ids = torch.cat([prompts.repeat_interleave(K, 0), torch.randint(5, vocab, (2 * K, COMPLETION))], 1)
    mask = torch.cat([prompt_mask.repeat_interleave(K, 0), torch.ones(2 * K, COMPLETION, dtype=torch.long)], 1)
    for row, length in enumerate([COMPLETION, 7, 1, COMPLETION, 4, COMPLETION, 8, 2]):
        mask[row, PROMPT + length:] = 0
    return ids, mask


def scored_with_gradients(model, score, mask):
    model.zero_grad()
    logps, entropies = score()
    completion = mask[:, -COMPLETION:]
    ((logps * completion).sum() + 0.1 * (entropies * completion).sum()).backward()
    return logps.detach(), entropies.detach(), {name: p.grad.clone() for name, p in model.named_parameters()
                                                if p.requires_grad}


def test_one_pass_per_prompt_gives_the_full_pass_log_probs_entropies_and_gradients(policy):
    ids, mask = groups_of_rows(policy.config.vocab_size)
    full = scored_with_gradients(policy, lambda: full_pass(policy, ids, mask, COMPLETION), mask)
    shared = scored_with_gradients(policy, lambda: grouped_logps(policy, ids, mask, COMPLETION, True), mask)
    scored = mask[:, -COMPLETION:].bool()
    assert torch.allclose(full[0][scored], shared[0][scored], atol=1e-5)
    assert torch.allclose(full[1][scored], shared[1][scored], atol=1e-5)
    assert full[2].keys() == shared[2].keys() and len(full[2]) > 0
    for name, gradient in full[2].items():
        assert (gradient - shared[2][name]).abs().max() <= 1e-4 * gradient.abs().max(), name
    assert all(gradient.abs().sum() > 0 for gradient in shared[2].values())  # every adapter weight learns


def test_shuffled_rows_share_their_prompts_and_rows_of_distinct_prompts_are_left_to_the_full_pass(policy):
    ids, mask = groups_of_rows(policy.config.vocab_size)
    order = [5, 0, 7, 2, 1, 4, 6, 3]  # how TRL shuffles a generation batch for its training pass
    with torch.no_grad():
        logps, entropies = grouped_logps(policy, ids[order], mask[order], COMPLETION)
        full, _ = full_pass(policy, ids[order], mask[order], COMPLETION)
        assert grouped_logps(policy, ids[[0, 4]], mask[[0, 4]], COMPLETION) is None  # no prompt repeats
        assert grouped_logps(policy, ids[:, PROMPT - 1:], mask[:, PROMPT - 1:], COMPLETION) is None  # a 1-token prompt
    scored = mask[order, -COMPLETION:].bool()
    assert torch.allclose(logps[scored], full[scored], atol=1e-5) and entropies is None


def test_online_dpo_pairs_score_as_trls_full_softmax_pass(policy):
    ids, mask = groups_of_rows(policy.config.vocab_size)
    pairs = [0, 4, 1, 5]  # TRL's layout: the prompts, then the same prompts again
    prompt_ids, prompt_mask = ids[pairs, :PROMPT], mask[pairs, :PROMPT]
    completion_ids, completion_mask = ids[pairs, PROMPT:], mask[pairs, PROMPT:]

    def full():  # what TRL's online DPO computes: the whole rows, the completion's logits after a full softmax
        logits = policy(input_ids=ids[pairs], attention_mask=mask[pairs]).logits[:, PROMPT - 1:-1]
        return torch.take_along_dim(logits.log_softmax(-1), completion_ids.unsqueeze(-1), dim=2).squeeze(-1)

    def shared():
        return grouped_completion_logprobs(policy, prompt_ids, prompt_mask, completion_ids, completion_mask)

    scored = completion_mask.bool()
    expected, expected_grads = [], []
    for score in (full, shared):
        policy.zero_grad()
        logprobs = score()
        (logprobs * completion_mask).sum().backward()
        expected.append(logprobs.detach())
        expected_grads.append({name: p.grad.clone() for name, p in policy.named_parameters() if p.requires_grad})
    assert torch.allclose(expected[0][scored], expected[1][scored], atol=1e-5)
    for name, gradient in expected_grads[0].items():
        assert (gradient - expected_grads[1][name]).abs().max() <= 1e-4 * gradient.abs().max(), name
    with torch.no_grad():
        assert grouped_completion_logprobs(policy, prompt_ids[:2], prompt_mask[:2], completion_ids[:2],
                                           completion_mask[:2]) is None  # two distinct prompts: TRL's pass


@pytest.mark.parametrize("method, function, accumulate", [
    ("rloo", "grouped_logps", 1), ("grpo", "grouped_logps", 1), ("online-dpo", "grouped_completion_logprobs", 1),
    ("rloo", "grouped_logps", 2)])  # two batches a step: TRL scores the rollouts batch_size rows at a time
def test_online_runs_score_every_step_with_one_pass_per_prompt(tmp_path, monkeypatch, method, function, accumulate):
    answers = []
    grouped = getattr(shared_prompt, function)

    def recording(model, input_ids, *args, **kwargs):
        scored = grouped(model, input_ids, *args, **kwargs)
        answers.append((input_ids.shape[0], torch.is_grad_enabled(), scored is not None))
        return scored

    monkeypatch.setattr(shared_prompt, function, recording)
    groups = {"num_generations": 2} if method != "online-dpo" else {}
    config = RunConfig.from_dict({"method": method, "model": "tiny-random", "max_steps": 2, "batch_size": 4,
                                  "grad_accum": accumulate, "max_length": 48, "max_completion_length": 8,
                                  "probe_every": 0, "output_dir": str(tmp_path), **groups})
    handle = start(config, background=False)
    assert handle.state == "finished", handle.error
    assert all(rows == config.batch_size for rows, _, _ in answers)  # one batch a pass, as TRL scores them
    # The rollouts are scored in the order sampled, each prompt's copies together; shuffled into two batches for
    # the training pass, a batch may hold no prompt twice and goes to TRL's own pass.
    assert answers and all(shared for _, grad, shared in answers if accumulate == 1 or not grad)
    assert any(grad for _, grad, _ in answers)  # the training forward itself, gradients on
    if method != "grpo":  # the reference each step (and RLOO's policy before the update), without gradients
        assert sum(not grad for _, grad, _ in answers) >= config.max_steps
