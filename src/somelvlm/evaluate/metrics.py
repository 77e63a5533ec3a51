"""Registered metrics: each knows whether higher is better and how to read a task's metric spec.

Every metric takes the gold targets and the predictions of one task (label ids for classification,
numbers for regression, texts for generation) and returns a float in the metric's natural scale
(0-100 for F1 / recall / accuracy / BLEU / ROUGE so tables match published numbers).

>>> score("macro_f1", ["a", "b", "b"], ["a", "b", "a"], labels=("a", "b"))
66.66666666666666
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from somelvlm.registry import unknown

INVALID = "invalid"


@dataclass(frozen=True)
class MetricDef:
    """A metric: its function ``(gold, pred, labels, scores) -> float`` and its direction."""

    name: str
    fn: Callable[..., float]
    higher_is_better: bool = True
    needs_scores: bool = False
    """True when the metric reads a continuous score per item (AUROC), not the predicted label."""


METRICS: dict[str, MetricDef] = {}


def register(name: str, higher_is_better: bool = True, needs_scores: bool = False):
    def wrap(fn):
        METRICS[name] = MetricDef(name, fn, higher_is_better, needs_scores)
        return fn
    return wrap


def get_metric(name: str) -> MetricDef:
    if name not in METRICS:
        raise unknown("metric", name, METRICS)
    return METRICS[name]


def score(name: str, gold: Sequence, pred: Sequence, labels: Sequence[str] = (),
          scores: Sequence[float] | None = None) -> float:
    """Compute metric ``name``; ``labels`` restricts averaging (e.g. stance's favor/against F1)."""
    if len(gold) != len(pred):
        raise ValueError(f"{name}: {len(gold)} gold targets but {len(pred)} predictions")
    if not gold:
        return float("nan")
    return float(get_metric(name).fn(list(gold), list(pred), tuple(labels), scores))


@register("accuracy")
def accuracy(gold, pred, labels=(), scores=None) -> float:
    """Share of exact matches over ALL items (invalid answers count as wrong): SoMeLVLM's Acc."""
    return 100.0 * sum(g == p for g, p in zip(gold, pred)) / len(gold)


@register("acc_star")
def acc_star(gold, pred, labels=(), scores=None) -> float:
    """Accuracy over the items whose answer parsed to a valid label (SoMeLVLM's Acc*)."""
    kept = [(g, p) for g, p in zip(gold, pred) if p != INVALID]
    return 100.0 * sum(g == p for g, p in kept) / len(kept) if kept else float("nan")


@register("valid_share")
def valid_share(gold, pred, labels=(), scores=None) -> float:
    """Share of answers that parsed to a valid label."""
    return 100.0 * sum(p != INVALID for p in pred) / len(pred)


@register("macro_f1")
def macro_f1(gold, pred, labels=(), scores=None) -> float:
    """Mean F1 over ``labels`` (all gold labels when empty). TweetEval irony uses ``labels=(irony,)``,
    stance ``(against, favor)``."""
    from sklearn.metrics import f1_score

    chosen = list(labels) or sorted(set(gold))
    return 100.0 * f1_score(gold, pred, labels=chosen, average="macro", zero_division=0)


@register("macro_recall")
def macro_recall(gold, pred, labels=(), scores=None) -> float:
    """Mean recall over the gold labels (TweetEval sentiment's official metric)."""
    from sklearn.metrics import recall_score

    chosen = list(labels) or sorted(set(gold))
    return 100.0 * recall_score(gold, pred, labels=chosen, average="macro", zero_division=0)


@register("auroc", needs_scores=True)
def auroc(gold, pred, labels=(), scores=None) -> float:
    """Area under the ROC curve of ``scores``, the probability of the positive class: the last of
    ``labels`` (pass the task's labels in their order; without them, the last gold label sorted)."""
    from sklearn.metrics import roc_auc_score

    if scores is None:
        raise ValueError("auroc needs a score per item")
    positive = labels[-1] if labels else sorted(set(gold))[-1]
    y = [int(g == positive) for g in gold]
    if len(set(y)) < 2:
        return float("nan")
    return 100.0 * roc_auc_score(y, list(scores))


@register("rmse", higher_is_better=False)
def rmse(gold, pred, labels=(), scores=None) -> float:
    pairs = [(float(g), float(p)) for g, p in zip(gold, pred) if p != INVALID]
    if len(pairs) < len(gold):  # an invalid answer counts as the worst error on a 0-5 scale
        pairs += [(0.0, 5.0)] * (len(gold) - len(pairs))
    return math.sqrt(sum((g - p) ** 2 for g, p in pairs) / len(pairs))


@register("pearson")
def pearson(gold, pred, labels=(), scores=None) -> float:
    import numpy as np

    pairs = [(float(g), float(p)) for g, p in zip(gold, pred) if p != INVALID]
    if len(pairs) < 2:
        return float("nan")
    g, p = np.array(pairs).T
    if g.std() == 0 or p.std() == 0:
        return 0.0
    return 100.0 * float(np.corrcoef(g, p)[0, 1])


@register("bleu")
def bleu(gold, pred, labels=(), scores=None) -> float:
    """Corpus BLEU (sacrebleu). A gold item may be a list of references (ParaDetox has up to 3)."""
    import sacrebleu

    refs = [g if isinstance(g, (list, tuple)) else [g] for g in gold]
    width = max(len(r) for r in refs)
    streams = [[r[i] if i < len(r) else r[0] for r in refs] for i in range(width)]
    hyps = ["" if p == INVALID else str(p) for p in pred]
    return float(sacrebleu.corpus_bleu(hyps, streams).score)


@register("rouge_l")
def rouge_l(gold, pred, labels=(), scores=None) -> float:
    """Mean ROUGE-L F-measure (rouge-score), the best over an item's references."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    total = 0.0
    for g, p in zip(gold, pred):
        refs = g if isinstance(g, (list, tuple)) else [g]
        hyp = "" if p == INVALID else str(p)
        total += max(scorer.score(r, hyp)["rougeL"].fmeasure for r in refs)
    return 100.0 * total / len(gold)


@register("hashtag_f1")
def hashtag_f1(gold, pred, labels=(), scores=None) -> float:
    """Mean per-post F1 between the sets of hashtags (case-insensitive)."""
    import re

    def tags(s) -> set[str]:
        return {t.lower() for t in re.findall(r"#\w+", "" if s == INVALID else str(s))}

    total = 0.0
    for g, p in zip(gold, pred):
        gs, ps = tags(g), tags(p)
        hit = len(gs & ps)
        total += 0.0 if not hit else 2 * hit / (len(gs) + len(ps))
    return 100.0 * total / len(gold)


@register("judge")
def judge(gold, pred, labels=(), scores=None) -> float:
    """The LLM-judge score (1-5) is computed by a judge backend, not from gold and predictions."""
    raise ValueError("the judge score needs a judge backend: use somelvlm.evaluate.judge")


def metric_key(m) -> str:
    """How a task metric is named in results: ``f1_of[irony]`` for one averaged over some labels."""
    return m.name + (f"[{','.join(m.labels)}]" if m.labels else "")


def task_metrics(task_name: str, gold: Sequence, pred: Sequence, labels: Sequence[str] = (),
                 scores: Sequence[float] | None = None) -> dict[str, float]:
    """Every metric the task's YAML lists (the judge excepted), for aligned gold and predicted labels
    (or numbers, for ratings). ``labels``: the head's label order; ``scores``: P(last label) per item
    for metrics that rank (AUROC; skipped when None, e.g. answers by generation). The one scoring
    function of the harness, the training recipes and generative evaluation."""
    from somelvlm.taxonomy.registry import get_task

    row: dict[str, float] = {}
    for m in get_task(task_name).metrics:
        if m.name == "judge":
            continue
        if get_metric(m.name).needs_scores:
            if scores is not None:
                row[metric_key(m)] = score(m.name, gold, pred, m.labels or labels, scores)
            continue
        row[metric_key(m)] = score(m.name, gold, pred, m.labels)
    return row


def head_metrics(task_name: str, spec, targets: Sequence, outputs) -> dict[str, float]:
    """``task_metrics`` for a head's raw outputs: ``targets`` are label indices (numbers for ratings),
    ``outputs`` (n, labels) probabilities or (n,) numbers; per-target heads pass each item's own
    target's row."""
    import numpy as np

    outputs = np.asarray(outputs)
    if spec.kind == "regression":
        return task_metrics(task_name, list(targets), [float(np.clip(o, 0, 5)) for o in outputs])
    gold = [spec.labels[t] for t in targets]
    pred = [spec.labels[int(o.argmax())] for o in outputs]
    return task_metrics(task_name, gold, pred, spec.labels, [float(o[-1]) for o in outputs])


def selection_value(task_name: str, row: dict[str, float]) -> float:
    """The number a recipe maximises for a task: its primary metric, or, when that one is lower-is-better
    (RMSE of ratings), its first higher-is-better metric."""
    from somelvlm.taxonomy.registry import get_task

    for m in get_task(task_name).metrics:
        if m.name != "judge" and get_metric(m.name).higher_is_better and metric_key(m) in row:
            return row[metric_key(m)]
    return 0.0
