"""Davidson et al. 2017 (t-davidson/hate-speech-and-offensive-language): 24,783 labelled tweets.

Upstream: ``data/labeled_data.csv`` with an unnamed index column (the row id), the annotator
counts ``count, hate_speech, offensive_language, neither`` and the majority ``class`` (0 hate
speech, 1 offensive language, 2 neither) -> task ``hate_offensive``; text = ``tweet``.
Ids: ``davidson/hate_offensive/labeled_data/<row id>``.

Split: upstream has none, so ``hash_split`` of the row id (80/10/10). The file holds no repeated
tweet, so keying by id never puts one text in two splits.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile, hash_split
from somelvlm.data.report import DataReport

SOURCE = "davidson"
CLASSES = {"0": "hate", "1": "offensive", "2": "neither"}


def load(root: Path, report: DataReport) -> Iterator[Example]:
    f = SourceFile(root, f"{SOURCE}/data/labeled_data.csv", SOURCE, report)
    for line, row in f.csv_rows(required=("", "class", "tweet")):
        label = CLASSES.get(row["class"].strip())
        if label is None:
            f.problem(line, "unknown label", f"class {row['class']!r}")
            continue
        uid = row[""].strip()
        yield Example(id=f"{SOURCE}/hate_offensive/labeled_data/{uid}", source=SOURCE, task="hate_offensive",
                      split=hash_split(f"{SOURCE}/{uid}"), target=label, text=row["tweet"].strip())
