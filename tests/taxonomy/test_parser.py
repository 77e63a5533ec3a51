"""The answer parser round-trips every label and maps garbage to ``invalid``."""

import json
from collections import Counter
from pathlib import Path

import pytest

from somelvlm.taxonomy import INVALID, all_tasks, get_task, parse_answer
from somelvlm.taxonomy.task import display_label

CLASSIFICATION = [t.name for t in all_tasks() if t.kind == "classification"]


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_every_label_round_trips(name):
    task = get_task(name)
    for label in task.labels:
        answer = task.answer(label)
        assert parse_answer(task, answer) == label
        assert parse_answer(task, f"Answer: {answer.upper()}.") == label
        assert parse_answer(task, f"The answer is {display_label(label)}") == label
        assert parse_answer(task, f"I think this post is {answer}, because of its tone.") == label


@pytest.mark.parametrize("name", CLASSIFICATION)
def test_garbage_is_invalid(name):
    task = get_task(name)
    for garbage in ["", "   ", "I cannot answer that.", "asdf qwerty", "¯\\_(ツ)_/¯", None]:
        assert parse_answer(task, garbage) == INVALID


def test_contained_label_does_not_count_twice():
    hate = get_task("hate")
    assert parse_answer(hate, "not hate") == "not_hate"
    assert parse_answer(hate, "hate") == "hate"
    assert parse_answer(hate, "either hate or not hate, hard to say") == INVALID


def test_regression_and_generation():
    rating = get_task("humor_rating")
    assert parse_answer(rating, "I'd say 2.5 out of 5") == 2.5
    assert parse_answer(rating, "7") == INVALID
    assert parse_answer(rating, "funny") == INVALID
    detox = get_task("detoxify")
    assert parse_answer(detox, "  a polite version ") == "a polite version"
    assert parse_answer(detox, "") == INVALID


def test_aliases_the_question_invites():
    """'Is it ironic?' is answered 'ironic' / 'not ironic': the task's aliases map them to its labels."""
    irony = get_task("irony")
    assert parse_answer(irony, "ironic") == "irony"
    assert parse_answer(irony, "The tweet is not ironic.") == "non_irony"
    assert parse_answer(irony, "non irony") == "non_irony"
    assert parse_answer(irony, "ironic or not ironic") == INVALID
    assert parse_answer(get_task("humor"), "Humorous.") == "humor"
    fake_news = get_task("fake_news")  # SoMeLVLM's test set offers [true, false]
    assert [parse_answer(fake_news, a) for a in ("true", "false", "not true", "real news")] == ["real", "fake", "fake", "real"]


CASES_FILE = Path(__file__).with_name("parser_cases.jsonl")
CASES = [json.loads(line) for line in CASES_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_case_table_is_large_and_real():
    """At least 100 answers collected from the models (labelled by hand) and 30 written hard cases."""
    sources = Counter(c["source"] for c in CASES)
    assert sources["smollm2"] + sources["some-lvlm"] >= 100 and sources["hand"] >= 30
    for c in CASES:
        task = get_task(c["task"])
        assert c["expected"] == INVALID or c["expected"] in task.labels or isinstance(c["expected"], float)


@pytest.mark.parametrize("case", [
    pytest.param(c, marks=pytest.mark.xfail(strict=True, reason=c["known_miss"])) if c.get("known_miss") else c
    for c in CASES
], ids=[f"{i}-{c['source']}-{c['task']}" for i, c in enumerate(CASES)])
def test_case_table(case):
    """Each answer of the table parses to the label a person read in it; the few known misses are
    strict xfails (listed with their reason in benchmarks/results/parser_accuracy.md)."""
    expected = case["expected"]
    got = parse_answer(get_task(case["task"]), case["answer"])
    assert got == (float(expected) if isinstance(expected, (int, float)) else expected)


def test_table_accuracy_meets_the_target():
    hits = sum(parse_answer(get_task(c["task"]), c["answer"]) == c["expected"] for c in CASES)
    assert hits / len(CASES) >= 0.98


def test_the_issue_examples():
    hate, sarcasm = get_task("hate"), get_task("sarcasm")
    assert parse_answer(hate, "no hate speech here") == "not_hate"
    assert parse_answer(sarcasm, "No, it isn't sarcastic.") == "not_sarcastic"
    assert parse_answer(hate, "This post does not contain hate.") == "not_hate"
    assert parse_answer(hate, "Not hateful.") == "not_hate"
    assert parse_answer(hate, "Yes, it is hateful.") == "hate"
    assert parse_answer(get_task("humor_rating"), "out of 5 I'd say 4") == 4.0
    assert [parse_answer(get_task("hateful_meme"), a) for a in ("true", "false")] == ["hateful", "not_hateful"]


def test_choice_positions_follow_the_prompt():
    """'A' is the first choice the prompt listed: SoMeLVLM's HatefulMemes prompts list [true, false]."""
    meme = get_task("hateful_meme")
    published = "This meme goes along with the following caption: 'x'.\nDoes this meme show any hate speech?\nOptions: [true, false]"
    assert parse_answer(meme, "A", prompt=published) == "hateful"
    assert parse_answer(meme, "A") == "not_hateful"  # our prompts list [not hateful, hateful]
    assert parse_answer(meme, "(b)", prompt=published) == "not_hateful"
    assert parse_answer(meme, "C", prompt=published) == INVALID
    assert parse_answer(get_task("emotion"), "2. joy") == "joy"
    assert parse_answer(get_task("hate"), "1. The tweet is hateful.\n2. It attacks women.") == "hate"


def test_yes_no_only_answer_one_label_questions():
    """'yes' / 'no' are aliases only where the question asks about one label, and only as an answer's first word."""
    assert parse_answer(get_task("sentiment"), "Yes") == INVALID
    assert parse_answer(get_task("hate"), "The tweet says yes to immigration.") == INVALID
    assert parse_answer(get_task("hate"), "No.") == "not_hate"
