"""HaHackathon (SemEval-2021 task 7, Smolky/hahackathon-2021): 8,000 texts rated for humor and offence.

Upstream: ``datasets/hahackathon_train.csv`` with ``id, text, is_humor, humor_rating,
humor_controversy, offense_rating``. Every row has ``is_humor`` (0/1) and ``offense_rating``
(0-5); ``humor_rating`` (0-5) and ``humor_controversy`` (0/1) are given for humorous rows only.
A row gives up to four examples, one per task: ``humor``, ``offense_rating``, and for rows that
have them ``humor_rating`` and ``humor_controversy`` (the columns' names are the task names). A
row with a bad ``is_humor`` is reported and skipped; any other bad or missing value (not a number,
outside 0-5, not 0/1) is reported and drops that task's example only.
Ids: ``hahackathon/<task>/hahackathon_train/<id>``.

Split: only the train file is here (the dev and test files are not), so ``hash_split`` of the
row id (80/10/10), the same for all four tasks of a row. Texts do not repeat in the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile, hash_split
from somelvlm.data.report import DataReport

SOURCE = "hahackathon"
FILE = "hahackathon_train"
HUMOR = {"0": "not_humor", "1": "humor"}
CONTROVERSY = {"0": "not_controversial", "1": "controversial"}


def load(root: Path, report: DataReport) -> Iterator[Example]:
    f = SourceFile(root, f"{SOURCE}/datasets/{FILE}.csv", SOURCE, report)
    for line, row in f.csv_rows(required=("id", "text", "is_humor")):
        humor = HUMOR.get(_flag(row["is_humor"]))
        if humor is None:
            f.problem(line, "unknown label", f"is_humor {row['is_humor']!r}")
            continue
        uid = row["id"].strip()
        base = {"source": SOURCE, "split": hash_split(f"{SOURCE}/{uid}"), "text": row["text"].strip()}
        yield Example(id=f"{SOURCE}/humor/{FILE}/{uid}", task="humor", target=humor, **base)
        columns = ["offense_rating", "humor_rating", "humor_controversy"] if humor == "humor" else ["offense_rating"]
        for column in columns:
            value = row.get(column, "").strip()
            target = CONTROVERSY.get(_flag(value)) if column == "humor_controversy" else _rating(value)
            if target is None:
                f.problem(line, "missing field" if not value else "bad value", f"{column} {value!r}")
                continue
            yield Example(id=f"{SOURCE}/{column}/{FILE}/{uid}", task=column, target=target, **base)


def _flag(value: str) -> str:
    return value.strip().removesuffix(".0")


def _rating(value: str) -> float | None:
    """A rating in [0, 5], or None."""
    try:
        number = float(value)
    except ValueError:
        return None
    return number if 0.0 <= number <= 5.0 else None
