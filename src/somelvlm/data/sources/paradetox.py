"""ParaDetox (s-nlp/paradetox): toxic sentences with one to three human non-toxic rewrites.

Upstream: ``paradetox/paradetox.tsv``, a tab-separated file with a header ``toxic, neutral1,
neutral2, neutral3`` (empty cells where fewer rewrites exist); a cell holding a line break is
quoted CSV-style (7 rows), so it is read with CSV quoting, and runs of whitespace (those line
breaks included) are collapsed to one space. Each row -> detoxify: text = the toxic sentence,
target = the first non-empty rewrite, ``meta["references"]`` = every non-empty rewrite as a JSON
list (score against all of them). A row without any rewrite is reported ("missing field").
Ids: ``paradetox/detoxify/paradetox/<line of the row's start>``.

``paradetox_cannot_rewrite.tsv`` (sentences annotators could not detoxify) is not read: no task of
the taxonomy asks for it.

Split: upstream has none, so ``hash_split`` of the toxic sentence (80/10/10); a toxic sentence
that recurs is reported and kept once, so no sentence lands in two splits.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile, hash_split
from somelvlm.data.report import DataReport

SOURCE = "paradetox"
REWRITES = ("neutral1", "neutral2", "neutral3")


def load(root: Path, report: DataReport) -> Iterator[Example]:
    f = SourceFile(root, f"{SOURCE}/paradetox/paradetox.tsv", SOURCE, report)
    seen: set[str] = set()
    for line, row in f.csv_rows(required=("toxic",), delimiter="\t"):
        toxic = _clean(row["toxic"])
        refs = [r for r in (_clean(row.get(c, "")) for c in REWRITES) if r]
        if not refs:
            f.problem(line, "missing field", f"no rewrite in {', '.join(REWRITES)}")
            continue
        if toxic in seen:
            f.problem(line, "duplicate post", "toxic sentence seen on an earlier line")
            continue
        seen.add(toxic)
        yield Example(id=f"{SOURCE}/detoxify/paradetox/{line}", source=SOURCE, task="detoxify",
                      split=hash_split(f"{SOURCE}/{toxic}"), target=refs[0], text=toxic,
                      meta={"references": json.dumps(refs, ensure_ascii=False)})


def _clean(cell: str) -> str:
    return " ".join(cell.split())
