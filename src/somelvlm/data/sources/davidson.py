"""Davidson et al. 2017 (t-davidson/hate-speech-and-offensive-language): 24,783 tweets.

Upstream: ``data/labeled_data.csv`` with an unnamed index column, annotator counts and ``class``
(0 hate speech, 1 offensive language, 2 neither) -> task ``hate_offensive``. No upstream split:
``hash_split`` of the row index (80/10/10).
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
        key = f"{SOURCE}/{row[''].strip()}"
        yield Example(id=f"{SOURCE}/hate_offensive/{row[''].strip()}", source=SOURCE, task="hate_offensive",
                      split=hash_split(key), target=label, text=row["tweet"].strip())
