"""Our classification tasks as lm-evaluation-harness tasks, over a SoMeData build's Parquet files.

``export_lm_eval(out_dir, somedata)`` writes, for every classification task with test records in
the build, ``OUT_DIR/somelvlm_<task>.yaml``: a ``multiple_choice`` task (log-likelihood of each
label's display name after the record's own prompt, the way lm-eval scores SST-2) whose documents
are the build's ``parquet/test.parquet`` (and ``val.parquet`` for few-shot examples) filtered to the
task's rows by the Parquet reader. One group per cognitive level (``somelvlm_<level>``, mean acc of
its tasks) and ``somelvlm`` over the levels. Then::

    lm_eval --model hf --model_args pretrained=HuggingFaceTB/SmolLM2-135M-Instruct \\
        --include_path OUT_DIR --tasks somelvlm_knowledge_comprehension

Prompts are the records' own (SoMeData rotates a task's five templates over its records; SoMeLVLM's
published test items keep their published prompt). Image records are scored on their text prompt
(lm-eval is text-only; the ``<image>`` marker is dropped). The data paths are absolute: move the
build and export again. Published prompts that offer ``[true, false]`` are still scored over the
label names, as every record of the task is.

>>> from somelvlm.taxonomy import get_task
>>> task_config(get_task("hate"), Path("/data/somedata"), has_val=True)["doc_to_choice"]
['not hate', 'hate']
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import yaml

from somelvlm.taxonomy.levels import LEVELS
from somelvlm.taxonomy.registry import all_tasks
from somelvlm.taxonomy.task import Task, display_label

PREFIX = "somelvlm"
VERSION = 1.0
_PROMPT = "{{ conversations[0]['value'] | replace('<image>\\n', '') | trim }}\nAnswer:"


def task_name(task: Task) -> str:
    """The lm-eval name of one of our tasks: ``somelvlm_hate``."""
    return f"{PREFIX}_{task.name}"


def task_config(task: Task, somedata: Path, has_val: bool) -> dict:
    """One lm-eval task config (the YAML's content) for a classification ``task``."""
    if task.kind != "classification":
        raise ValueError(f"task {task.name} is {task.kind}: only classification tasks export to lm-eval")
    parquet = Path(somedata).resolve() / "parquet"
    files = {"test": str(parquet / "test.parquet")}
    if has_val:
        files["validation"] = str(parquet / "val.parquet")
    labels = list(task.labels)
    config = {
        "task": task_name(task),
        "tag": [PREFIX],
        "dataset_path": "parquet",
        "dataset_kwargs": {"data_files": files, "filters": [["task", "==", task.name]]},
        "test_split": "test",
        "output_type": "multiple_choice",
        "doc_to_text": _PROMPT,
        "doc_to_choice": [display_label(lab) for lab in labels],
        "doc_to_target": "{{ " + json.dumps(labels) + ".index(target) }}",
        "target_delimiter": " ",
        "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True},
                        {"metric": "acc_norm", "aggregation": "mean", "higher_is_better": True}],
        "metadata": {"version": VERSION, "level": task.level, "family": task.family,
                     "description": task.description},
    }
    if has_val:
        config["validation_split"] = "validation"
        config["fewshot_split"] = "validation"
    return config


def group_config(name: str, members: list[str]) -> dict:
    """An lm-eval group: the mean accuracy of its member tasks (or groups)."""
    return {"group": name, "task": members,
            "aggregate_metric_list": [{"metric": "acc", "aggregation": "mean", "weight_by_size": False}],
            "metadata": {"version": VERSION}}


def export_lm_eval(out_dir: Path, somedata: Path, tasks: list[str] | None = None) -> list[Path]:
    """Write lm-eval task and group YAMLs for our classification tasks to ``out_dir``; returns the
    files written. ``somedata`` is a SoMeData build folder (``somelvlm data build``); tasks without
    test records there are left out. ``tasks`` limits the export to those names."""
    somedata = Path(somedata)
    counts = _record_counts(somedata)
    chosen = [t for t in all_tasks() if t.kind == "classification" and (not tasks or t.name in tasks)
              and counts.get((t.name, "test"), 0) > 0]
    if not chosen:
        raise ValueError(f"{somedata}: no test records of the classification tasks asked for "
                         f"({', '.join(tasks) if tasks else 'all'}); build SoMeData first (somelvlm data build)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    by_level: dict[str, list[str]] = defaultdict(list)
    for task in chosen:
        config = task_config(task, somedata, has_val=counts.get((task.name, "val"), 0) > 0)
        written.append(_write_yaml(out_dir / f"{task_name(task)}.yaml", config))
        by_level[task.level].append(task_name(task))
    levels = [lv.id for lv in LEVELS if lv.id in by_level]
    for level in levels:
        written.append(_write_yaml(out_dir / f"_{PREFIX}_{level}.yaml",
                                   group_config(f"{PREFIX}_{level}", by_level[level])))
    written.append(_write_yaml(out_dir / f"_{PREFIX}.yaml",
                               group_config(PREFIX, [f"{PREFIX}_{lv}" for lv in levels])))
    return written


def _record_counts(somedata: Path) -> dict[tuple[str, str], int]:
    """Records per (task, split) of a build, from its ``stats.json``."""
    stats = somedata / "stats.json"
    if not (somedata / "parquet" / "test.parquet").is_file() or not stats.is_file():
        raise FileNotFoundError(f"{somedata} is not a SoMeData build (no parquet/test.parquet or stats.json): "
                                "run `somelvlm data build --out DIR` and pass DIR")
    rows = json.loads(stats.read_text(encoding="utf-8"))["tasks"]
    return {(r["task"], split): int(r[split]) for r in rows for split in ("train", "val", "test")}


def _write_yaml(path: Path, config: dict) -> Path:
    header = "# written by somelvlm (somelvlm.taxonomy.export_lm_eval); run with lm_eval --include_path <this folder>\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True, width=120), encoding="utf-8")
    tmp.replace(path)
    return path
