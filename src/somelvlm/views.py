"""How analysis results look to a person: one rich table per post, tasks grouped by cognitive level."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table


def _cell(pred: dict) -> tuple[str, str]:
    """``(answer, confidence)`` for one task's prediction."""
    if "text" in pred:  # a generation task's answer
        return pred["text"][:120] or "(empty)", ""
    if "value" in pred:
        return f"{pred['value']:.2f} / 5", ""
    if "targets" in pred:
        parts = [f"{t}: {p['label']}" for t, p in pred["targets"].items() if p["label"] != "none"]
        return ", ".join(parts) or "no stance", ""
    if "prob" not in pred:  # a label parsed from a generated answer
        return str(pred.get("label", "")).replace("_", " "), ""
    bar = "█" * round(pred["prob"] * 10)
    return pred["label"].replace("_", " "), f"{bar:<10} {pred['prob']:.2f}"


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
            for col in ("level", "task", "answer", "confidence"):
                table.add_column(col)
            if "error" in record:
                table.add_row("-", "error", record["error"]["reason"], record["error"]["message"][:80])
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
                table.add_row(name, task.name, answer, confidence)
            tables.append(table)
    return tables
