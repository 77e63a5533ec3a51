"""Score a model on the real test (or val) splits of its tasks, with each task's own metrics.

TweetEval tasks use the official metrics (macro-F1; F1 of the ironic class for irony; macro-recall
for sentiment; mean F1 of favor and against for stance); other tasks macro-F1 and accuracy (AUROC
for binary meme tasks; RMSE and Pearson for ratings).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

TWEETEVAL_FIVE = ("emotion", "hate", "irony", "offensive", "stance")


def evaluate_model(model, tasks: list[str], data_root: Path, split: str = "test",
                   limit: int | None = None) -> dict:
    """``{"tasks": {task: {metric: value, "n": items}}, "tweeteval_five": mean, ...}``."""
    from somelvlm.evaluate.metrics import get_metric, score
    from somelvlm.taxonomy.registry import get_task
    from somelvlm.data.head_items import cap, load_items

    data = load_items(Path(data_root), tasks)
    results: dict = {}
    for name in tasks:
        items = cap(data[name].get(split, []), limit, seed=0)
        if not items:
            results[name] = {"n": 0, "note": f"no {split} items"}
            continue
        spec = model.specs[name]
        start = time.perf_counter()
        probs = model.predict_proba([it.text for it in items], [name])[name]
        row: dict = {}
        if spec.kind == "regression":
            gold, pred = [it.target for it in items], [float(np.clip(p, 0, 5)) for p in probs]
        else:
            if spec.groups:
                probs = probs[np.arange(len(items)), [it.group for it in items]]
            gold = [spec.labels[it.target] for it in items]
            pred = [spec.labels[int(p.argmax())] for p in probs]
        for m in get_task(name).metrics:
            if m.name == "judge":
                continue
            key = m.name + (f"[{','.join(m.labels)}]" if m.labels else "")
            if get_metric(m.name).needs_scores:  # the score is P(last label): name it the positive class
                row[key] = round(score(m.name, gold, pred, m.labels or spec.labels, list(probs[:, -1])), 2)
            else:
                row[key] = round(score(m.name, gold, pred, m.labels), 2)
        row["n"] = len(items)
        row["seconds"] = round(time.perf_counter() - start, 2)
        results[name] = row
    summary = {"split": split, "tasks": results}
    five = [_primary(name, results[name]) for name in TWEETEVAL_FIVE if name in results and results[name].get("n")]
    if len(five) == len(TWEETEVAL_FIVE):
        summary["tweeteval_five"] = round(float(np.mean(five)), 2)
    return summary


def _primary(task_name: str, row: dict) -> float:
    from somelvlm.taxonomy.registry import get_task

    m = get_task(task_name).primary_metric
    return row[m.name + (f"[{','.join(m.labels)}]" if m.labels else "")]


def to_markdown(summary: dict, title: str = "Evaluation") -> str:
    from somelvlm.taxonomy.levels import LEVELS
    from somelvlm.taxonomy.registry import get_task

    lines = [f"# {title}", "", f"Split: `{summary['split']}`.", "",
             "| level | task | primary metric | value | other metrics | n |", "|---|---|---|---:|---|---:|"]
    names = {lv.id: lv.name for lv in LEVELS}
    for name, row in summary["tasks"].items():
        task = get_task(name)
        if not row.get("n"):
            lines.append(f"| {names[task.level]} | {name} | - | - | {row.get('note', '')} | 0 |")
            continue
        m = task.primary_metric
        key = m.name + (f"[{','.join(m.labels)}]" if m.labels else "")
        others = ", ".join(f"{k} {v}" for k, v in row.items() if k not in (key, "n", "seconds"))
        lines.append(f"| {names[task.level]} | {name} | {key} | {row[key]} | {others} | {row['n']} |")
    if "tweeteval_five" in summary:
        lines += ["", f"TweetEval five-task average (emotion, hate, irony, offensive, stance): "
                      f"**{summary['tweeteval_five']}**"]
    return "\n".join(lines) + "\n"


def write_results(summary: dict, out: Path, title: str = "Evaluation") -> tuple[Path, Path]:
    """``out.json`` and ``out.md``, each written atomically."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = (out.with_suffix(".json"), out.with_suffix(".md"))
    for path, text in zip(paths, (json.dumps(summary, indent=1) + "\n", to_markdown(summary, title))):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return paths
