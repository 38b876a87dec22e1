"""The AI annotator (``alignlab data annotate``) on one real tiny-random run: its votes are people's votes in form,
read back as a preference dataset, a pairwise judge is asked in both orders, and ``alignlab votes`` shows people and
the AI apart."""

from __future__ import annotations

import contextlib
import html
import io
import json

import pytest

from alignlab import rundir
from alignlab.annotate import POINTWISE_NOTE, annotate_run, judge_pair, pick_prompts
from alignlab.cli import main
from alignlab.config import RunConfig
from alignlab.data import load_rows
from alignlab.generation import prompt_text
from alignlab.rewards import RewardSource, get_reward
from alignlab.votes import (
    AI_VOTER_PREFIX,
    Round,
    append_vote,
    is_ai_vote,
    people_votes,
    preference_rows,
    read_votes,
    reward_figure,
    run_summary,
    run_votes,
    summary,
    tally,
    win_rate_cell,
)

pytestmark = pytest.mark.timeout(300)
RUN_ID = "annotated"


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    """A runs folder with one finished 2-step tiny-random DPO run."""
    data = tmp_path_factory.mktemp("data") / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Review {i}: the film", "chosen": " was wonderful.",
                                        "rejected": " was awful."}) + "\n" for i in range(40)))  # 8 held out
    runs = tmp_path_factory.mktemp("annotate") / "runs"
    assert main(["train", "--method", "dpo", "--model", "tiny-random", "--dataset", str(data), "--max-steps", "2",
                 "--batch-size", "2", "--max-length", "48", "--max-completion-length", "8", "--probe-every", "0",
                 "--output-dir", str(runs), "--run-id", RUN_ID, "--quiet"]) == 0
    return runs


@pytest.fixture(scope="module")
def annotated(runs_dir):
    """The run annotated twice: by ``length:40`` through the CLI (its stdout and stderr kept), then by a tiny-random
    judge through the engine (the :class:`~alignlab.annotate.Annotation`)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["data", "annotate", RUN_ID, "--reward", "length:40", "--prompts", "6", "--seed", "3",
                     "--output-dir", str(runs_dir)])
    assert code == 0, err.getvalue()
    judged = annotate_run(RUN_ID, reward="judge-pairwise:tiny-random", prompts=3, seed=1, runs_dir=runs_dir)
    return {"out": out.getvalue(), "err": err.getvalue(), "judged": judged}


def test_ai_votes_have_the_people_format_and_read_back_as_preference_pairs(runs_dir, annotated):
    path = rundir.votes_path(runs_dir, RUN_ID)
    assert f"ai:length:40 voted on 6 prompts of {RUN_ID}" in annotated["out"]
    assert "prompt" in annotated["err"] and "6/6" in annotated["err"]  # the sampling's progress bar
    votes, problems = read_votes(path)
    votes = [vote for vote in votes if vote["voter"] == "ai:length:40"]
    assert problems == [] and len(votes) == 6
    held_out = json.loads((runs_dir / RUN_ID / rundir.HELD_OUT).read_text())["prompts"]
    assert len(held_out) == 8 and {prompt_text(vote["prompt"]) for vote in votes} <= set(held_out)  # the recorded split
    person = Round(RUN_ID, "x", "chat", "a", "b", "tiny-random", RUN_ID, {}).record("A", "ada")
    source = get_reward("length:40")
    for vote in votes:
        assert vote["voter"] == AI_VOTER_PREFIX + "length:40" and is_ai_vote(vote)
        assert set(vote) - {"annotator"} == set(person)  # a person's row, plus what the annotator saw
        assert vote["annotator"]["kind"] == "pointwise" and vote["annotator"]["order_note"] == POINTWISE_NOTE
        reference, aligned = source([vote["prompt"]] * 2, [vote["reference"], vote["aligned"]])
        assert vote["annotator"]["scores"] == {"reference": reference, "aligned": aligned}
        expected = "aligned" if aligned > reference else "reference" if reference > aligned else "tie"
        assert vote["outcome"] == expected and vote["sampling"]["seed"] == 3
        if vote["vote"] in ("A", "B"):
            assert vote["order"]["AB".index(vote["vote"])] == vote["outcome"] == vote["chosen_model"]
    pairs = preference_rows(read_votes(path)[0])
    assert pairs, "no decisive AI vote to train on"
    config = RunConfig(method="dpo", model="tiny-random", dataset=f"votes:{RUN_ID}", output_dir=str(runs_dir))
    assert config.dataset == str(path)
    rows = load_rows(config.dataset, config.spec.data_format, config.method)
    assert [row["chosen"] for row in rows] == [pair["chosen"] for pair in pairs]
    assert run_votes(runs_dir, RUN_ID)[0].votes == len(people_votes(read_votes(path)[0]))  # no AI vote in it


def test_a_pairwise_judge_is_asked_in_both_orders(annotated):
    annotation = annotated["judged"]
    judge = get_reward("judge-pairwise:tiny-random")
    assert annotation.voter == "ai:judge-pairwise:tiny-random" and len(annotation.votes) == 3
    for vote in annotation.votes:
        record = vote["annotator"]
        first, second = record["orders"]
        assert (first["first"], second["first"]) == ("aligned", "reference") and record["kind"] == "pairwise"
        p_aligned = (first["p_first_better"] + 1 - second["p_first_better"]) / 2
        assert record["p_aligned"] == pytest.approx(p_aligned)
        message = vote["prompt"][-1]["content"]
        # the judge's own both-orders average (what online DPO uses) says the same
        assert judge.prefer([message], [vote["aligned"]], [vote["reference"]])[0] == pytest.approx(p_aligned, abs=1e-5)
        in_order = "aligned" if first["p_first_better"] > 0.5 else "reference" if first["p_first_better"] < 0.5 \
            else "tie"
        swapped = "reference" if second["p_first_better"] > 0.5 else "aligned" if second["p_first_better"] < 0.5 \
            else "tie"
        assert record["orders_agree"] == (in_order == swapped)
        assert vote["outcome"] == (in_order if in_order == swapped else "tie")  # disagreeing orders tie
    agreeing, judged = annotation.orders_agreeing
    assert judged == 3 and agreeing == sum(vote["annotator"]["orders_agree"] for vote in annotation.votes)
    assert [vote for vote in read_votes(annotation.path)[0] if vote["voter"] == annotation.voter] == annotation.votes


def test_a_judge_whose_verdict_follows_the_order_ties_and_one_that_follows_the_answers_decides():
    def first_wins(prompts, first, second):  # pure position bias: whatever is shown as A
        return [0.9] * len(prompts)

    def shorter_wins(prompts, first, second):  # a preference that ignores the order
        return [0.8 if len(a) < len(b) else 0.2 for a, b in zip(first, second)]

    def by_length(prompts, completions):
        return [-float(len(text)) for text in completions]

    short, long = "Fine film.", "A long, long film that goes on and on and on."
    biased = judge_pair(RewardSource("biased", by_length, prefer_once=first_wins, prefer=first_wins), "Review:",
                        short, long)
    assert biased.outcome == "tie" and not biased.record["orders_agree"]
    assert biased.record["p_aligned"] == pytest.approx(0.5)
    fair = RewardSource("fair", by_length, prefer_once=shorter_wins, prefer=shorter_wins)
    one, other = judge_pair(fair, "Review:", short, long), judge_pair(fair, "Review:", long, short)
    assert (one.outcome, other.outcome) == ("reference", "aligned") and one.record["orders_agree"]
    assert one.record["p_aligned"] == pytest.approx(0.2) and other.record["p_aligned"] == pytest.approx(0.8)


def test_a_pointwise_reward_gives_the_same_verdict_in_either_order():
    source = get_reward("length:4")
    short, long = "Fine film.", "A long, long film that goes on and on and on."
    one, other = judge_pair(source, "Review:", short, long), judge_pair(source, "Review:", long, short)
    assert one.outcome == "reference" and other.outcome == "aligned"  # the short answer wins wherever it stands
    assert one.record["orders"] == [] and one.record["order_note"] == POINTWISE_NOTE


def test_votes_shows_people_and_the_ai_apart_with_their_agreement(runs_dir, annotated, capsys):
    path = rundir.votes_path(runs_dir, RUN_ID)
    ai = [vote for vote in read_votes(path)[0] if vote["voter"] == "ai:length:40" and vote["outcome"] != "tie"]
    assert len(ai) >= 2, "the AI voted a tie on (nearly) every prompt: nothing to agree on"
    agreeing = ai[:-1]
    for number, vote in enumerate(ai):  # a person agrees with the AI on each prompt but the last
        outcome = vote["outcome"] if vote in agreeing else ("reference" if vote["outcome"] == "aligned" else "aligned")
        person = Round(RUN_ID, vote["prompt"][-1]["content"], "chat", "was dull.", "was fine.", "tiny-random", RUN_ID,
                       {}, order_seed=number)
        append_vote(path, person.record("AB"[person.order.index(outcome)], "ada"))
    votes = read_votes(path)[0]
    people = tally(people_votes(votes))
    assert people.votes == len(ai) and run_votes(runs_dir, RUN_ID)[0] == people
    assert main(["votes", RUN_ID, "--output-dir", str(runs_dir)]) == 0
    out = capsys.readouterr().out
    assert f"People: aligned preferred in {people.win_rate:.0%} of {people.decisive} decisive vote" in out
    assert "AI (ai:length:40): aligned preferred in" in out and "Pointwise: each answer scored alone" in out
    judged = [vote for vote in votes if vote["voter"] == "ai:judge-pairwise:tiny-random"]
    same = sum(vote["annotator"]["orders_agree"] for vote in judged)
    assert "AI (ai:judge-pairwise:tiny-random): " in out
    assert f"the two orders chose the same answer in {same} of {len(judged)} pairs" in out
    assert f"the other {len(judged) - same} pair{'' if len(judged) - same == 1 else 's'} tied (position bias)" in out
    assert f"People and ai:length:40 agree on the better model on {len(agreeing)} of {len(ai)} prompts" in out
    machine = tally(vote for vote in votes if is_ai_vote(vote))
    cell = win_rate_cell(runs_dir, RUN_ID)
    assert cell.startswith(f"{people.win_rate:.0%}") and f"; AI {machine.win_rate:.0%}" in cell


def test_a_bad_run_id_or_count_is_one_line(runs_dir, capsys):
    assert main(["data", "annotate", "no-such-run", "--output-dir", str(runs_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: run: no run 'no-such-run'") and err.count("\n") == 1
    assert main(["data", "annotate", RUN_ID, "--prompts", "-1", "--output-dir", str(runs_dir)]) == 2
    assert "prompts: got -1" in capsys.readouterr().err


def test_prompts_are_drawn_with_the_seed_in_their_order():
    prompts = [f"p{i}" for i in range(10)]
    drawn = pick_prompts(prompts, 4, 7)
    assert drawn == pick_prompts(prompts, 4, 7) and len(drawn) == 4
    assert drawn == sorted(drawn, key=prompts.index) and pick_prompts(prompts, 0, 7) == prompts


def test_both_front_ends_and_the_report_show_people_and_the_ai_apart(runs_dir, annotated):
    from alignlab.ui.gradio.components.vote import win_rate_text
    from alignlab.ui.notebook import Chat
    from alignlab.ui.report import report_html

    lines, problems = run_summary(runs_dir, RUN_ID, reward_figure(runs_dir / RUN_ID))
    assert problems == [] and any(line.startswith("AI (ai:length:40): ") for line in lines)
    assert lines[0] == summary(run_votes(runs_dir, RUN_ID)[0], reward_figure(runs_dir / RUN_ID))[0]
    assert win_rate_text(runs_dir, RUN_ID) == "  \n".join(lines)
    page = report_html([runs_dir / RUN_ID])
    chat = Chat(str(runs_dir / RUN_ID), max_new_tokens=4)
    for line in lines:
        assert html.escape(line) in page and html.escape(line) in chat.voting.win_rate.value
