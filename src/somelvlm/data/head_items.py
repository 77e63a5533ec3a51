"""Items for the compact model's heads (training, selection and scoring), read from the real
source adapters.

An item is ``(text, target, group)``: the post's text (a meme's written text for image posts),
the label index or number, and for per-target tasks (stance) the target's index in ``groups_of``.
Only classification and rating tasks have items (``head_task`` names the others' kind).
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from somelvlm.data.report import DataReport
from somelvlm.data.sources import load_source
from somelvlm.taxonomy.registry import get_task

STANCE_TARGETS = ("abortion", "atheism", "climate", "feminist", "hillary")
"""TweetEval's stance targets: ``stance`` items carry the index of theirs as ``group``."""

TRAIN_FROM_VAL = {"sentiment"}
"""Tasks whose upstream train text is missing: train on 80% of val (by a stable hash of the id),
select the model on the other 20%; the test split stays untouched."""


@dataclass(frozen=True, slots=True)
class Item:
    """One post of a head's task: its text, the label index (or rating), the target's index."""

    text: str
    target: int | float
    group: int = -1


def head_task(task_name: str):
    """The task, if a head can predict it (classification or regression); else a ValueError."""
    task = get_task(task_name)
    if task.kind not in ("classification", "regression"):
        raise ValueError(f"task {task_name} is {task.kind}: the compact model only has classification "
                         "and regression heads")
    return task


def groups_of(task_name: str) -> tuple[str, ...]:
    """The targets a per-target task is split by (stance: ``STANCE_TARGETS``), else ``()``."""
    return STANCE_TARGETS if task_name == "stance" else ()


def stance_group(meta: dict) -> int:
    topic = str(meta.get("target", "")).lower()
    for i, name in enumerate(STANCE_TARGETS):
        if name in topic:
            return i
    return -1


def load_items(data_root: Path, tasks: list[str], report: DataReport | None = None
               ) -> dict[str, dict[str, list[Item]]]:
    """``task -> split -> items`` for ``tasks`` from every source those tasks name."""
    report = report or DataReport()
    kinds = {t: head_task(t).kind for t in tasks}
    label_index = {t: {label: i for i, label in enumerate(get_task(t).labels)} for t in tasks}
    sources = sorted({s.name for t in tasks for s in get_task(t).sources} - {"somelvlm_testset"})
    out: dict[str, dict[str, list[Item]]] = {t: defaultdict(list) for t in tasks}
    for source in sources:
        for ex in load_source(source, Path(data_root), report):
            kind = kinds.get(ex.task)
            if kind is None or not (ex.text and ex.text.strip()):
                continue
            if kind == "classification":
                if ex.target not in label_index[ex.task]:
                    continue
                target: int | float = label_index[ex.task][ex.target]
            else:
                target = float(ex.target)
            per_target = bool(groups_of(ex.task))
            group = stance_group(ex.meta) if per_target else -1
            if per_target and group < 0:
                continue
            split = ex.split
            if ex.task in TRAIN_FROM_VAL and split == "val":
                split = "val" if _unit(ex.id) < 0.2 else "train"
            out[ex.task][split].append(Item(ex.text.strip(), target, group))
    return {t: dict(v) for t, v in out.items()}


def _unit(key: str) -> float:
    return int.from_bytes(hashlib.sha1(key.encode()).digest()[:8], "big") / 2**64


def cap(items: list[Item], limit: int | None, seed: int) -> list[Item]:
    """A random subset of at most ``limit`` items (a different one per seed / epoch)."""
    if limit is None or len(items) <= limit:
        return list(items)
    return random.Random(seed).sample(items, limit)
