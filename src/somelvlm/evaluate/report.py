"""``somelvlm eval`` as a product: several models, any kind, side by side, per cognitive level.

``run_eval(EvalConfig(...))`` scores every model (a compact classifier, an image+text head set, a
generative LVLM or HF VLM, an OpenAI-compatible URL) on the chosen tasks or levels through the
``Pipeline`` (``harness.evaluate_model``) and writes

* ``OUT.json``: every number, per model and task (and per prompt when ``prompt_index`` is ``mean``),
  under ``models``; the first model's ``tasks`` and ``levels`` also at the top level;
* ``OUT.md``: SoMeLVLM's per-level table (tasks grouped by level; one column per model; the
  task's primary metric, or Acc / Acc* / valid share for classification by generation) with the
  published SoMeLVLM numbers beside ours where the task matches, labelled as another model's;
* ``OUT-levels.png`` (a radar of the five levels: each level's mean primary score per model),
  ``OUT-tasks.png`` (per-task bars) and ``OUT.html`` (the tables and both charts in one page).

A level's score is the mean of its tasks' primary scores on a 0-100 higher-is-better scale
(a rating task counts with its Pearson correlation x 100).
"""

from __future__ import annotations

import base64
import html
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

PUBLISHED = {
    "detoxify": {"bleu": 27.13, "rouge_l": 47.76},
}
"""Numbers SoMeLVLM (Zhang et al. 2024; InstructBLIP Vicuna-7b) reports on the matching task, shown
beside ours as another model's (their test sets differ from ours where the data differs)."""
PUBLISHED_NAME = "SoMeLVLM (published, InstructBLIP-7b)"


@dataclass
class EvalConfig:
    """What ``somelvlm eval`` scores and where it writes."""

    model: list[str] = field(default_factory=lambda: ["some-mini"])
    """Models to compare: shipped names, folders or OpenAI-compatible URLs (``http://host/v1#model``)."""
    tasks: list[str] = field(default_factory=list)
    """Task names (default: every head of the first classifier; every task when it is a generator)."""
    level: list[str] = field(default_factory=list)
    """Cognitive level ids; their tasks are added to ``tasks``."""
    split: Literal["test", "val"] = "test"
    """The split to score."""
    data_root: Path | None = None
    """Folder with the upstream sources [env SOMELVLM_DATA, else ../shared/data]."""
    out: Path = Path("out/eval/results")
    """Writes OUT.json, OUT.md, OUT.html and the charts OUT-levels.png, OUT-tasks.png."""
    limit: int | None = None
    """At most N items per task (a fixed sample, the same for every model)."""
    prompt_index: str = "0"
    """For answers by generation: which of the task's five prompts, or ``mean`` (the mean over all five)."""
    runtime: Literal["auto", "onnx", "torch", "torch-int8"] = "auto"
    """Encoder runtime of compact classifiers (torch-int8: faster, but answers depend on batch neighbours)."""
    charts: bool = True
    """Draw the PNG charts and the HTML report (needs matplotlib)."""

    def __post_init__(self) -> None:
        if isinstance(self.model, str):
            self.model = [self.model]
        if self.split not in ("test", "val"):
            raise ValueError(f"--split must be test or val, got {self.split!r}")
        if self.prompt_index != "mean" and not str(self.prompt_index).isdigit():
            raise ValueError(f"--prompt-index must be a number (0-4) or 'mean', got {self.prompt_index!r}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"--limit must be at least 1, got {self.limit}")


def run_eval(config: EvalConfig, data_root: Path, progress: bool = True) -> dict:
    """Evaluate every model of ``config``; returns the results dict written to ``OUT.json``."""
    from somelvlm.evaluate.harness import evaluate_model
    from somelvlm.pipeline import Pipeline
    from somelvlm.taxonomy.registry import select_tasks

    named = [t.name for t in select_tasks(config.tasks, config.level)] if (config.tasks or config.level) else None
    pipelines = [Pipeline(m, named, runtime=config.runtime, multimodal=False, strict=False, withheld=True)
                 for m in config.model]  # eval scores the heads withheld from analyze too
    tasks = named or pipelines[0].tasks or [t.name for t in select_tasks()]  # a generator serves every task
    if not named:
        for pipe in pipelines:
            pipe.choice = pipe.plan(tasks)
    prompts = list(range(5)) if config.prompt_index == "mean" else [int(config.prompt_index)]
    bar = _Progress(progress, len(pipelines) * len(tasks))
    results = {"split": config.split, "limit": config.limit, "prompt_index": config.prompt_index,
               "task_order": tasks, "models": {}}
    with bar:
        for pipe in pipelines:
            per_prompt = []
            runnable = [t for t in tasks if t in pipe.tasks]
            for p in prompts:
                start = time.perf_counter()
                per_prompt.append(evaluate_model(pipe, runnable, data_root, config.split, config.limit,
                                                 prompt_index=p, progress=bar.callback(pipe.name, len(prompts))))
                per_prompt[-1]["seconds"] = round(time.perf_counter() - start, 2)
                if all(t in pipe.head_tasks for t in runnable):
                    break  # heads do not read prompts: one pass is the answer for every prompt
            summary = _mean_over_prompts(per_prompt)
            for t in tasks:
                if t not in runnable:
                    summary["tasks"][t] = {"n": 0, "note": pipe.choice.skipped.get(t, f"{pipe.name} does not serve it")}
                    bar.advance(1)
            summary["tasks"] = {t: summary["tasks"][t] for t in tasks}
            results["models"][pipe.name] = summary
    for summary in results["models"].values():
        summary["levels"] = level_scores(summary["tasks"])
    first = next(iter(results["models"].values()))
    results["tasks"], results["levels"] = first["tasks"], first["levels"]  # the first model's, at the top
    if "tweeteval_five" in first:
        results["tweeteval_five"] = first["tweeteval_five"]
    return results


def write_report(results: dict, out: Path, charts: bool = True) -> list[Path]:
    """``OUT.json``, ``OUT.md`` and (with ``charts``) the two PNG charts and ``OUT.html``."""
    from somelvlm.atomic import atomic_write_text

    out = Path(out)
    written = [atomic_write_text(out.with_suffix(".json"), json.dumps(results, indent=1) + "\n"),
               atomic_write_text(out.with_suffix(".md"), to_markdown(results))]
    if charts:
        radar = out.with_name(out.name + "-levels.png")
        bars = out.with_name(out.name + "-tasks.png")
        draw_radar(results, radar)
        draw_bars(results, bars)
        written += [radar, bars, atomic_write_text(out.with_suffix(".html"), to_html(results, radar, bars))]
    return written


# ----- scores ---------------------------------------------------------------------------------------
def primary_score(task_name: str, row: dict) -> float | None:
    """A task's headline number on a 0-100 higher-is-better scale: the primary metric (Pearson x 100 for
    ratings; Acc for classification by generation), None when the task was not scored."""
    from somelvlm.evaluate.metrics import metric_key, selection_value
    from somelvlm.taxonomy.registry import get_task

    if not row.get("n"):
        return None
    task = get_task(task_name)
    if row.get("by") == "generation" and task.kind == "classification":
        return row.get("accuracy")
    if task.kind == "regression":
        value = selection_value(task_name, row)
        return value * 100 if abs(value) <= 1 else value
    key = metric_key(task.primary_metric)
    return row.get(key, selection_value(task_name, row))


def level_scores(task_rows: dict) -> dict[str, float | None]:
    """``level id -> mean primary score`` of the level's scored tasks (None: none scored)."""
    from somelvlm.taxonomy.levels import LEVELS
    from somelvlm.taxonomy.registry import get_task

    out = {}
    for lv in LEVELS:
        values = [primary_score(t, r) for t, r in task_rows.items() if get_task(t).level == lv.id]
        values = [v for v in values if v is not None and not np.isnan(v)]
        out[lv.id] = round(float(np.mean(values)), 2) if values else None
    return out


def _mean_over_prompts(summaries: list[dict]) -> dict:
    if len(summaries) == 1:
        return summaries[0]
    merged = dict(summaries[0])
    merged["tasks"] = {}
    for task, first in summaries[0]["tasks"].items():
        rows = [s["tasks"][task] for s in summaries]
        merged["tasks"][task] = {k: (round(float(np.mean([r[k] for r in rows])), 2) if isinstance(v, (int, float))
                                     and not isinstance(v, bool) and k != "n" else v)
                                 for k, v in first.items()}
        merged["tasks"][task]["per_prompt"] = [primary_score(task, r) for r in rows]
    return merged


# ----- markdown ---------------------------------------------------------------------------------------
def _cell(task_name: str, row: dict | None) -> str:
    from somelvlm.taxonomy.registry import get_task

    if not row or not row.get("n"):
        return "-"
    if row.get("by") == "generation" and get_task(task_name).kind == "classification":
        return f"{row['accuracy']:.1f} / {row['acc_star']:.1f} / {row['valid_share']:.0f}%"
    value = primary_score(task_name, row)
    return "-" if value is None else f"{value:.1f}"


def to_markdown(results: dict) -> str:
    """SoMeLVLM's per-level table: tasks grouped by level, one column per model, level means."""
    from somelvlm.evaluate.metrics import metric_key
    from somelvlm.taxonomy.levels import LEVELS
    from somelvlm.taxonomy.registry import get_task

    models = list(results["models"])
    published = any(t in PUBLISHED for t in results["task_order"])
    head = ["level", "task", "metric"] + models + ([PUBLISHED_NAME] if published else [])
    lines = [f"# Evaluation on `{results['split']}`", "",
             f"Items per task: {results.get('limit') or 'all'}; prompt: {results.get('prompt_index')}. "
             "Cells are the task's primary metric (0-100, the `metric` column) for heads; classification "
             "answered by generation shows Acc / Acc* / valid share, and its Acc is the score that counts (as in "
             "SoMeLVLM's tables). A level's row is the mean of its tasks' scores.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * 2 + "---|" + "---:|" * (len(head) - 3)]
    for lv in LEVELS:
        names = [t for t in results["task_order"] if get_task(t).level == lv.id]
        if not names:
            continue
        for name in names:
            task = get_task(name)
            cells = [_cell(name, results["models"][m]["tasks"].get(name)) for m in models]
            metric = metric_key(task.primary_metric)
            pub = [", ".join(f"{k} {v}" for k, v in PUBLISHED.get(name, {}).items()) or "-"] if published else []
            lines.append(f"| {lv.name} | {name} | {metric} | " + " | ".join(cells + pub) + " |")
        means = [results["models"][m]["levels"].get(lv.id) for m in models]
        lines.append(f"| **{lv.name}** | **mean** | | " + " | ".join("-" if v is None else f"**{v:.1f}**"
                                                                     for v in means) + (" | " if published else "") + " |")
    for m in models:
        if "tweeteval_five" in results["models"][m]:
            lines.append(f"\nTweetEval five-task average of {m}: **{results['models'][m]['tweeteval_five']}**")
    return "\n".join(lines) + "\n"


# ----- charts -----------------------------------------------------------------------------------------
def draw_radar(results: dict, path: Path) -> Path:
    """A radar of the five levels, one polygon per model (levels without a score count as 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from somelvlm.taxonomy.levels import LEVELS

    names = [lv.name for lv in LEVELS]
    angles = np.linspace(0, 2 * np.pi, len(names), endpoint=False).tolist()
    fig, ax = plt.subplots(figsize=(5.5, 5.5), subplot_kw={"polar": True})
    for model, summary in results["models"].items():
        values = [summary["levels"].get(lv.id) or 0.0 for lv in LEVELS]
        ax.plot(angles + angles[:1], values + values[:1], label=model)
        ax.fill(angles + angles[:1], values + values[:1], alpha=0.15)
    ax.set_xticks(angles)
    ax.set_xticklabels(names, fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_title("Mean primary score per cognitive level", fontsize=10)
    ax.legend(loc="lower right", fontsize=7, bbox_to_anchor=(1.15, -0.1))
    return _save(fig, path)


def draw_bars(results: dict, path: Path) -> Path:
    """Per-task bars of the primary score, grouped by task, one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks, models = results["task_order"], list(results["models"])
    width = 0.8 / max(1, len(models))
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(tasks) * max(1, len(models)) + 2), 4))
    x = np.arange(len(tasks))
    for j, model in enumerate(models):
        rows = results["models"][model]["tasks"]
        values = [primary_score(t, rows.get(t, {})) or 0.0 for t in tasks]
        ax.bar(x + j * width, values, width, label=model)
    ax.set_xticks(x + width * (len(models) - 1) / 2)
    ax.set_xticklabels(tasks, rotation=60, ha="right", fontsize=7)
    ax.set_ylabel("primary score (0-100)")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    import io

    import matplotlib.pyplot as plt

    from somelvlm.atomic import atomic_write_bytes

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def to_html(results: dict, radar: Path, bars: Path) -> str:
    """One self-contained page: the per-level table and both charts (inlined, no network)."""
    def img(p: Path) -> str:
        return f'<img alt="{p.name}" src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}">'

    rows = []
    for line in to_markdown(results).splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells = [html.escape(c.strip().strip("*")) for c in line.strip("|").split("|")]
            tag = "th" if not rows else "td"
            rows.append("<tr>" + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>")
    return ("<!doctype html><meta charset='utf-8'><title>somelvlm evaluation</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}</style>"
            f"<h1>Evaluation on {html.escape(results['split'])}</h1>{img(radar)}{img(bars)}"
            f"<table>{''.join(rows)}</table>\n")


class _Progress:
    """A rich progress bar with ETA over (model, task) units; a no-op when disabled."""

    def __init__(self, enabled: bool, total: int) -> None:
        self.bar = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), console=Console(stderr=True))
            self.task = self.bar.add_task("eval", total=total)

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()

    def advance(self, n: float) -> None:
        if self.bar is not None:
            self.bar.advance(self.task, n)

    def callback(self, model: str, prompts: int):
        """``progress(task, done, total)`` for ``evaluate_model``: advances after each finished task."""
        def on_task(task: str | None, done: int, total: int) -> None:
            if done:
                self.advance(1 / prompts)
            if self.bar is not None and task is not None:
                self.bar.update(self.task, description=f"{model}: {task}")
        return on_task
