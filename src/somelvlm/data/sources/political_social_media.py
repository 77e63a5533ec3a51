"""Political Social Media Posts (CrowdFlower, copied from JayChadha-uva/SocialMediaBias; the repository
states no licence: evaluation and research runs only, never the shipped weights).

Upstream: ``political_social_media.csv`` (UTF-8 with a byte-order mark), columns ``bias``
(``partisan`` / ``neutral``) and ``text``: 5,000 tweets and Facebook posts by US politicians (1,311
partisan, 3,689 neutral; this copy dropped the message, audience and source columns). Each row ->
partisan_post. Another ``bias`` value is reported ("unknown label").

Ids: ``political_social_media/<line of the row>``. Split: upstream has none, so ``hash_split`` of
the text (80/10/10); a text that recurs is reported ("duplicate post") and kept once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile, hash_split
from somelvlm.data.report import DataReport

SOURCE = "political_social_media"
LABELS = ("neutral", "partisan")


def load(root: Path, report: DataReport) -> Iterator[Example]:
    f = SourceFile(root, f"{SOURCE}/political_social_media.csv", SOURCE, report)
    seen: set[str] = set()
    for line, row in f.csv_rows(required=("bias", "text")):
        label = row["bias"].strip().lower()
        if label not in LABELS:
            f.problem(line, "unknown label", f"bias {row['bias']!r}")
            continue
        text = " ".join(row["text"].split())
        if text in seen:
            f.problem(line, "duplicate post", "text seen on an earlier line")
            continue
        seen.add(text)
        yield Example(id=f"{SOURCE}/{line}", source=SOURCE, task="partisan_post",
                      split=hash_split(f"{SOURCE}/{text}"), target=label, text=text)
