"""ColBERT humor (Moradnejad/ColBERT-Using-BERT-Sentence-Embedding-for-Humor-Detection): short texts.

Upstream here: ``Data/dev.csv`` (40,000 rows: ``text, humor`` True/False) -> task ``humor``. No
split in this copy: ``hash_split`` of the text (80/10/10), so duplicates share a split.
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
            f.problem(line, "unknown label", row["humor"])
            continue
        text = row["text"].strip()
        yield Example(id=f"{SOURCE}/humor/{line}", source=SOURCE, task="humor", split=hash_split(f"{SOURCE}/{text}"),
                      target=label, text=text)
