"""benchmarks/frozen_lr.paired_bootstrap: the head minus the baseline on the same resampled test posts."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from frozen_lr import paired_bootstrap  # noqa: E402


def test_same_outputs_differ_by_nothing_and_a_perfect_head_is_clearly_above():
    from somelvlm.taxonomy.heads import head_spec

    spec = head_spec("irony")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    perfect = np.eye(2)[y]
    noise = rng.dirichlet([1, 1], 300)
    same = paired_bootstrap("irony", spec, y, noise, noise, n=50)
    assert same["diff"] == 0 and same["ci95"] == [0.0, 0.0]
    better = paired_bootstrap("irony", spec, y, perfect, noise, n=50)
    assert better["diff"] > 0 and better["ci95"][0] > 0


def test_ratings_compare_rmse():
    from somelvlm.taxonomy.heads import head_spec

    spec = head_spec("humor_rating")
    y = np.linspace(0, 4, 200)
    worse = paired_bootstrap("humor_rating", spec, y, y + 1.0, y, n=50)  # rmse: lower is better
    assert worse["diff"] > 0 and worse["ci95"][0] > 0
