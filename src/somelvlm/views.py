"""How analysis results look to a person: one rich table per post, tasks grouped by cognitive level.

A head's answer on a post outside what it was trained on (``"in_domain": false``) reads "out of domain"
with the label dimmed beside it, never as a confident label; the ``domain`` column shows the post's
domain score against the head's threshold (empty for models without applicability data).
"""

from __future__ import annotations

import json
from pathlib import Path

from rich.markup import escape
from rich.table import Table

OUT_OF_DOMAIN = "out of domain"


def _cell(pred: dict) -> tuple[str, str]:
    """``(answer, confidence)`` for one task's prediction (rich markup); an out-of-domain answer reads
    "out of domain" with the label and confidence dimmed."""
    answer, confidence = _answer(pred)
    if pred.get("in_domain") is False:
        return f"[yellow]{OUT_OF_DOMAIN}[/yellow] [dim]({answer})[/dim]", f"[dim]{confidence}[/dim]" if confidence else ""
    return answer, confidence


def _answer(pred: dict) -> tuple[str, str]:
    if pred.get("withheld"):  # the head is not served (no better than trivial baselines on validation)
        return "[dim]withheld[/dim]", ""
    if "text" in pred:  # a generation task's answer
        return escape(pred["text"][:120]) or "(empty)", ""
    if "value" in pred:
        return f"{pred['value']:.2f} / 5", ""
    if "targets" in pred:
        parts = [f"{t}: {p['label']}" for t, p in pred["targets"].items() if p["label"] != "none"]
        return escape(", ".join(parts)) or "no stance", ""
    if "prob" not in pred:  # a label parsed from a generated answer
        return escape(str(pred.get("label", "")).replace("_", " ")), ""
    bar = "█" * round(pred["prob"] * 10)
    return escape(pred["label"].replace("_", " ")), f"{bar:<10} {pred['prob']:.2f}"


def _domain(pred: dict) -> str:
    """The applicability column: ``in 0.82`` / ``out 0.41``; empty where the model has no such data."""
    if pred.get("in_domain") is None or pred.get("domain_score") is None:
        return ""
    if pred["in_domain"]:
        return f"in {pred['domain_score']:.2f}"
    return f"[yellow]out[/yellow] {pred['domain_score']:.2f}"


def analysis_tables(path: Path, tasks: list[str], limit: int = 20) -> list[Table]:
    """Tables for the first ``limit`` records of a JSONL analysis output."""
    from somelvlm.taxonomy.levels import LEVELS
    from somelvlm.taxonomy.registry import get_task

    levels = {lv.id: lv.name for lv in LEVELS}
    order = {lv.id: lv.order for lv in LEVELS}
    tables = []
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f):
            if n >= limit:
                break
            record = json.loads(line)
            title = f"post {record['id']}" + (" (text read by OCR)" if record.get("text_source") == "ocr" else "")
            table = Table(title=title, title_justify="left", show_lines=False)
            for col in ("level", "task", "answer", "confidence", "domain"):
                table.add_column(col)
            if "error" in record:
                table.add_row("-", "error", escape(record["error"]["reason"]), escape(record["error"]["message"][:80]), "")
                tables.append(table)
                continue
            chosen = sorted((get_task(t) for t in tasks if t in record), key=lambda t: (order[t.level], t.name))
            previous = None
            for task in chosen:
                answer, confidence = _cell(record[task.name])
                name = levels[task.level] if task.level != previous else ""
                if task.level != previous and previous is not None:
                    table.add_section()
                previous = task.level
                table.add_row(name, task.name, answer, confidence, _domain(record[task.name]))
            tables.append(table)
    return tables
