"""Counterfactually augmented IMDb reviews (acmi-lab/counterfactually-augmented-data, Kaushik et al.
ICLR 2020, Apache-2.0): each review paired with a human minimal edit that flips its sentiment.

Upstream: ``sentiment/combined/paired/{train,dev,test}_paired.tsv`` (1,707 / 245 / 488 pairs),
tab-separated with a header ``Sentiment, Text, batch_id``; the two rows of a pair share ``batch_id``,
the original review first, then the edit with the opposite Sentiment (Positive / Negative). Each
pair -> invert_sentiment: text = the original, target = the edit, ``meta["target"]`` = the edit's
sentiment in lower case (what the rewrite must express), ``meta["source_sentiment"]`` the
original's. Review HTML line breaks (``<br />``, also the broken ``<br /`` of a few edits) become
spaces. A batch_id without exactly two rows of opposite sentiment is reported ("malformed pair").

Ids: ``cad_imdb/<train|dev|test>/<batch_id>``. Split: upstream's (dev -> val).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile
from somelvlm.data.report import DataReport

SOURCE = "cad_imdb"
SPLITS = {"train": "train", "dev": "val", "test": "test"}
SENTIMENTS = {"positive", "negative"}
_BREAK = re.compile(r"<br\s*/?\s*>?", re.IGNORECASE)


def load(root: Path, report: DataReport) -> Iterator[Example]:
    for name, split in SPLITS.items():
        f = SourceFile(root, f"{SOURCE}/sentiment/combined/paired/{name}_paired.tsv", SOURCE, report)
        pairs: dict[str, list[tuple[int, str, str]]] = {}
        for line, row in f.csv_rows(required=("Sentiment", "Text", "batch_id"), delimiter="\t"):
            pairs.setdefault(row["batch_id"].strip(), []).append(
                (line, row["Sentiment"].strip().lower(), " ".join(_BREAK.sub(" ", row["Text"]).split())))
        for batch, rows in pairs.items():
            sentiments = [s for _, s, _ in rows]
            if len(rows) != 2 or set(sentiments) != SENTIMENTS:
                f.problem(rows[0][0], "malformed pair", f"batch_id {batch}: sentiments {sentiments}")
                continue
            (_, before, original), (_, after, edit) = rows
            yield Example(id=f"{SOURCE}/{name}/{batch}", source=SOURCE, task="invert_sentiment", split=split,
                          target=edit, text=original, meta={"target": after, "source_sentiment": before})
