"""What a classifier head predicts, derived from a task: torch-free, so every layer can name heads.

A ``HeadSpec`` is the output contract of one head: its task, kind, label ids (in class-index
order) and, for per-target heads such as TweetEval stance, the targets (one label distribution
per target). Models produce arrays in this layout; the pipeline formats them.
"""

from __future__ import annotations

from dataclasses import dataclass

STANCE_TARGETS = ("abortion", "atheism", "climate", "feminist", "hillary")
"""TweetEval's five stance targets: the groups of the ``stance`` head, in output order."""


@dataclass(frozen=True)
class HeadSpec:
    """What one head predicts: its task, kind and outputs (label ids, or one number)."""

    task: str
    kind: str
    """``classification`` or ``regression``."""
    labels: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    """For per-target heads (stance): the targets; outputs are ``len(groups) * len(labels)``."""

    @property
    def width(self) -> int:
        if self.kind == "regression":
            return 1
        return len(self.labels) * max(1, len(self.groups))

    @classmethod
    def from_dict(cls, d: dict) -> HeadSpec:
        """From a model config's ``heads`` entry (lists become tuples)."""
        return cls(d["task"], d["kind"], tuple(d.get("labels", ())), tuple(d.get("groups", ())))


def head_spec(task_name: str) -> HeadSpec:
    """The head a task needs (stance gets one distribution per TweetEval target)."""
    from somelvlm.taxonomy.registry import get_task

    task = get_task(task_name)
    if task.kind not in ("classification", "regression"):
        raise ValueError(f"task {task_name} is {task.kind}: the compact model only has classification "
                         "and regression heads")
    groups = STANCE_TARGETS if task_name == "stance" else ()
    return HeadSpec(task_name, task.kind, tuple(task.labels), groups)
