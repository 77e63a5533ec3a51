"""Positive Psychology Frames (SALT-NLP/positive-frames, Ziems et al. ACL 2022, CC BY-SA 4.0): negative
tweets paired with a positive reframe written by a crowd worker.

Upstream: ``data/whole{train,dev,test}.csv`` (6,679 / 835 / 835 rows), columns: an unnamed row
index, ``original_text`` (a negative #stressed tweet), ``reframed_text``, ``strategy`` (a Python-style
list drawn from growth, impermanence, neutralizing, optimism, self_affirmation, thankfulness) and
three derived columns. Each row gives up to two examples:

- ``positive_reframe``: every row; text = original, target = reframe, ``meta["strategies"]``;
- ``depolarize``: rows whose strategies include ``neutralizing`` (removing the negative, loaded
  wording without adding false positivity: the rewrite data of depolarizing language).

A ``strategy`` that is not a list of known strategies is reported ("unknown label"; 7 train rows
upstream) and the row is kept for ``positive_reframe`` only.

Ids: ``positive_frames/<task>/<train|dev|test>/<row index>``. Split: upstream's (dev -> val).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile
from somelvlm.data.report import DataReport

SOURCE = "positive_frames"
SPLITS = {"train": "train", "dev": "val", "test": "test"}
STRATEGIES = {"growth", "impermanence", "neutralizing", "optimism", "self_affirmation", "thankfulness"}
_LIST = re.compile(r"^\[\s*'[a-z_]+'(\s*,\s*'[a-z_]+')*\s*\]$")


def strategies_of(cell: str) -> list[str] | None:
    """``"['neutralizing', 'optimism']"`` -> ``["neutralizing", "optimism"]``; None when malformed."""
    cell = cell.strip()
    if not _LIST.match(cell):
        return None
    names = re.findall(r"'([a-z_]+)'", cell)
    return names if set(names) <= STRATEGIES else None


def load(root: Path, report: DataReport) -> Iterator[Example]:
    for name, split in SPLITS.items():
        f = SourceFile(root, f"{SOURCE}/data/whole{name}.csv", SOURCE, report)
        for line, row in f.csv_rows(required=("original_text", "reframed_text")):
            uid = row.get("", "").strip() or f"line{line}"
            text, reframe = (" ".join(row[c].split()) for c in ("original_text", "reframed_text"))
            strategies = strategies_of(row.get("strategy", ""))
            if strategies is None:
                f.problem(line, "unknown label", f"strategy {row.get('strategy', '')[:60]!r}")
            meta = {"strategies": ",".join(strategies or [])}
            yield Example(id=f"{SOURCE}/positive_reframe/{name}/{uid}", source=SOURCE, task="positive_reframe",
                          split=split, target=reframe, text=text, meta=meta)
            if strategies and "neutralizing" in strategies:
                yield Example(id=f"{SOURCE}/depolarize/{name}/{uid}", source=SOURCE, task="depolarize",
                              split=split, target=reframe, text=text, meta=meta)
