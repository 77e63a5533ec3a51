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

from somelvlm.posts import Post

TWEETEVAL_FIVE = ("emotion", "hate", "irony", "offensive", "stance")


def head_outputs(pipeline, task: str, items: list) -> np.ndarray:
    """The head's outputs for head items (``data.head_items.Item``) through the pipeline: (n, labels)
    probabilities, each item's own target's row for a per-target head, or (n,) ratings."""
    probs = pipeline.head_probs([Post(id=str(i), text=it.text) for i, it in enumerate(items)], task)
    if pipeline.spec(task).groups:
        probs = probs[np.arange(len(items)), [it.group for it in items]]
    return probs


def evaluate_model(model, tasks: list[str], data_root: Path, split: str = "test",
                   limit: int | None = None, *, prompt_index: int = 0, progress=None) -> dict:
    """``{"tasks": {task: {metric: value, "n": items}}, "tweeteval_five": mean, ...}``.

    ``model``: a ``Pipeline``, or anything ``Pipeline`` takes as its model (a loaded classifier or
    generator, a name, a folder, a URL). Tasks with a head are scored on the head's output; the others
    are asked of the generator with prompt ``prompt_index`` and scored on the parsed answers (plus
    Acc, Acc* and valid share for classification). ``progress(task, done, total)`` is called per task.
    """
    from somelvlm.data.head_items import cap, load_items
    from somelvlm.evaluate.metrics import head_metrics
    from somelvlm.pipeline import Pipeline

    pipeline = model if isinstance(model, Pipeline) else Pipeline(model, tasks, multimodal=False, withheld=True)
    heads = set(pipeline.head_tasks)
    head_tasks = [t for t in tasks if t in heads]
    data = load_items(Path(data_root), head_tasks)
    results: dict = {}
    for n_done, name in enumerate(tasks):
        if progress is not None:
            progress(name, n_done, len(tasks))
        start = time.perf_counter()
        if name not in head_tasks:
            results[name] = _evaluate_by_generation(pipeline, name, Path(data_root), split, limit, prompt_index)
            results[name]["seconds"] = round(time.perf_counter() - start, 2)
            continue
        items = cap(data[name].get(split, []), limit, seed=0)
        if not items:
            results[name] = {"n": 0, "note": f"no {split} items"}
            continue
        spec = pipeline.spec(name)
        probs = head_outputs(pipeline, name, items)
        row = {k: round(v, 2) for k, v in head_metrics(name, spec, [it.target for it in items], probs).items()}
        row["n"] = len(items)
        row["seconds"] = round(time.perf_counter() - start, 2)
        results[name] = row
    if progress is not None:
        progress(None, len(tasks), len(tasks))
    summary = {"split": split, "model": pipeline.name, "tasks": results}
    if pipeline.generation_runtime:
        summary["generation_runtime"] = pipeline.generation_runtime
    five = [_primary(name, results[name]) for name in TWEETEVAL_FIVE if name in results and results[name].get("n")]
    if len(five) == len(TWEETEVAL_FIVE):
        summary["tweeteval_five"] = round(float(np.mean(five)), 2)
    return summary


def _evaluate_by_generation(pipeline, name: str, data_root: Path, split: str, limit: int | None,
                            prompt_index: int) -> dict:
    """Score a task answered by the generator: parsed labels (Acc, Acc*, valid share and the task's
    metrics, an invalid answer counting as wrong) or texts (BLEU, ROUGE-L, hashtag F1 vs references)."""
    from somelvlm.data.head_items import cap
    from somelvlm.evaluate.generative import score_task
    from somelvlm.pipeline import _prompt
    from somelvlm.taxonomy.registry import get_task

    task = get_task(name)
    examples = cap(_task_examples(name, data_root, split), limit, seed=0)
    posts = [Post(id=str(i), text=ex.text, meta=dict(ex.meta) or None) for i, (ex, _) in enumerate(examples)]
    gold = [g for _, g in examples]
    if not posts:
        return {"n": 0, "note": f"no {split} items"}
    answers, errors = _answers(pipeline, name, posts, prompt_index)
    prompts = [_prompt(task, prompt_index, p) for p in posts]
    records = [{"references": g, "prompt": q} if task.kind == "generation" else {"target": g, "prompt": q}
               for g, q in zip(gold, prompts)]
    row = {k: round(v, 2) if isinstance(v, float) else v for k, v in score_task(name, records, answers).items()}
    return {**row, "by": "generation", **({"errors": errors} if errors else {})}


GENERATION_CHUNK = 64
"""Posts handed to the pipeline at once: it batches them by prompt length (a failed chunk is retried post by post)."""


def _answers(pipeline, name: str, posts: list[Post], prompt_index: int) -> tuple[list[str], list[dict]]:
    """Raw answers per post, batch by batch; a batch the model fails on is retried post by post, and a
    post it still fails on gets an empty answer (invalid) and an error record ``{"id", "error"}``."""
    answers: list[str] = []
    errors: list[dict] = []
    step = max(GENERATION_CHUNK, pipeline.batch_size)
    for start in range(0, len(posts), step):
        chunk = posts[start:start + step]
        try:
            answers += [a["answer"] for a in pipeline.generate([(p, name) for p in chunk], prompt_index=prompt_index)]
            continue
        except Exception:  # noqa: BLE001 - one bad item must not sink the evaluation
            pass
        for post in chunk:
            try:
                answers.append(pipeline.generate([(post, name)], prompt_index=prompt_index)[0]["answer"])
            except Exception as err:  # noqa: BLE001 - recorded, the evaluation goes on
                answers.append("")
                errors.append({"id": post.id, "error": {"reason": "model error", "message": f"{type(err).__name__}: {err}"}})
    return answers, errors


def _task_examples(task_name: str, data_root: Path, split: str) -> list[tuple]:
    """``(example, gold)`` of a task's split from every source it names, SoMeLVLM's published test files
    included: gold is the label (classification), the number (ratings) or every reference (generation)."""
    from somelvlm.data.report import DataReport
    from somelvlm.data.sources import load_source
    from somelvlm.taxonomy.registry import get_task

    task = get_task(task_name)
    out = []
    for source in sorted({s.name for s in task.sources}):
        for ex in load_source(source, data_root, DataReport()):
            if ex.task != task_name or ex.split != split or not (ex.text or "").strip():
                continue
            if task.kind == "generation":
                gold = json.loads(ex.meta["references"]) if ex.meta.get("references") else [str(ex.target)]
            elif task.kind == "regression":
                gold = float(ex.target)
            elif ex.target in task.labels:
                gold = ex.target
            else:
                continue
            out.append((ex, gold))
    return out


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
    from somelvlm.atomic import atomic_write_text

    for path, text in zip(paths, (json.dumps(summary, indent=1) + "\n", to_markdown(summary, title))):
        atomic_write_text(path, text)
    return paths
