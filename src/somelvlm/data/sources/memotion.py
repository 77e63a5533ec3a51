"""Memotion 7k (via Muhammad-Zoraib-Qadir/Multimodal-Sentiment-Analysis): memes with sentiment.

Upstream: ``memotion/labels.csv`` with a header ``<index>, image_name, text_ocr, text_corrected,
overall_sentiment`` (6,992 rows) and ``memotion/images/`` (100x100 thumbnails, .jpg / .jpeg / .png /
.bmp / .jpe). -> meme_sentiment (very_negative ... very_positive, as written upstream).

Text is ``text_corrected``, else ``text_ocr``, else None (4 rows have neither and stay image-only).
Image names are resolved case-insensitively against one listing of ``images/`` (extensions such as
``.JPG`` may differ in case between the CSV and a copy of the files); a row without its image is
reported ("missing image") and kept text-only; a row with neither text nor image is skipped.

Split: upstream has none, so ``hash_split("memotion/<image_name>")`` (80/10/10). Upstream holds a
few byte-identical images under different names; they are not merged.
Ids: ``memotion/labels/<split>/<image_name>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile, hash_split
from somelvlm.data.report import DataReport

SOURCE = "memotion"
LABELS = ("very_negative", "negative", "neutral", "positive", "very_positive")


def _listing(folder: Path) -> dict[str, str]:
    """Lower-case file name -> the name on disk."""
    if not folder.is_dir():
        return {}
    return {p.name.lower(): p.name for p in sorted(folder.iterdir()) if p.is_file()}


def load(root: Path, report: DataReport) -> Iterator[Example]:
    f = SourceFile(root, f"{SOURCE}/labels.csv", SOURCE, report)
    on_disk = _listing(Path(root) / SOURCE / "images")
    seen: set[str] = set()
    for line, row in f.csv_rows(required=("image_name", "overall_sentiment")):
        name = row["image_name"].strip()
        if name.lower() in seen:
            f.problem(line, "duplicate id", name)
            continue
        seen.add(name.lower())
        label = row["overall_sentiment"].strip().lower()
        if label not in LABELS:
            f.problem(line, "unknown label", f"overall_sentiment {label!r}")
            continue
        text = (row.get("text_corrected") or "").strip() or (row.get("text_ocr") or "").strip() or None
        real = on_disk.get(name.lower())
        image = f"{SOURCE}/images/{real}" if real else None
        if image is None:
            f.problem(line, "missing image", f"{SOURCE}/images/{name}")
            if text is None:
                continue
        split = hash_split(f"{SOURCE}/{name}")
        yield Example(id=f"{SOURCE}/labels/{split}/{name}", source=SOURCE, task="meme_sentiment", split=split,
                      target=label, text=text, image=image)
