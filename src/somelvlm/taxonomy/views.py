"""How tasks look to a person (rich tables) and to a program (JSON)."""

from __future__ import annotations

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from somelvlm.taxonomy.levels import LEVELS, family_name
from somelvlm.taxonomy.task import Task, display_label


def _metric_text(task: Task) -> str:
    m = task.primary_metric
    return f"{m.name}[{', '.join(m.labels)}]" if m.labels else m.name


def _answers_text(task: Task) -> str:
    if task.kind == "classification":
        return ", ".join(task.labels)
    if task.kind == "regression":
        return f"number {task.range[0]:g}..{task.range[1]:g}" if task.range else "number"
    return "free text"


def tasks_table(tasks: list[Task]) -> Table:
    """One row per task, one section per cognitive level."""
    table = Table(title=f"{len(tasks)} tasks of the cognitive framework", show_lines=False)
    for col in ("level", "family", "task", "kind", "modality", "answers", "metric", "sources"):
        table.add_column(col, overflow="fold")
    for lv in LEVELS:
        members = [t for t in tasks if t.level == lv.id]
        if not members:
            continue
        for i, t in enumerate(members):
            table.add_row(
                lv.name if i == 0 else "", family_name(t.family), f"[bold]{t.name}[/]", t.kind, t.modality,
                _answers_text(t), _metric_text(t), ", ".join(s.name for s in t.sources),
            )
        table.add_section()
    return table


def task_panel(task: Task) -> Panel:
    """Everything about one task, with its prompts rendered on an example post."""
    level = next(lv for lv in LEVELS if lv.id == task.level)
    head = Table.grid(padding=(0, 2))
    head.add_row("level", level.name)
    head.add_row("family", family_name(task.family))
    head.add_row("kind / modality", f"{task.kind} / {task.modality}")
    if task.genre or task.topic:
        head.add_row("posts", ", ".join(filter(None, [task.genre and f"genre {task.genre}",
                                                      task.topic and f"topic-bound: {task.topic}"])))
    head.add_row("metrics", ", ".join(m.name + (f"[{', '.join(m.labels)}]" if m.labels else "") for m in task.metrics))
    head.add_row("sources", "; ".join(f"{s.name}{'/' + s.subset if s.subset else ''} ({s.citation})" for s in task.sources))
    if task.range:
        head.add_row("range", f"{task.range[0]:g} to {task.range[1]:g}")
    parts: list = [Text(task.description), head]
    if task.labels:
        labels = Table("label", "answer", "meaning", box=None)
        for lab, desc in task.labels.items():
            labels.add_row(lab, display_label(lab), desc)
        parts.append(labels)
    prompts = Table("#", "prompt template", box=None)
    for i, p in enumerate(task.prompts):
        prompts.add_row(str(i), Text(p))
    parts.append(prompts)
    return Panel(Group(*parts), title=f"[bold]{task.name}[/]", expand=False)


def task_json(task: Task) -> dict:
    return {
        "name": task.name, "level": task.level, "family": task.family, "modality": task.modality,
        "kind": task.kind, "description": task.description, "labels": task.labels,
        "range": list(task.range) if task.range else None,
        "metrics": [{"name": m.name, "labels": list(m.labels)} for m in task.metrics],
        "sources": [{"name": s.name, "subset": s.subset, "citation": s.citation} for s in task.sources],
        "prompts": list(task.prompts),
    }


def tasks_json(tasks: list[Task]) -> dict:
    """``{"levels": [{"id", "name", "description", "tasks": [...]}, ...]}`` in level order."""
    return {
        "levels": [
            {"id": lv.id, "name": lv.name, "description": lv.description,
             "tasks": [task_json(t) for t in tasks if t.level == lv.id]}
            for lv in LEVELS
        ]
    }
