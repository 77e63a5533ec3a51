"""What went wrong while reading data: counted and listed by file and line, never raised."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Problem:
    """One bad input: where it is and why it was skipped (or kept without its image)."""

    source: str
    file: str
    """Path relative to the data root."""
    line: int | None
    """1-based line (or record) number in ``file``; None when the problem is about the file."""
    reason: str
    """A short category, e.g. ``"invalid UTF-8"``, ``"unknown label"``, ``"missing image"``."""
    detail: str = ""


@dataclass
class DataReport:
    """Collects problems across adapters and the builder; the build goes on past each one."""

    problems: list[Problem] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    """Examples read per ``(source, task, split)``."""
    removed: Counter = field(default_factory=Counter)
    """Train / val examples left out because their post is in a test split:
    ``(task, split, source, reason) -> count``."""

    def problem(
        self, source: str, file: str | Path, line: int | None, reason: str, detail: str = ""
    ) -> None:
        self.problems.append(Problem(source, str(file), line, reason, detail[:200]))

    def by_reason(self) -> Counter:
        """``(source, reason) -> count``."""
        return Counter((p.source, p.reason) for p in self.problems)

    def to_json(self) -> str:
        payload = {
            "problem_counts": [
                {"source": s, "reason": r, "count": n} for (s, r), n in sorted(self.by_reason().items())
            ],
            "problems": [asdict(p) for p in self.problems],
            "removed_test_overlap": [
                {"task": t, "split": sp, "source": so, "reason": r, "count": n}
                for (t, sp, so, r), n in sorted(self.removed.items())
            ],
        }
        return json.dumps(payload, indent=1, ensure_ascii=False, sort_keys=True) + "\n"

    def to_markdown(self, limit_per_reason: int = 20) -> str:
        """A readable summary: counts per source and reason, then the first few of each."""
        lines = ["# Build report", "", *self._removed_markdown()]
        if not self.problems:
            return "\n".join([*lines, "No problems found.", ""])
        lines += ["## Bad inputs", "", "| source | reason | count |", "|---|---|---|"]
        for (source, reason), n in sorted(self.by_reason().items()):
            lines.append(f"| {source} | {reason} | {n} |")
        lines.append("")
        shown: Counter = Counter()
        for p in self.problems:
            key = (p.source, p.reason)
            shown[key] += 1
            if shown[key] <= limit_per_reason:
                where = f"{p.file}:{p.line}" if p.line is not None else p.file
                lines.append(f"- `{where}` {p.reason}" + (f": {p.detail}" if p.detail else ""))
        lines.append("")
        return "\n".join(lines)

    def _removed_markdown(self) -> list[str]:
        lines = ["## Test posts kept out of training", ""]
        if not self.removed:
            return [*lines, "No train or val post occurs in a test split of its task.", ""]
        lines += ["Train / val examples left out because the same post (normalised text, or image bytes) is in",
                  "a test split of the same task, from any source.", "",
                  "| task | split | source | reason | removed |", "|---|---|---|---|---:|"]
        for (task, split, source, reason), n in sorted(self.removed.items()):
            lines.append(f"| {task} | {split} | {source} | {reason} | {n} |")
        lines += ["", f"Total removed: {sum(self.removed.values())}.", ""]
        return lines
