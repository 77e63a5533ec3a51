"""Constraint@AAAI-2021 COVID-19 fake news (diptamath/covid_fake_news): real / fake posts.

Upstream: ``data/Constraint_Train.csv`` (6,420) and ``data/Constraint_Val.csv`` (2,140), columns
``id, tweet, label``. The official test file is not in this copy, so Train is our train and Val is
cut in two by ``hash_split`` of its id (val 50% / test 50%): model selection never sees our test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile, hash_split
from somelvlm.data.report import DataReport

SOURCE = "constraint"
LABELS = {"real": "real", "fake": "fake"}


def load(root: Path, report: DataReport) -> Iterator[Example]:
    for name, upstream in (("Constraint_Train.csv", "train"), ("Constraint_Val.csv", "val")):
        f = SourceFile(root, f"{SOURCE}/data/{name}", SOURCE, report)
        for line, row in f.csv_rows(required=("id", "tweet", "label")):
            label = LABELS.get(row["label"].strip().lower())
            if label is None:
                f.problem(line, "unknown label", row["label"])
                continue
            split = upstream
            if upstream == "val":
                split = "val" if hash_split(f"{SOURCE}/{row['id']}", val=0.0, test=0.5) == "test" else "test"
            yield Example(id=f"{SOURCE}/fake_news/{upstream}/{row['id'].strip()}", source=SOURCE, task="fake_news",
                          split=split, target=label, text=row["tweet"].strip())
