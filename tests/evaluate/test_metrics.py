"""Registered metrics against hand computations."""

import math

import pytest

from somelvlm.evaluate.metrics import INVALID, get_metric, score


def test_classification_metrics_by_hand():
    gold = ["a", "a", "b", "b", "c"]
    pred = ["a", "b", "b", "b", "a"]
    assert score("accuracy", gold, pred) == pytest.approx(60.0)
    # F1: a = 2*.5*.5/1 = .5 ; b = 2*(2/3)*1/(5/3) = .8 ; c = 0  -> macro .4333
    assert score("macro_f1", gold, pred) == pytest.approx(100 * (0.5 + 0.8 + 0) / 3)
    assert score("macro_f1", gold, pred, labels=("b",)) == pytest.approx(80.0)  # irony-style F1 of one class
    assert score("macro_f1", gold, pred, labels=("a", "b")) == pytest.approx(65.0)  # stance-style mean of two
    assert score("macro_recall", gold, pred) == pytest.approx(100 * (0.5 + 1 + 0) / 3)


def test_acc_and_acc_star_treat_invalid_answers_differently():
    gold = ["yes", "no", "yes", "no"]
    pred = ["yes", INVALID, "no", "no"]
    assert score("accuracy", gold, pred) == pytest.approx(50.0)
    assert score("acc_star", gold, pred) == pytest.approx(100 * 2 / 3)
    assert score("valid_share", gold, pred) == pytest.approx(75.0)


def test_auroc_ratings_and_text_metrics():
    assert score("auroc", ["n", "p", "n", "p"], ["n"] * 4, labels=("n", "p"), scores=[0.1, 0.9, 0.2, 0.8]) == 100.0
    assert score("rmse", [1.0, 3.0], [2.0, 3.0]) == pytest.approx(math.sqrt(0.5))
    assert score("pearson", [1, 2, 3], [2, 4, 6]) == pytest.approx(100.0)
    assert score("bleu", ["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100.0)
    assert score("bleu", [["a b c d", "the cat sat on the mat"]], ["the cat sat on the mat"]) == pytest.approx(100.0)
    assert score("rouge_l", ["the cat sat"], ["the cat"]) == pytest.approx(100 * 2 * 1 * (2 / 3) / (1 + 2 / 3))
    assert score("hashtag_f1", ["#a #b"], ["#A #c"]) == pytest.approx(50.0)
    assert get_metric("rmse").higher_is_better is False


def test_unknown_metric_and_length_mismatch():
    with pytest.raises(KeyError, match="macro_f1"):
        score("macro_f2", ["a"], ["a"])
    with pytest.raises(ValueError, match="2 gold"):
        score("accuracy", ["a", "b"], ["a"])


def test_auroc_positive_class_is_the_last_label_given():
    gold = ["not_hateful", "hateful", "not_hateful", "hateful"]
    p_hateful = [0.1, 0.9, 0.2, 0.8]
    assert score("auroc", gold, gold, labels=("not_hateful", "hateful"), scores=p_hateful) == 100.0
