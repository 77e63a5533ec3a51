"""CM_MEMES (Gitanjali1801/CM_MEMES): Hindi-English code-mixed memes with explanations.

Upstream: ``sample_data.csv`` (2,021 rows: Name, Text, Ground truth reality, Level1 off/non-off,
Level2 non-off/explicit/implicit, Valence, Sarcasm, five emotions) and ``LREC_COLING_meme/*.png``
(1,308 images). Rows are joined to images on ``Name``; rows without an image are left out (one
``missing image`` line each in the report); a repeated Name keeps its first row. No upstream
split: ``hash_split`` of the Name, shared by the four tasks a meme gives (offensive_meme,
offense_type, meme_sarcasm, explain_offensive_meme).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile, hash_split
from somelvlm.data.report import DataReport

SOURCE = "cm_memes"
LEVEL1 = {"off": "offensive", "non-off": "not_offensive"}
LEVEL2 = {"non-off": "non_offensive", "explicit": "explicit", "implicit": "implicit"}
SARCASM = {"sarcasm": "sarcastic", "sarcastic": "sarcastic", "non-sarcastic": "not_sarcastic"}


def load(root: Path, report: DataReport) -> Iterator[Example]:
    f = SourceFile(root, f"{SOURCE}/sample_data.csv", SOURCE, report)
    seen: set[str] = set()
    for line, row in f.csv_rows(required=("Name", "Level1")):
        name = row["Name"].strip()
        if name in seen:
            f.problem(line, "duplicate id", name)
            continue
        seen.add(name)
        image = f.image(f"{SOURCE}/LREC_COLING_meme/{name}", line)
        if image is None:
            continue
        base = dict(source=SOURCE, split=hash_split(f"{SOURCE}/{name}"), text=row.get("Text", "").strip() or None,
                    image=image)
        uid = f"{SOURCE}/{name}"
        for task, column, mapping in (("offensive_meme", "Level1", LEVEL1), ("offense_type", "Level2", LEVEL2),
                                      ("meme_sarcasm", "Sarcasm", SARCASM)):
            value = row.get(column, "").strip().lower()
            if value in mapping:
                yield Example(id=f"{uid}/{task}", task=task, target=mapping[value], **base)
            else:
                f.problem(line, "unknown label" if value else "missing field", f"{column} {value!r}")
        reality = row.get("Ground truth reality", "").strip()
        if reality:
            yield Example(id=f"{uid}/explain_offensive_meme", task="explain_offensive_meme", target=reality, **base)
