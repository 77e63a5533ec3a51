"""CM-Off-Meme (Gitanjali1801/CM_MEMES, LREC-COLING 2024): Hindi-English code-mixed memes.

Upstream: ``cm_memes/sample_data.csv`` with a header ``Name, Text, Ground truth reality, Level1,
Level2, Valence, Sarcasm, Joy, Sadness, Anger, Fear, Surprise`` (2,021 rows) and
``cm_memes/LREC_COLING_meme/<Name>`` (1,308 PNG files). Each meme gives up to four examples:

- offensive_meme <- Level1 (off / non-off)
- offense_type <- Level2 (non-off / explicit / implicit)
- meme_sarcasm <- Sarcasm (sarcasm / non-sarcastic; an empty cell is a reported "missing field")
- explain_offensive_meme <- ``Ground truth reality``, a human explanation (for every non-offensive
  meme upstream writes the same sentence, "There is no offenisve content")

Rows are joined to images on ``Name``: only the 1,308 rows whose image exists are emitted; each of
the other 713 rows is reported once as "missing image" (file and line). A repeated Name keeps its
first row and reports the others as "duplicate id" (the real file has none).

Split: upstream has none, so ``hash_split("cm_memes/<Name>")`` (80/10/10), the same for all four
tasks of a meme. Ids: ``cm_memes/sample_data/<split>/<Name>/<task>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile, hash_split
from somelvlm.data.report import DataReport

SOURCE = "cm_memes"
IMAGES = f"{SOURCE}/LREC_COLING_meme"
COLUMNS = (  # task, column, upstream value -> label id
    ("offensive_meme", "Level1", {"off": "offensive", "non-off": "not_offensive"}),
    ("offense_type", "Level2", {"non-off": "non_offensive", "explicit": "explicit", "implicit": "implicit"}),
    ("meme_sarcasm", "Sarcasm", {"sarcasm": "sarcastic", "non-sarcastic": "not_sarcastic"}),
)


def load(root: Path, report: DataReport) -> Iterator[Example]:
    f = SourceFile(root, f"{SOURCE}/sample_data.csv", SOURCE, report)
    seen: set[str] = set()
    for line, row in f.csv_rows(required=("Name",)):
        name = row["Name"].strip()
        if name in seen:
            f.problem(line, "duplicate id", name)
            continue
        seen.add(name)
        image = f.image(f"{IMAGES}/{name}", line)
        if image is None:
            continue
        split = hash_split(f"{SOURCE}/{name}")
        common = dict(source=SOURCE, split=split, text=row.get("Text", "").strip() or None, image=image,
                      meta={"name": name})
        base = f"{SOURCE}/sample_data/{split}/{name}"
        for task, column, labels in COLUMNS:
            value = row.get(column, "").strip().lower()
            if value in labels:
                yield Example(id=f"{base}/{task}", task=task, target=labels[value], **common)
            elif value:
                f.problem(line, "unknown label", f"{column} {value!r}")
            else:
                f.problem(line, "missing field", column)
        reality = row.get("Ground truth reality", "").strip()
        if reality:
            yield Example(id=f"{base}/explain_offensive_meme", task="explain_offensive_meme", target=reality,
                          **common)
        else:
            f.problem(line, "missing field", "Ground truth reality")
