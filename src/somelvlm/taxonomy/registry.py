"""Tasks by name, loaded lazily from ``tasks/*.yaml`` (the file stem is the task name)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from somelvlm.registry import unknown
from somelvlm.taxonomy.levels import LEVELS
from somelvlm.taxonomy.task import Task

TASK_DIR = Path(__file__).with_name("tasks")


class TaskRegistry:
    """Knows every task file; parses one only when it is asked for."""

    def __init__(self, directory: Path = TASK_DIR) -> None:
        self.directory = directory

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.directory.glob("*.yaml"))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and (self.directory / f"{name}.yaml").is_file()

    def __iter__(self):
        return iter(self.names())

    def get(self, name: str) -> Task:
        if name not in self:
            raise unknown("task", name, self.names())
        return _load(self.directory / f"{name}.yaml")


@cache
def _load(path: Path) -> Task:
    return Task.from_yaml(path)


TASKS = TaskRegistry()


def get_task(name: str) -> Task:
    """The task called ``name``; an unknown name fails listing the closest names."""
    return TASKS.get(name)


def all_tasks() -> list[Task]:
    """Every task, ordered by cognitive level, then family, then name."""
    order = {lv.id: lv.order for lv in LEVELS}
    return sorted((TASKS.get(n) for n in TASKS.names()), key=lambda t: (order[t.level], t.family, t.name))


def tasks_by_level() -> dict[str, list[Task]]:
    """``level id -> tasks`` for all five levels, in level order (empty levels kept)."""
    grouped: dict[str, list[Task]] = {lv.id: [] for lv in LEVELS}
    for task in all_tasks():
        grouped[task.level].append(task)
    return grouped


def select_tasks(names: list[str] | None = None, levels: list[str] | None = None) -> list[Task]:
    """Tasks named in ``names`` and/or belonging to ``levels``; everything when both are empty."""
    from somelvlm.taxonomy.levels import level as check_level

    if not names and not levels:
        return all_tasks()
    chosen = {get_task(n).name for n in names or []}
    for lv in levels or []:
        check_level(lv)
        chosen |= {t.name for t in all_tasks() if t.level == lv}
    return [t for t in all_tasks() if t.name in chosen]
