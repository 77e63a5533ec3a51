"""Constraint@AAAI-2021 COVID-19 fake news (diptamath/covid_fake_news): real / fake posts.

Upstream: ``data/Constraint_Train.csv`` (6,420 rows) and ``data/Constraint_Val.csv`` (2,140),
columns ``id, tweet, label`` (``real`` / ``fake``) -> task ``fake_news``. Ids restart at 1 in each
file, so an id names its file: ``constraint/fake_news/<Constraint_Train|Constraint_Val>/<id>``.

Split: the official test file is not in this copy. Train is our train; Val is cut in two by a
stable hash of its id (``hash_split(..., val=0, test=0.5)``: the hashed "test" half becomes our
val, the rest our test), so model selection never sees our test. A Val post whose text also
appears in Train (one upstream) is reported and left out, so no text is in two splits.
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
    train_texts: set[str] = set()
    for stem in ("Constraint_Train", "Constraint_Val"):
        f = SourceFile(root, f"{SOURCE}/data/{stem}.csv", SOURCE, report)
        for line, row in f.csv_rows(required=("id", "tweet", "label")):
            label = LABELS.get(row["label"].strip().lower())
            if label is None:
                f.problem(line, "unknown label", f"label {row['label']!r}")
                continue
            uid, text = row["id"].strip(), row["tweet"].strip()
            if stem == "Constraint_Train":
                split = "train"
                train_texts.add(text)
            elif text in train_texts:
                f.problem(line, "duplicate post", "the same text is in Constraint_Train.csv")
                continue
            else:
                split = "val" if val_half(uid) else "test"
            yield Example(id=f"{SOURCE}/fake_news/{stem}/{uid}", source=SOURCE, task="fake_news",
                          split=split, target=label, text=text)


def val_half(uid: str) -> bool:
    """Whether the Constraint_Val row ``uid`` goes to our val (else our test): a stable 50/50 hash."""
    return hash_split(f"{SOURCE}/{uid}", val=0.0, test=0.5) == "test"
