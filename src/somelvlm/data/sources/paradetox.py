"""ParaDetox (s-nlp/paradetox): toxic sentences with one to three human non-toxic rewrites.

Upstream: ``paradetox/paradetox.tsv`` with columns ``toxic, neutral1, neutral2, neutral3`` (empty
cells where fewer rewrites exist) -> detoxify: text = toxic, target = the first rewrite,
``meta["references"]`` = every rewrite as a JSON list (BLEU / ROUGE score against all of them).
``paradetox_cannot_rewrite.tsv`` (sentences annotators could not detoxify) is not read: no task
of the taxonomy asks for it. No upstream split: ``hash_split`` of the toxic text (80/10/10), so
the same toxic sentence never lands in two splits.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile, hash_split
from somelvlm.data.report import DataReport

SOURCE = "paradetox"


def load(root: Path, report: DataReport) -> Iterator[Example]:
    f = SourceFile(root, f"{SOURCE}/paradetox/paradetox.tsv", SOURCE, report)
    seen: set[str] = set()
    for line, row in f.csv_rows(required=("toxic",), delimiter="\t", quoting=csv.QUOTE_NONE):
        toxic = row["toxic"].strip()
        refs = [row.get(c, "").strip() for c in ("neutral1", "neutral2", "neutral3")]
        refs = [r for r in refs if r]
        if not refs:
            f.problem(line, "missing field", "no neutral rewrite")
            continue
        if toxic in seen:
            f.problem(line, "duplicate id", "toxic sentence seen before")
            continue
        seen.add(toxic)
        yield Example(id=f"{SOURCE}/detoxify/{line}", source=SOURCE, task="detoxify",
                      split=hash_split(f"{SOURCE}/{toxic}"), target=refs[0], text=toxic,
                      meta={"references": json.dumps(refs, ensure_ascii=False)})
