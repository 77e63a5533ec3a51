"""ColBERT humor (Moradnejad/ColBERT-Using-BERT-Sentence-Embedding-for-Humor-Detection): short texts.

Upstream here: ``Data/dev.csv`` (40,000 rows: ``text, humor`` True/False; the dataset's other
files are not in this copy) -> task ``humor``. Rows have no id, so ids use the line number:
``colbert_humor/humor/dev/<line>``.

Split: none in this copy, so ``hash_split`` of the text (80/10/10): a text that recurs would share
its split (none recurs in ``dev.csv``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile, hash_split
from somelvlm.data.report import DataReport

SOURCE = "colbert_humor"
LABELS = {"true": "humor", "false": "not_humor"}


def load(root: Path, report: DataReport) -> Iterator[Example]:
    f = SourceFile(root, f"{SOURCE}/Data/dev.csv", SOURCE, report)
    for line, row in f.csv_rows(required=("text", "humor")):
        label = LABELS.get(row["humor"].strip().lower())
        if label is None:
            f.problem(line, "unknown label", f"humor {row['humor']!r}")
            continue
        text = row["text"].strip()
        yield Example(id=f"{SOURCE}/humor/dev/{line}", source=SOURCE, task="humor",
                      split=hash_split(f"{SOURCE}/{text}"), target=label, text=text)
