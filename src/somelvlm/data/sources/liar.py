"""LIAR (Wang 2017, via nishitpatel01/Fake_News_Detection): PolitiFact statements.

Upstream: ``liar_dataset/{train,valid,test}.tsv``, no header, no quoting, 14 columns (see
``liar_dataset/README``): ``<id>.json``, label, statement, subject(s), speaker, job, state, party,
five credit-history counts, context. Each statement gives two examples:

- ``claim_veracity``: the six-point label, ``pants-fire`` -> ``pants_fire`` and so on;
- ``party``: the speaker's party, ``democrat`` / ``republican`` / ``other`` (every other value,
  ``none`` included: 24 kinds upstream, from ``independent`` to ``talk-show-host``).

Ids: ``liar/<task>/<split>/<statement id without .json>``; ``meta`` keeps speaker and context.
Split: upstream's (valid -> val).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile
from somelvlm.data.report import DataReport

SOURCE = "liar"
COLUMNS = ["id", "label", "statement", "subject", "speaker", "job", "state", "party", "barely_true_counts",
           "false_counts", "half_true_counts", "mostly_true_counts", "pants_on_fire_counts", "context"]
VERACITY = {"pants-fire", "false", "barely-true", "half-true", "mostly-true", "true"}
FILES = (("train", "train"), ("valid", "val"), ("test", "test"))


def load(root: Path, report: DataReport) -> Iterator[Example]:
    for name, split in FILES:
        f = SourceFile(root, f"{SOURCE}/liar_dataset/{name}.tsv", SOURCE, report)
        for line, row in f.csv_rows(required=("id", "label", "statement"), delimiter="\t",
                                    fieldnames=COLUMNS, quoting=csv.QUOTE_NONE):
            label = row["label"].strip().lower()
            if label not in VERACITY:
                f.problem(line, "unknown label", f"label {row['label']!r}")
                continue
            uid = row["id"].strip().removesuffix(".json")
            party = row["party"].strip().lower()
            party = party if party in ("democrat", "republican") else "other"
            base = {"source": SOURCE, "split": split, "text": row["statement"].strip(),
                    "meta": {"speaker": row["speaker"].strip(), "context": row["context"].strip()}}
            yield Example(id=f"{SOURCE}/claim_veracity/{split}/{uid}", task="claim_veracity",
                          target=label.replace("-", "_"), **base)
            yield Example(id=f"{SOURCE}/party/{split}/{uid}", task="party", target=party, **base)
