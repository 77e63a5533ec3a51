"""Which rows of SoMeLVLM's dataset table (its README / paper, Table "SoMeData") our tasks cover.

SoMeLVLM's table has 31 rows, each a (cognitive level, task family, data type) with the SFT and eval
sizes of its SoMeData. A row is covered when at least one of our tasks has that level and family and
 - for a ``text`` row: modality ``text``;
 - for a ``multi`` row: modality ``both`` or ``image``, or data from SoMeLVLM's published multimodal
   test items (``somelvlm_testset``, whose images are not in our copy).
``coverage_markdown()`` is the table the README's task-framework section shows (a test keeps the two
equal).
"""

from __future__ import annotations

from dataclasses import dataclass

from somelvlm.taxonomy.levels import LEVELS, family_name
from somelvlm.taxonomy.registry import all_tasks
from somelvlm.taxonomy.task import Task

PAPER_ROWS: tuple[tuple[str, str, str, str], ...] = (
    # (level, family, data type, SoMeLVLM's SFT & eval sizes)
    ("knowledge_comprehension", "emotion", "text", "45.0k & 5.0k"),
    ("knowledge_comprehension", "emotion", "multi", "20.3k & 1.5k"),
    ("knowledge_comprehension", "humor", "text", "18.0k & 8.3k"),
    ("knowledge_comprehension", "figurative", "text", "12.5k & 4.6k"),
    ("knowledge_comprehension", "misinformation", "text", "24.4k & 2.0k"),
    ("knowledge_comprehension", "misinformation", "multi", "6.5k & 0.5k"),
    ("knowledge_comprehension", "hate_toxicity", "text", "44.1k & 6.3k"),
    ("knowledge_comprehension", "hate_toxicity", "multi", "13.8k & 1.4k"),
    ("knowledge_comprehension", "ideology_stance", "text", "24.0k & 3.5k"),
    ("knowledge_comprehension", "ideology_stance", "multi", "1.6k & 0.3k"),
    ("knowledge_comprehension", "trust_bias", "text", "11.0k & 3.2k"),
    ("knowledge_comprehension", "social_factors", "text", "16.2k & 2.5k"),
    ("knowledge_comprehension", "social_factors", "multi", "40.0k & 1.0k"),
    ("application", "emotion", "text", "20.0k & 5.0k"),
    ("application", "humor", "text", "15.0k & 6.1k"),
    ("application", "hate_toxicity", "text", "29.6k & 16.2k"),
    ("application", "ideology_stance", "text", "4.3k & 1.0k"),
    ("application", "trust_bias", "text", "30.0k & 0.9k"),
    ("application", "social_factors", "multi", "50.0k & 1.0k"),
    ("analysis", "figurative", "text", "30.0k & 2.2k"),
    ("analysis", "emotion", "multi", "20.3k & 1.5k"),
    ("analysis", "hate_toxicity", "multi", "13.8k & 1.5k"),
    ("analysis", "social_factors", "multi", "15.0k & 0.5k"),
    ("evaluation", "ideology_stance", "multi", "1.6k & 0.3k"),
    ("evaluation", "misinformation", "text", "2.0k & 0.0k"),
    ("evaluation", "misinformation", "multi", "6.5k & 0.5k"),
    ("evaluation", "detoxifying", "text", "25.0k & 9.9k"),
    ("evaluation", "depolarizing", "text", "4.3k & 1.0k"),
    ("creation", "invert_opinion", "text", "1.0k & 0.0k"),
    ("creation", "reverse_ideology", "text", "4.3k & 1.0k"),
    ("creation", "social_factors", "multi", "25k & 0.5k"),
)
MULTIMODAL_SOURCES = frozenset({"somelvlm_testset"})
"""Sources of image posts whose images our copy lacks (their text is asked about)."""
EVAL_ONLY_SOURCES = frozenset({"somelvlm_testset", "polar_trial"})
"""Sources with a test split only: a row covered by these alone has no training data here."""


@dataclass(frozen=True)
class Row:
    """One row of SoMeLVLM's table and the tasks of ours that cover it."""

    level: str
    family: str
    data_type: str
    """``text`` or ``multi``."""
    paper_sizes: str
    tasks: tuple[str, ...]

    trainable: bool = False
    """Some covering task has a source with training data (not only published test items)."""

    @property
    def covered(self) -> bool:
        return bool(self.tasks)


def _fits(task: Task, data_type: str) -> bool:
    if data_type == "text":
        return task.modality == "text"
    return task.modality in ("both", "image") or any(s.name in MULTIMODAL_SOURCES for s in task.sources)


def coverage(tasks: list[Task] | None = None) -> list[Row]:
    """Every row of SoMeLVLM's table with the names of our tasks that cover it."""
    tasks = all_tasks() if tasks is None else tasks
    rows = []
    for level, family, data_type, sizes in PAPER_ROWS:
        fit = [t for t in tasks if t.level == level and t.family == family and _fits(t, data_type)]
        trainable = any(s.name not in EVAL_ONLY_SOURCES for t in fit for s in t.sources)
        rows.append(Row(level, family, data_type, sizes, tuple(t.name for t in fit), trainable))
    return rows


def coverage_markdown(rows: list[Row] | None = None) -> str:
    """The coverage table as markdown, with the count of covered rows under it."""
    rows = coverage() if rows is None else rows
    names = {lv.id: lv.name for lv in LEVELS}
    lines = ["| level | family | data | SoMeLVLM SFT & eval | our tasks | our data |", "|---|---|---|---|---|---|"]
    for r in rows:
        tasks = ", ".join(f"`{t}`" for t in r.tasks) or "**none**"
        data = "" if not r.covered else "train + eval" if r.trainable else "eval only"
        lines.append(f"| {names[r.level]} | {family_name(r.family)} | {r.data_type} | {r.paper_sizes} | {tasks} | {data} |")
    covered = sum(r.covered for r in rows)
    lines += ["", f"{covered} of {len(rows)} rows covered by {len(all_tasks())} tasks."]
    return "\n".join(lines) + "\n"
