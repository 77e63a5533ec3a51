"""The answer parser round-trips every label and maps garbage to ``invalid``."""

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
