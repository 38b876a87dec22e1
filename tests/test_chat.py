"""Reference vs aligned chat (alignlab.chat) on real tiny-random runs."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from alignlab.chat import ChatPair, ChatReply, trained_mode
from alignlab.config import RunConfig, config_of
from alignlab.decoding import pick
from alignlab.errors import AlignLabError
from alignlab.generation import SamplingSettings, sentence_end
from alignlab.models import load_model, load_tokenizer
from alignlab.reference import guard_adapter_switch, lock_for, reference_of
from alignlab.runner import start

SETTINGS = SamplingSettings(max_new_tokens=6, temperature=1.0, top_p=0.9, seed=7)
GREEDY = SamplingSettings(max_new_tokens=6, temperature=0.0)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    handle = start(RunConfig(method="dpo", model="tiny-random", max_steps=2, batch_size=2, max_length=64,
                             max_completion_length=8, output_dir=str(tmp_path_factory.mktemp("runs"))),
                   background=False)
    assert handle.state == "finished", handle.error
    return handle.run_dir


@pytest.fixture(scope="module")
def pair(run_dir) -> ChatPair:
    return ChatPair.from_run(run_dir)


@pytest.fixture(scope="module")
def moved_pair(run_dir) -> ChatPair:
    """A pair whose adapter is pushed far from zero, so aligned answers differ from the base model's."""
    moved = ChatPair.from_run(run_dir)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, parameter in moved.model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(0, 1.0)
    return moved


def test_from_run_chats_on_the_builtin_task_and_says_why(pair, run_dir):
    assert pair.mode == "chat" and pair.shares_weights and pair.reward.name == "sentiment"
    mode, why = trained_mode(config_of(run_dir))
    assert mode == "chat" and "chat-formatted review requests" in why
    assert trained_mode(RunConfig(dataset="my-prompts.jsonl"))[0] == trained_mode(None)[0] == "chat"
    assert ChatPair.from_run(run_dir, mode="continue").mode == "continue"  # a choice overrides the default


def test_stream_grows_token_by_token_and_ends_with_rewards(pair):
    replies = list(pair.stream("The film was", SETTINGS))
    assert all(isinstance(reply, ChatReply) for reply in replies)
    assert [reply.done for reply in replies] == [False] * (len(replies) - 1) + [True]
    streamed = replies[:-1]
    for earlier, later in zip(streamed, streamed[1:]):
        assert later.aligned.startswith(earlier.aligned) and later.reference.startswith(earlier.reference)
    assert 1 < len(replies) <= SETTINGS.max_new_tokens + 1
    final = replies[-1]
    # The finished answers end at their last full sentence (blind rounds too: the pair does it, not the UI), and
    # that is the text scored and kept in the history.
    for answer, last in ((final.reference, streamed[-1].reference), (final.aligned, streamed[-1].aligned)):
        assert answer == sentence_end(answer)  # ends at a sentence end, or has none
        assert last.startswith(answer) or answer.startswith(last.strip())  # cut back, or one token more
    turn = {"role": "user", "content": "The film was"}
    assert final.aligned_history[-1]["content"] == final.aligned
    assert pair.reward([[turn], [turn]], [final.reference, final.aligned]) == [final.reference_reward,
                                                                              final.aligned_reward]
    assert final.aligned and final.reference
    assert isinstance(final.reference_reward, float) and isinstance(final.aligned_reward, float)
    assert all(reply.aligned_reward is None for reply in replies[:-1])


def test_same_seed_same_answers_other_seed_other_answers(moved_pair):
    first = moved_pair.generate_pair("The film was", SETTINGS)
    again = moved_pair.generate_pair("The film was", SETTINGS)
    assert (first.reference, first.aligned) == (again.reference, again.aligned)
    other = moved_pair.generate_pair("The film was", SamplingSettings(max_new_tokens=6, top_p=0.9, seed=8))
    assert (other.reference, other.aligned) != (first.reference, first.aligned)


def test_lora_reference_is_the_base_model(moved_pair):
    base_model, tokenizer = load_model("tiny-random").eval(), load_tokenizer("tiny-random")
    text = tokenizer.apply_chat_template([{"role": "user", "content": "The film was"}], tokenize=False,
                                         add_generation_prompt=True)  # the pair chats, as the run trained
    prompt = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        output = base_model.generate(**prompt, max_new_tokens=GREEDY.max_new_tokens, do_sample=False)
    plain = tokenizer.decode(output[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True)
    greedy = moved_pair.generate_pair("The film was", GREEDY)
    assert greedy.reference == sentence_end(plain)  # a finished answer ends at its last full sentence
    assert greedy.aligned != sentence_end(plain)  # the moved adapter is on for the aligned column only
    sampled = moved_pair.generate_pair("The film was", SETTINGS)
    base_only = ChatPair.base_only("tiny-random").generate_pair("The film was", SETTINGS)
    assert sampled.reference == base_only.reference == base_only.aligned


def test_reference_of_holds_the_model_lock_while_the_adapter_is_off(pair, run_dir):
    def try_lock(result):
        result.append(lock_for(pair.model).acquire(blocking=False))

    inside, outside = [], []
    with reference_of(pair.model, config_of(run_dir)):
        thread = threading.Thread(target=try_lock, args=(inside,))
        thread.start()
        thread.join()
    assert inside == [False]  # a chat step in another thread would wait
    try_lock(outside)
    lock_for(pair.model).release()
    assert outside == [True] and pair.lock is lock_for(pair.model)


def test_a_guarded_adapter_switch_waits_for_a_chat_step_in_another_thread(run_dir):
    from alignlab.models import load_trained

    model, _ = load_trained(run_dir)  # a PeftModel, as a trainer holds it
    guard_adapter_switch(model)
    guard_adapter_switch(model)  # idempotent
    switched = threading.Event()

    def trainer_reference_pass():
        with model.disable_adapter():  # what TRL does for every reference forward
            switched.set()

    with lock_for(model):  # a chat step in progress on the live model
        thread = threading.Thread(target=trainer_reference_pass)
        thread.start()
        assert not switched.wait(0.3)  # the adapter stays on until the chat step ends
    thread.join(5)
    assert switched.is_set()
    with model.disable_adapter():  # the same thread may nest (the lock is re-entrant)
        with reference_of(model, config_of(run_dir)):
            pass


def test_chat_mode_keeps_one_history_per_side(moved_pair):
    chat = ChatPair(moved_pair.model, moved_pair.tokenizer, mode="chat")
    first = chat.generate_pair("Hello!", GREEDY)
    assert [m["role"] for m in first.aligned_history] == ["user", "assistant"]
    assert first.aligned_history[1]["content"] == first.aligned
    assert first.reference_history[1]["content"] == first.reference
    second = chat.generate_pair("Tell me more.", GREEDY, first.reference_history, first.aligned_history)
    assert len(second.aligned_history) == len(second.reference_history) == 4
    assert second.aligned_history[:2] == first.aligned_history
    # the history is part of the prompt: the same message after another history reads differently
    other = chat.generate_pair("Tell me more.", GREEDY, first.aligned_history, first.reference_history)
    assert (other.reference, other.aligned) != (second.reference, second.aligned)


def test_pick_greedy_and_nucleus():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.9]])
    generator = torch.Generator().manual_seed(0)
    assert pick(logits, 0.0, 1.0).tolist() == [1]
    assert {int(pick(logits, 1.0, 0.01, generator)) for _ in range(20)} == {1}
    assert {int(pick(logits, 1.0, 0.6, generator)) for _ in range(50)} == {1, 3}
    assert {int(pick(logits, 1.0, 1.0, generator)) for _ in range(200)} == {0, 1, 2, 3}


def test_streaming_an_answer_prints_no_future_warning(pair):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        replies = list(pair.stream("The film was", SETTINGS))
    assert replies[-1].done
    assert [str(w.message) for w in caught if issubclass(w.category, FutureWarning)] == []


def test_bad_input_raises_alignlab_errors(pair):
    with pytest.raises(AlignLabError, match="mode"):
        ChatPair(pair.model, pair.tokenizer, mode="poem")
    with pytest.raises(AlignLabError, match="message"):
        pair.generate_pair("   ", SETTINGS)


def test_chat_with_a_run_while_it_trains(tmp_path):
    handle = start(RunConfig(method="dpo", model="tiny-random", max_steps=200, batch_size=2, max_length=64,
                             max_completion_length=8, probe_every=0, output_dir=str(tmp_path)))
    deadline = time.time() + 120
    while handle.model is None and not handle.done and time.time() < deadline:
        time.sleep(0.1)
    try:
        live = ChatPair.from_handle(handle)
        assert live.live and not live.shares_weights and live.reference_model is not handle.model
        reply = live.generate_pair("The film was", SETTINGS)
        assert reply.done and reply.aligned and not handle.done
        assert handle.model.training  # chatting never switched the live model to eval mode
    finally:
        handle.stop()
    assert handle.wait(300) == "stopped", handle.error
    assert handle.history and (handle.run_dir / "model").exists()


@pytest.mark.slow
def test_default_model_streams_what_generate_writes():
    pair = ChatPair.base_only("smollm2-135m-instruct", mode="chat")
    text = pair.tokenizer.apply_chat_template([{"role": "user", "content": "Name a fruit."}], tokenize=False,
                                              add_generation_prompt=True)
    prompt = pair.tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        output = pair.model.generate(**prompt, max_new_tokens=12, do_sample=False)
    expected = pair.tokenizer.decode(output[0, prompt["input_ids"].shape[1]:], skip_special_tokens=True)
    reply = pair.generate_pair("Name a fruit.", SamplingSettings(max_new_tokens=12, temperature=0))
    assert reply.reference == reply.aligned == sentence_end(expected) and expected.strip()
