"""The cognitive framework: five Bloom levels, task families, and one YAML file per task."""

from somelvlm.taxonomy.levels import LEVELS, Level, family_name, level
from somelvlm.taxonomy.parser import INVALID, parse_answer
from somelvlm.taxonomy.registry import TASKS, all_tasks, get_task, tasks_by_level
from somelvlm.taxonomy.task import Metric, Task

__all__ = [
    "INVALID", "LEVELS", "Level", "Metric", "TASKS", "Task", "all_tasks", "family_name", "get_task",
    "level", "parse_answer", "tasks_by_level",
]
