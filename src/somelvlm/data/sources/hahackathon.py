"""HaHackathon (SemEval-2021 task 7, Smolky/hahackathon-2021): 8,000 texts rated for humor and offence.

Upstream: ``datasets/hahackathon_train.csv`` with ``id, text, is_humor, humor_rating,
humor_controversy, offense_rating`` (ratings only for humorous texts, controversy 0/1). Only the
train file is here, so the split is ``hash_split`` of the id (80/10/10), the same for the four
tasks a row gives: humor, humor_rating, humor_controversy, offense_rating.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile, hash_split
from somelvlm.data.report import DataReport

SOURCE = "hahackathon"


def load(root: Path, report: DataReport) -> Iterator[Example]:
    f = SourceFile(root, f"{SOURCE}/datasets/hahackathon_train.csv", SOURCE, report)
    for line, row in f.csv_rows(required=("id", "text", "is_humor", "offense_rating")):
        uid, text = row["id"].strip(), row["text"].strip()
        split = hash_split(f"{SOURCE}/{uid}")
        if row["is_humor"].strip() not in ("0", "1"):
            f.problem(line, "unknown label", f"is_humor {row['is_humor']!r}")
            continue
        base = dict(source=SOURCE, split=split, text=text)
        yield Example(id=f"{SOURCE}/humor/{uid}", task="humor",
                      target="humor" if row["is_humor"].strip() == "1" else "not_humor", **base)
        for column, task in (("humor_rating", "humor_rating"), ("offense_rating", "offense_rating")):
            value = row.get(column, "").strip()
            if not value:
                continue
            try:
                number = float(value)
            except ValueError:
                f.problem(line, "target is not a number", f"{column} {value!r}")
                continue
            yield Example(id=f"{SOURCE}/{task}/{uid}", task=task, target=number, **base)
        controversy = row.get("humor_controversy", "").strip()
        if controversy in ("0", "0.0", "1", "1.0"):
            yield Example(id=f"{SOURCE}/humor_controversy/{uid}", task="humor_controversy",
                          target="controversial" if controversy.startswith("1") else "not_controversial", **base)
        elif controversy:
            f.problem(line, "unknown label", f"humor_controversy {controversy!r}")
