"""SoMeData: turn real examples into instruction records (ShareGPT / LLaVA conversation format).

Record formatting is kept apart from tokenisation: this module writes plain records; each model's
training recipe tokenises them its own way.

Output (``OUT/``)::

    train.jsonl val.jsonl test.jsonl   one record per line, sorted by (task, id)
    parquet/{split}.parquet            the same records; datasets.load_dataset("parquet", ...)
    stats.md  stats.json               the SoMeLVLM-style table: level, family, sizes, data type
    report.md report.json              every bad input, by file and line; the train / val
                                       examples left out because their post is in a test split

A record::

    {"id": "tweeteval/emotion/train/17", "image": "memotion/images/image_1.jpg",   # only with an image
     "conversations": [{"from": "human", "value": "<image>\\n..."}, {"from": "gpt", "value": "joy"}],
     "task": "emotion", "level": "knowledge_comprehension", "family": "emotion",
     "kind": "classification", "source": "tweeteval", "split": "train", "target": "joy",
     "prompt_index": 2}

``image`` is relative to the data root: point LLaVA's ``--image_folder`` (or LLaMA-Factory's
``media_dir``) at it. The build is atomic (a temporary folder renamed into place) and
deterministic: the same data and options give byte-identical files.

No test post in training: before sampling, every train / val example whose normalised text or image
bytes occur in the same task's test split (any source, SoMeLVLM's published test files included)
is dropped and counted in the report (:mod:`somelvlm.data.leakage`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from somelvlm.atomic import atomic_dir

from somelvlm.data.example import SPLITS, Example
from somelvlm.data.leakage import drop_test_overlap
from somelvlm.data.report import DataReport
from somelvlm.data.sources import load_source
from somelvlm.taxonomy.levels import LEVELS, family_name
from somelvlm.taxonomy.registry import select_tasks
from somelvlm.taxonomy.task import Task

IMAGE_TOKEN = "<image>"
MAX_TEXT_CHARS = 20_000
"""Posts longer than this are reported and left out (no real post is that long)."""


@dataclass
class BuildConfig:
    """Options of ``somelvlm data build``."""

    data_root: Path
    """Folder holding the upstream sources (``tweeteval/``, ``davidson/`` ...): ``--data-root``."""
    out: Path
    """Output folder; replaced atomically when the build succeeds: ``--out``."""
    tasks: list[str] = field(default_factory=list)
    """Task names to build; empty means every task: ``--tasks``."""
    levels: list[str] = field(default_factory=list)
    """Cognitive level ids whose tasks to build: ``--levels``."""
    max_per_task: int | None = None
    """At most this many records per task and split, a deterministic sample: ``--max-per-task``."""

    def __post_init__(self) -> None:
        self.data_root = Path(self.data_root)
        self.out = Path(self.out)
        if not self.data_root.is_dir():
            raise FileNotFoundError(
                f"data root {self.data_root} not found: pass --data-root (or set SOMELVLM_DATA) "
                "to the folder holding tweeteval/, davidson/, ..."
            )
        if self.max_per_task is not None and self.max_per_task < 1:
            raise ValueError(f"--max-per-task must be at least 1, got {self.max_per_task}")


@dataclass
class BuildResult:
    out: Path
    counts: dict[tuple[str, str], int]
    """Records per ``(task, split)``."""
    report: DataReport


def build(config: BuildConfig, progress: Callable[[str], None] | None = None) -> BuildResult:
    """Read every source the chosen tasks need, write SoMeData to ``config.out`` atomically."""
    tasks = {t.name: t for t in select_tasks(config.tasks, config.levels)}
    report = DataReport()
    grouped = _collect(config, tasks, report, progress or (lambda _: None))
    drop_test_overlap(grouped, config.data_root, report)
    records: dict[str, list[dict]] = {s: [] for s in SPLITS}
    counts: dict[tuple[str, str], int] = {}
    has_image: dict[str, bool] = defaultdict(bool)
    for (task_name, split), examples in sorted(grouped.items()):
        task = tasks[task_name]
        examples = _sample(sorted(examples, key=lambda e: e.id), config.max_per_task)
        for i, ex in enumerate(examples):
            records[split].append(to_record(task, ex, prompt_index=i % len(task.prompts)))
            has_image[task_name] |= ex.image is not None
        counts[(task_name, split)] = len(examples)
    with atomic_dir(config.out) as tmp:  # a failed build leaves the previous output intact
        (tmp / "parquet").mkdir()
        for split in SPLITS:
            _write_jsonl(tmp / f"{split}.jsonl", records[split])
            _write_parquet(tmp / "parquet" / f"{split}.parquet", records[split])
        stats = _stats(tasks, counts, has_image)
        (tmp / "stats.json").write_text(json.dumps(stats, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        (tmp / "stats.md").write_text(_stats_markdown(stats), encoding="utf-8")
        (tmp / "report.json").write_text(report.to_json(), encoding="utf-8")
        (tmp / "report.md").write_text(report.to_markdown(), encoding="utf-8")
    return BuildResult(out=config.out, counts=counts, report=report)


def to_record(task: Task, ex: Example, prompt_index: int) -> dict:
    """One instruction record in the conversation format (see the module docstring)."""
    # SoMeLVLM's published test items keep their own prompt, word for word
    prompt = ex.meta.get("prompt") or task.render(prompt_index, ex.text, ex.meta)
    record: dict = {"id": ex.id}
    if ex.image is not None:
        record["image"] = ex.image
        prompt = f"{IMAGE_TOKEN}\n{prompt}"
    record["conversations"] = [
        {"from": "human", "value": prompt},
        {"from": "gpt", "value": task.answer(ex.target)},
    ]
    record.update(
        task=task.name, level=task.level, family=task.family, kind=task.kind, source=ex.source,
        split=ex.split, target=str(ex.target) if task.kind == "classification" else task.answer(ex.target),
        prompt_index=prompt_index % len(task.prompts),
    )
    return record


def _collect(
    config: BuildConfig, tasks: dict[str, Task], report: DataReport, progress: Callable[[str], None]
) -> dict[tuple[str, str], list[Example]]:
    sources = sorted({s.name for t in tasks.values() for s in t.sources})
    grouped: dict[tuple[str, str], list[Example]] = defaultdict(list)
    seen: set[str] = set()
    for source in sources:
        n = 0
        for ex in load_source(source, config.data_root, report):
            task = tasks.get(ex.task)
            if task is None:
                continue
            reason = _invalid(task, ex)
            if reason is None and ex.id in seen:
                reason = "duplicate id"
            if reason is not None:
                report.problem(source, ex.id, None, reason, f"task {ex.task}")
                continue
            seen.add(ex.id)
            grouped[(ex.task, ex.split)].append(ex)
            report.counts[(source, ex.task, ex.split)] += 1
            n += 1
        progress(f"{source}: {n} examples")
    return grouped


def _invalid(task: Task, ex: Example) -> str | None:
    """Why an example cannot become a record of ``task``, or None when it can."""
    if ex.text is not None and len(ex.text) > MAX_TEXT_CHARS:
        return f"text longer than {MAX_TEXT_CHARS} characters"
    if not (ex.text and ex.text.strip()) and ex.image is None:
        return "empty post"
    if task.kind == "classification" and ex.target not in task.labels:
        return "unknown label"
    if task.kind == "regression":
        try:
            value = float(ex.target)
        except (TypeError, ValueError):
            return "target is not a number"
        low, high = task.range or (-math.inf, math.inf)
        if not (low <= value <= high) or math.isnan(value):
            return "target out of range"
    if task.kind == "generation" and not str(ex.target).strip():
        return "empty reference"
    return None


def _sample(examples: list[Example], limit: int | None) -> list[Example]:
    """A deterministic subset of at most ``limit`` examples (by a hash of the id), in id order."""
    if limit is None or len(examples) <= limit:
        return examples
    chosen = sorted(examples, key=lambda e: hashlib.sha1(e.id.encode()).digest())[:limit]
    return sorted(chosen, key=lambda e: e.id)


def _write_jsonl(path: Path, records: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def _write_parquet(path: Path, records: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([
        ("id", pa.string()), ("image", pa.string()),
        ("conversations", pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())]))),
        ("task", pa.string()), ("level", pa.string()), ("family", pa.string()), ("kind", pa.string()),
        ("source", pa.string()), ("split", pa.string()), ("target", pa.string()),
        ("prompt_index", pa.int32()),
    ])
    rows = [{**r, "image": r.get("image")} for r in records]
    table = pa.Table.from_pylist(rows, schema=schema)
    pq.write_table(table, path, compression="zstd")


def _stats(tasks: dict[str, Task], counts: dict[tuple[str, str], int], has_image: dict[str, bool]) -> dict:
    order = {lv.id: lv.order for lv in LEVELS}
    rows = []
    for task in sorted(tasks.values(), key=lambda t: (order[t.level], t.family, t.name)):
        n = {s: counts.get((task.name, s), 0) for s in SPLITS}
        rows.append({
            "level": task.level, "family": task.family, "task": task.name, "kind": task.kind,
            "sources": list(dict.fromkeys(s.name for s in task.sources)), "train": n["train"], "val": n["val"],
            "test": n["test"], "data_type": "multi" if has_image[task.name] else "text",
        })
    totals = Counter()
    for row in rows:
        for s in SPLITS:
            totals[s] += row[s]
    return {"tasks": rows, "totals": dict(totals)}


def _stats_markdown(stats: dict) -> str:
    names = {lv.id: lv.name for lv in LEVELS}
    lines = [
        "# SoMeData build", "",
        "SFT = train records; Eval = val + test records. Data type: `multi` when records carry images.",
        "", "| level | family | task | sources | SFT | Eval (val / test) | data type |",
        "|---|---|---|---|---:|---:|---|",
    ]
    previous = None
    for row in stats["tasks"]:
        level = names[row["level"]] if row["level"] != previous else ""
        previous = row["level"]
        lines.append(
            f"| {level} | {family_name(row['family'])} | {row['task']} | {', '.join(row['sources'])} "
            f"| {row['train']} | {row['val'] + row['test']} ({row['val']} / {row['test']}) | {row['data_type']} |"
        )
    t = stats["totals"]
    lines += ["", f"Total: {t.get('train', 0)} SFT, {t.get('val', 0) + t.get('test', 0)} eval records.", ""]
    return "\n".join(lines)
