"""Map a model's free-text answer to a task's label (or number), or to ``INVALID``.

Acc counts ``INVALID`` answers as wrong over all items; Acc* scores only the items whose answer
parsed to a valid label (SoMeLVLM's zero-shot protocol).

>>> from somelvlm.taxonomy import get_task
>>> parse_answer(get_task("hate"), "Answer: Not hate.")
'not_hate'
>>> parse_answer(get_task("hate"), "I cannot tell.")
'invalid'
"""

from __future__ import annotations

import re

from somelvlm.taxonomy.task import Task, display_label

INVALID = "invalid"
_PREFIX = re.compile(
    r"^\s*(?:(?:the\s+)?(?:final\s+)?(?:answer|label|prediction|output|category|choice)\s*(?:is|:|=|-)?\s*)+",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")


def normalize(text: str) -> str:
    """Lowercase, underscores/hyphens to spaces, other punctuation dropped, whitespace collapsed."""
    text = text.lower().replace("_", " ").replace("-", " ")
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


def parse_answer(task: Task, answer: str | None) -> str | float:
    """The label id (classification), the number (regression) or the text (generation) in
    ``answer``; ``INVALID`` when it names no valid answer or is ambiguous."""
    if answer is None or not answer.strip():
        return INVALID
    if task.kind == "classification":
        return _parse_label(task, answer)
    if task.kind == "regression":
        return _parse_number(task, answer)
    return answer.strip()


def _parse_label(task: Task, answer: str) -> str:
    forms = {normalize(display_label(lab)): lab for lab in task.labels}
    forms |= {normalize(alias): lab for lab, names in task.aliases.items() for alias in names}
    text = normalize(_PREFIX.sub("", answer.strip()))
    if text in forms:
        return forms[text]
    # Whole-word mentions; a mention inside a longer one ("hate" inside "not hate") does not count.
    spans: list[tuple[int, int, str]] = []
    for form, lab in forms.items():
        for m in re.finditer(rf"(?<!\w){re.escape(form)}(?!\w)", text):
            spans.append((m.start(), m.end(), lab))
    kept = {
        lab for s, e, lab in spans
        if not any((s2 <= s and e <= e2) and (e2 - s2) > (e - s) for s2, e2, _ in spans)
    }
    return kept.pop() if len(kept) == 1 else INVALID


def _parse_number(task: Task, answer: str) -> float | str:
    m = _NUMBER.search(answer)
    if m is None:
        return INVALID
    value = float(m.group())
    low, high = task.range or (float("-inf"), float("inf"))
    return value if low <= value <= high else INVALID
