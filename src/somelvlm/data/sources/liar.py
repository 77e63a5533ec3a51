"""LIAR (Wang 2017, via nishitpatel01/Fake_News_Detection): PolitiFact statements.

Upstream: ``liar_dataset/{train,valid,test}.tsv``, no header, 14 columns (see its README): id,
label, statement, subject, speaker, job, state, party, 5 credit-history counts, context. The
upstream splits are used (valid -> val). Each statement gives ``claim_veracity`` (the six-point
label) and ``party`` (democrat / republican / other: every other party or none).
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


def load(root: Path, report: DataReport) -> Iterator[Example]:
    for name, split in (("train", "train"), ("valid", "val"), ("test", "test")):
        f = SourceFile(root, f"{SOURCE}/liar_dataset/{name}.tsv", SOURCE, report)
        for line, row in f.csv_rows(required=("id", "label", "statement"), delimiter="\t",
                                    fieldnames=COLUMNS, quoting=csv.QUOTE_NONE):
            label = row["label"].strip()
            if label not in VERACITY:
                f.problem(line, "unknown label", label)
                continue
            uid = row["id"].strip()
            text = row["statement"].strip()
            meta = {"speaker": row["speaker"], "context": row["context"]}
            yield Example(id=f"{SOURCE}/claim_veracity/{split}/{uid}", source=SOURCE, task="claim_veracity",
                          split=split, target=label.replace("-", "_"), text=text, meta=meta)
            party = row["party"].strip().lower()
            yield Example(id=f"{SOURCE}/party/{split}/{uid}", source=SOURCE, task="party", split=split,
                          target=party if party in ("democrat", "republican") else "other", text=text, meta=meta)
