"""Bloom's five cognitive levels as SoMeLVLM uses them, read from ``levels.yaml``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from somelvlm.registry import unknown

_FILE = Path(__file__).with_name("levels.yaml")


@dataclass(frozen=True, slots=True)
class Level:
    """One cognitive level: a stable id, its display name and what it asks of a model."""

    id: str
    name: str
    description: str
    order: int
    """0 for Knowledge & Comprehension up to 4 for Creation."""


@cache
def _load() -> tuple[tuple[Level, ...], dict[str, str]]:
    data = yaml.safe_load(_FILE.read_text(encoding="utf-8"))
    levels = tuple(
        Level(id=item["id"], name=item["name"], description=item["description"], order=i)
        for i, item in enumerate(data["levels"])
    )
    return levels, dict(data.get("families", {}))


class _Levels:
    """Ordered, lazily loaded view of the five levels."""

    def __iter__(self):
        return iter(_load()[0])

    def __len__(self) -> int:
        return len(_load()[0])

    def ids(self) -> list[str]:
        return [lv.id for lv in self]


LEVELS = _Levels()


def level(level_id: str) -> Level:
    """The level with this id; an unknown id fails naming the closest ones."""
    for lv in LEVELS:
        if lv.id == level_id:
            return lv
    raise unknown("cognitive level", level_id, LEVELS.ids())


def family_name(family_id: str) -> str:
    """Display name of a task family (``hate_toxicity`` -> ``Hate speech & toxicity``)."""
    families = _load()[1]
    if family_id not in families:
        raise unknown("task family", family_id, families)
    return families[family_id]


def family_ids() -> list[str]:
    return list(_load()[1])
