"""Memotion 7k (via Muhammad-Zoraib-Qadir/Multimodal-Sentiment-Analysis): memes with sentiment.

Upstream: ``labels.csv`` (index, image_name, text_ocr, text_corrected, overall_sentiment) and
``images/`` with 100x100 thumbnails whose extensions differ in case from the CSV (``image_6472.JPG``
for ``image_6472.jpg``): names resolve case-insensitively. -> meme_sentiment; text is
``text_corrected``, else ``text_ocr``. No upstream split: ``hash_split`` of the image name.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile, hash_split
from somelvlm.data.report import DataReport

SOURCE = "memotion"
LABELS = {"very_negative", "negative", "neutral", "positive", "very_positive"}


def load(root: Path, report: DataReport) -> Iterator[Example]:
    f = SourceFile(root, f"{SOURCE}/labels.csv", SOURCE, report)
    folder = Path(root) / SOURCE / "images"
    on_disk = {p.name.lower(): p.name for p in folder.iterdir()} if folder.is_dir() else {}
    for line, row in f.csv_rows(required=("image_name", "overall_sentiment")):
        name = row["image_name"].strip()
        label = row["overall_sentiment"].strip().lower()
        if label not in LABELS:
            f.problem(line, "unknown label", label)
            continue
        text = (row.get("text_corrected") or "").strip() or (row.get("text_ocr") or "").strip()
        real = on_disk.get(name.lower())
        image = f"{SOURCE}/images/{real}" if real else None
        if real is None:
            f.problem(line, "missing image", f"{SOURCE}/images/{name}")
            if not text:
                continue
        yield Example(id=f"{SOURCE}/{name}", source=SOURCE, task="meme_sentiment", split=hash_split(f"{SOURCE}/{name}"),
                      target=label, text=text or None, image=image)
