"""The instruction check itself: which completions begin with the opening their prompt requests, how text is
normalised first, and how a task declares a check of its own."""

import pytest

from alignlab.errors import AlignLabError
from alignlab.follow import _CHECKS as CHECKS
from alignlab.follow import (
    begins_with,
    check_for,
    followed,
    normalise,
    opening_followed,
    register_check,
    requested_opening,
    share,
)
from alignlab.task import BUILTIN_TASK, task_instruction

OPENING = "The pacing changes noticeably after"


@pytest.mark.parametrize("completion", [
    "The pacing changes noticeably after the first hour.",
    "  The pacing changes noticeably after",  # leading whitespace
    '"The pacing changes noticeably after the midpoint."',  # quoted, as models often do
    "“The pacing changes noticeably after the twist”",  # curly quotes
    "**The pacing changes noticeably after** the reveal.",  # Markdown emphasis
    "the PACING changes  noticeably\nafter the reveal.",  # case and whitespace runs
])
def test_a_completion_that_begins_with_the_opening_follows(completion):
    assert opening_followed([task_instruction(OPENING)], [completion]) == [True]


@pytest.mark.parametrize("completion", [
    "A fine film. The pacing changes noticeably after the first hour.",  # the opening, but not first
    "The pacing shifts noticeably after the first hour.",  # a paraphrase
    "The pacing changes after the first hour.",  # a word dropped
    "The pacing changes",  # cut short
    "",
])
def test_a_completion_that_does_not_begin_with_the_opening_does_not_follow(completion):
    assert opening_followed([task_instruction(OPENING)], [completion]) == [False]


def test_the_opening_is_read_from_the_prompt_text_or_its_last_user_message():
    message = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": task_instruction(OPENING)}]
    assert requested_opening(message) == requested_opening(task_instruction(OPENING)) == OPENING
    assert requested_opening('I said: "hello"') is None and requested_opening("Write a poem.") is None
    assert requested_opening(task_instruction('He said "no", and')) == 'He said "no", and'  # quotes inside


def test_a_prompt_without_the_instruction_is_not_counted():
    answers = opening_followed(["Review 1: the film", task_instruction(OPENING)], [" was fine.", OPENING + " x"])
    assert answers == [None, True]
    assert share(answers) == (1.0, 0.0) and share([None, None]) is None


def test_normalise_and_begins_with():
    assert normalise("  ‘Tis  THE Season’s") == "tis the season's"  # a leading quote mark goes, on both sides
    assert begins_with("'Tis the season to watch it.", "‘Tis the season")
    assert begins_with("Fin. Done.", "fin.") and not begins_with("Fin", "") and not begins_with("", "x")


def test_a_task_declares_its_own_check_and_a_mix_uses_it():
    def says_hi(prompts, completions):
        return [text.lower().startswith("hi") for text in completions]

    try:
        register_check("greetings.jsonl", says_hi)
        assert check_for("greetings.jsonl") is says_hi and check_for(f"{BUILTIN_TASK}+greetings.jsonl") is \
            opening_followed  # the first source of a mix that declares one
        assert check_for("other.jsonl+greetings.jsonl") is says_hi
        assert followed(check_for("greetings.jsonl"), ["a", "b"], ["Hi there", "Bye"]) == [True, False]
    finally:
        CHECKS.pop("greetings.jsonl", None)
    assert check_for("greetings.jsonl") is opening_followed and check_for(BUILTIN_TASK) is opening_followed
    with pytest.raises(AlignLabError, match="expected a function"):
        register_check("x", "not a function")


def test_a_check_that_answers_wrongly_fails_naming_itself():
    def broken(prompts, completions):
        return ["yes"] * len(completions)

    with pytest.raises(AlignLabError, match="follow check 'broken': expected True, False or None"):
        followed(broken, ["a"], ["b"])
    with pytest.raises(AlignLabError, match="each of 2 completions"):
        followed(lambda prompts, completions: [True], ["a", "b"], ["c", "d"])
    assert followed(None, ["a"], ["b"]) == [None]
