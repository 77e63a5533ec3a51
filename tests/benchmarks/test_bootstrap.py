"""benchmarks/_bootstrap.py: the vectorised resample metrics equal the registry's on the posts themselves,
and the paired interval behaves (a copy of the baseline differs by 0; a perfect head clearly wins)."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


@pytest.mark.parametrize(("metric", "labels"), [("macro_f1", ()), ("macro_f1", (1,)), ("macro_f1", (0, 2)),
                                                ("macro_recall", ()), ("accuracy", ())])
def test_metrics_equal_the_registry_on_the_posts(metric, labels):
    from _bootstrap import confusions, from_confusion
    from somelvlm.evaluate.metrics import score

    rng = np.random.default_rng(3)
    names = ("a", "b", "c", "d")
    gold = rng.choice(3, 200)  # class d never in gold, sometimes predicted
    pred = rng.choice(4, 200)
    ours = from_confusion(metric, confusions(np.ones((1, 200)), gold, pred, 4), labels)[0]
    theirs = score(metric, [names[g] for g in gold], [names[p] for p in pred], [names[i] for i in labels])
    assert ours == pytest.approx(theirs, abs=1e-9)


def test_resamples_are_resamples_and_rmse_matches():
    from _bootstrap import resample_counts, rmse

    counts = resample_counts(50, 20, seed=1)
    assert counts.shape == (20, 50) and (counts.sum(1) == 50).all()
    gold, out = np.linspace(0, 4, 50), np.linspace(0.5, 6, 50)
    assert rmse(np.ones((1, 50)), gold, out)[0] == pytest.approx(np.sqrt(np.mean((np.clip(out, 0, 5) - gold) ** 2)))


def test_paired_interval():
    from _bootstrap import paired_interval

    rng = np.random.default_rng(0)
    gold = rng.choice(3, 300)
    guess = [rng.choice(3, 300) for _ in range(5)]
    same = paired_interval("macro_f1", gold, guess[0], [guess[0]], k=3)
    assert same == {"diff": 0.0, "ci95": [0.0, 0.0]}
    perfect = paired_interval("macro_f1", gold, gold, guess, k=3)
    assert perfect["ci95"][0] > 50 and perfect["diff"] > perfect["ci95"][0]
    noisy = paired_interval("macro_f1", gold, guess[1], guess[2:], k=3)
    assert noisy["ci95"][0] < 0 < noisy["ci95"][1]
    ratings = paired_interval("rmse", np.ones(40), np.ones(40), [np.zeros(40)])
    assert ratings["diff"] == -1.0
