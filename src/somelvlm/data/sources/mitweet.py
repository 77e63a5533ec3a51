"""MITweet (LST1836/MITweet, Liu et al. EMNLP 2023; no licence stated: evaluation and research runs
only, never the shipped weights): tweets labelled left / center / right on each ideology facet they
touch.

Upstream: ``data/random_split/{val,test}.csv`` (1,889 tweets each; the train file is not in this
copy), columns ``topic``, ``tweet``, ``tokenized tweet``, relevance ``R1..R5`` (domains) and
``R1-1-1 .. R12-5-3`` (facets), and ideology ``I1..I12`` per facet: 0 left, 1 center, 2 right, -1
unrelated. Each (tweet, facet) with an ideology label -> facet_ideology: text = the tweet, target =
left / center / right, ``meta["target"]`` = the facet's name (``FACETS``, the twelve facets of the
paper's schema in column order), ``meta["topic"]`` = the upstream topic. A value other than -1, 0,
1, 2 is reported ("unknown label"). ``Indicators.txt`` (indicator words per facet, for the
upstream's own model) is not read.

Ids: ``mitweet/<val|test>/<line of the row>/<I column>``. Split: upstream ``test.csv`` -> test;
upstream ``val.csv`` is split by ``hash_split`` of the tweet text into train (80%) and val (20%), so
all facets of one tweet share a split.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile, hash_split
from somelvlm.data.report import DataReport

SOURCE = "mitweet"
FACETS = (
    "political regime", "state structure", "economic orientation", "economic equality", "ethical pursuit",
    "church-state relations", "cultural value", "diplomatic strategy", "military force",
    "social development", "justice orientation", "personal rights",
)
LABELS = {"0": "left", "1": "center", "2": "right"}


def load(root: Path, report: DataReport) -> Iterator[Example]:
    columns = tuple(f"I{i}" for i in range(1, len(FACETS) + 1))
    for name in ("val", "test"):
        f = SourceFile(root, f"{SOURCE}/data/random_split/{name}.csv", SOURCE, report)
        for line, row in f.csv_rows(required=("tweet", *columns)):
            text = " ".join(row["tweet"].split())
            split = "test" if name == "test" else hash_split(f"{SOURCE}/{text}", val=0.2, test=0.0)
            for column, facet in zip(columns, FACETS):
                value = row[column].strip().removesuffix(".0")
                if value == "-1":
                    continue
                if value not in LABELS:
                    f.problem(line, "unknown label", f"{column} {row[column]!r}")
                    continue
                yield Example(id=f"{SOURCE}/{name}/{line}/{column}", source=SOURCE, task="facet_ideology",
                              split=split, target=LABELS[value], text=text,
                              meta={"target": facet, "topic": row.get("topic", "").strip()})
