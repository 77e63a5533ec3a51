"""Generation tasks, classification by generation (Acc / Acc* / valid share), the judge by any
Generator, the detox word-deletion baseline; a scripted generator stands in for a model."""

from __future__ import annotations

import math

import pytest

from somelvlm.evaluate.generative import (delete_words, generate_answers, learn_toxic_words, references,
                                          score_task)
from somelvlm.evaluate.judge import judge_scores, parse_score
from somelvlm.generate import generate_task
from somelvlm.models.generation import Generator
from somelvlm.posts import Post
from somelvlm.taxonomy.registry import get_task


class Scripted:
    """A Generator that answers from a list, recording what it was asked."""

    name = "scripted"

    def __init__(self, answers):
        self.answers = list(answers)
        self.prompts: list[str] = []

    def generate(self, prompts, images=None, config=None):
        self.prompts += prompts
        return [self.answers.pop(0) for _ in prompts]


def test_scripted_is_a_generator():
    assert isinstance(Scripted([]), Generator)


def test_classification_by_generation_counts_invalid_in_acc_not_acc_star():
    records = [{"target": t, "conversations": [{"value": "q"}, {"value": t}]} for t in ("hate", "not_hate", "hate", "hate")]
    answers = ["Hate.", "Answer: not hate", "I cannot say", ""]
    s = score_task("hate", records, answers)
    assert s["accuracy"] == 50.0 and s["acc_star"] == 100.0 and s["valid_share"] == 50.0 and s["empty"] == 1


def test_generation_scores_use_every_reference_and_empty_answers_score_zero():
    recs = [{"references": ["you are wrong", "that is not right"], "conversations": [{"value": "q"}, {"value": "x"}]}]
    good = score_task("detoxify", recs, ["that is not right"])
    assert good["bleu"] == pytest.approx(100.0) and good["rouge_l"] == pytest.approx(100.0)
    empty = score_task("detoxify", recs, [""])
    assert empty["bleu"] == 0.0 and empty["rouge_l"] == 0.0 and empty["empty"] == 1
    tags = score_task("hashtags", [{"conversations": [{"value": "q"}, {"value": "#sun #fun"}]}], ["#Sun #beach"])
    assert tags["hashtag_f1"] == 50.0
    assert references({"conversations": [{}, {"value": "only"}]}) == ["only"]


def test_generate_task_uses_the_task_prompts_and_parses_labels():
    gen = Scripted(["not hate", "hmm", "#a #b"])  # prompts go shortest first (batches of alike length)
    rows = generate_task("hate", [Post(id="1", text="nice day"), Post(id="2", text="meh, nothing to say")], model=gen)
    assert [r["label"] for r in rows] == ["not_hate", "invalid"]
    assert "nice day" in gen.prompts[0] and rows[0]["text"] == "nice day"  # the input post is kept
    rows = generate_task("hashtags", [Post(id="3", text="sunny beach")], model=gen)
    assert rows[0]["answer"] == "#a #b" and rows[0]["text"] == "sunny beach"
    assert get_task("hashtags").answer_tokens == 24  # the task YAML's generation budget


def test_judge_scores_with_any_generator():
    assert parse_score("Score: 4/5") == 4 and parse_score("10") is None and parse_score("none") is None
    res = judge_scores(Scripted(["4", "I'd say 2.", "excellent"]), "detoxify", ["a", "b", "c"],
                       [["ra"], "rb", "rc"], ["x", "", "z"])
    assert res.scores == [4, 2, None] and res.mean == 3.0 and res.parsed == 2
    assert math.isnan(judge_scores(Scripted(["?"]), "t", ["p"], ["r"], ["a"]).mean)
    with pytest.raises(ValueError, match="judge"):
        judge_scores(Scripted([]), "t", ["p"], [], ["a"])


def test_delete_toxic_words_baseline_learns_from_train_pairs():
    pairs = [("you are a stupid idiot", ["you are wrong"]), ("stupid rules", ["bad rules"]),
             ("what a stupid idea", ["what a bad idea"]), ("idiot driver", ["bad driver"]),
             ("an idiot again", ["someone again"]), ("idiot", ["person"])]
    words = learn_toxic_words(pairs, min_count=3)
    assert words == {"stupid", "idiot"}
    assert delete_words("This is STUPID, you idiot!", words) == "This is you"


def test_generate_answers_batches_and_passes_images_only_when_present():
    gen = Scripted(["a", "b", "c"])
    recs = [{"conversations": [{"value": f"p{i}"}, {"value": ""}]} for i in range(3)]
    assert generate_answers(gen, recs, batch_size=2) == ["a", "b", "c"]
    assert gen.prompts == ["p0", "p1", "p2"]
