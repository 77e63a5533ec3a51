"""Training items for the compact model's heads, read from the real source adapters.

An item is ``(text, target, group)``: the post's text (a meme's written text for image posts),
the label index or number, and for per-target heads (stance) the target's index.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from somelvlm.data.report import DataReport
from somelvlm.data.sources import load_source
from somelvlm.taxonomy.heads import STANCE_TARGETS, HeadSpec, head_spec  # noqa: F401 - head_spec re-exported
from somelvlm.taxonomy.registry import get_task

TRAIN_FROM_VAL = {"sentiment"}
"""Tasks whose upstream train text is missing: train on 80% of val (by a stable hash of the id),
select the model on the other 20%; the test split stays untouched."""


@dataclass(frozen=True, slots=True)
class Item:
    text: str
    target: int | float
    group: int = -1


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
    specs = {t: head_spec(t) for t in tasks}
    sources = sorted({s.name for t in tasks for s in get_task(t).sources} - {"somelvlm_testset"})
    out: dict[str, dict[str, list[Item]]] = {t: defaultdict(list) for t in tasks}
    for source in sources:
        for ex in load_source(source, Path(data_root), report):
            spec = specs.get(ex.task)
            if spec is None or not (ex.text and ex.text.strip()):
                continue
            if spec.kind == "classification":
                if ex.target not in spec.labels:
                    continue
                target: int | float = spec.labels.index(ex.target)
            else:
                target = float(ex.target)
            group = stance_group(ex.meta) if spec.groups else -1
            if spec.groups and group < 0:
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
