"""Paired bootstrap of a head's primary metric against other predictions on the same posts, vectorised.

A resample of n posts (with replacement) is a vector of counts (n,) drawn from a multinomial; one matrix
product of the counts (draws, n) with the posts' one-hot (gold, predicted) cells gives every resample's
confusion matrix at once, and the metrics follow from the confusion matrices. 1,000 resamples of 5,000
posts take milliseconds, where scoring each resample with sklearn takes tens of seconds.

The metrics are the registry's (``somelvlm.evaluate.metrics``) on a resample: macro-F1 and macro-recall
over the given labels, or over the gold labels present in the resample (as ``score`` does), accuracy,
and RMSE (ratings clipped to 0-5, as ``head_metrics`` does); ``tests/benchmarks/test_bootstrap.py``
checks them against ``score`` on the posts themselves.
"""

from __future__ import annotations

import numpy as np


def resample_counts(n: int, draws: int, seed: int = 0) -> np.ndarray:
    """(draws, n) float counts: how often each post is drawn in each resample (each row sums to n)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=draws).astype(np.float64)


def confusions(counts: np.ndarray, gold: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    """(draws, k, k) confusion matrices [gold, predicted] of the resamples ``counts`` (draws, n)."""
    cells = np.zeros((len(gold), k * k))
    cells[np.arange(len(gold)), np.asarray(gold) * k + np.asarray(pred)] = 1.0
    return (counts @ cells).reshape(len(counts), k, k)


def from_confusion(metric: str, conf: np.ndarray, labels: tuple[int, ...] = ()) -> np.ndarray:
    """(draws,) values in percent of ``metric`` (macro_f1, macro_recall, accuracy) from confusion
    matrices (draws, k, k); ``labels``: the classes averaged (default: those with gold posts)."""
    tp = np.diagonal(conf, axis1=1, axis2=2)  # (draws, k)
    gold_n, pred_n = conf.sum(2), conf.sum(1)
    if metric == "accuracy":
        return 100.0 * tp.sum(1) / conf.sum((1, 2))
    if metric == "macro_f1":
        denom = gold_n + pred_n
        per = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    elif metric == "macro_recall":
        per = np.divide(tp, gold_n, out=np.zeros_like(tp), where=gold_n > 0)
    else:
        raise ValueError(f"no vectorised bootstrap for metric {metric!r}")
    chosen = np.zeros_like(per, dtype=bool)
    if labels:
        chosen[:, list(labels)] = True
    else:
        chosen = gold_n > 0
    return 100.0 * (per * chosen).sum(1) / chosen.sum(1)


def rmse(counts: np.ndarray, gold: np.ndarray, out: np.ndarray) -> np.ndarray:
    """(draws,) RMSE of the resamples (ratings clipped to 0-5)."""
    err = (np.clip(np.asarray(out, dtype=float), 0, 5) - np.asarray(gold, dtype=float)) ** 2
    return np.sqrt(counts @ err / counts.sum(1))


def resampled(metric: str, counts: np.ndarray, gold: np.ndarray, out: np.ndarray, k: int,
              labels: tuple[int, ...] = ()) -> np.ndarray:
    """(draws,) metric of one prediction set over the resamples. ``out``: predicted class indices (n,)
    for classification metrics, numbers (n,) for rmse."""
    if metric == "rmse":
        return rmse(counts, gold, out)
    return from_confusion(metric, confusions(counts, gold, out, k), labels)


def paired_interval(metric: str, gold, ours, bases: list, k: int = 0, labels: tuple[int, ...] = (),
                    draws: int = 1000, seed: int = 0) -> dict:
    """``{"diff": ours - mean(bases) on the posts, "ci95": [lo, hi]}``: the metric of ``ours`` minus the
    mean metric of ``bases`` (e.g. a stratified guesser's seeds), on the same resamples. Predictions are
    class indices (n,) (``k`` classes; ``labels``: the classes averaged) or numbers for rmse."""
    gold = np.asarray(gold)
    full = np.ones((1, len(gold)))
    counts = resample_counts(len(gold), draws, seed)

    def diff(c: np.ndarray) -> np.ndarray:
        base = np.mean([resampled(metric, c, gold, b, k, labels) for b in bases], axis=0)
        return resampled(metric, c, gold, ours, k, labels) - base

    d = diff(counts)
    return {"diff": round(float(diff(full)[0]), 3),
            "ci95": [round(float(np.percentile(d, 2.5)), 3), round(float(np.percentile(d, 97.5)), 3)]}


def head_paired(task: str, spec, gold, ours: np.ndarray, bases: list[np.ndarray], metric=None, draws: int = 1000,
                seed: int = 0) -> dict:
    """``paired_interval`` for head-shaped outputs: ``ours`` and each of ``bases`` are (n, labels) scores
    (argmax taken; each post's own target's row for a per-target head) or (n,) ratings, scored by
    ``metric`` (a ``Metric``; default the task's primary)."""
    from somelvlm.taxonomy.registry import get_task

    metric = metric or get_task(task).primary_metric
    if spec.kind == "regression":
        return paired_interval("rmse", gold, ours, bases, draws=draws, seed=seed)
    labels = tuple(spec.labels.index(lab) for lab in metric.labels)
    pick = lambda out: np.asarray(out).argmax(1)
    return paired_interval(metric.name, np.asarray(gold, dtype=int), pick(ours), [pick(b) for b in bases],
                           len(spec.labels), labels, draws=draws, seed=seed)
