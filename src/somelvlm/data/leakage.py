"""No test post in training: drop train / val examples whose post sits in a test split of the same task.

A post is known by its normalised text (:func:`normalize_post`) and, where it has an image, by the
SHA-1 of the image file's bytes. An example of a task's train or val split is removed when either
key occurs among that task's TEST examples, whichever source they came from: SoMeLVLM's published
HatefulMemes test items are memes of FHM's *train* split, and FHM captions repeat across FHM's own
splits (our meme records are text-only, so the same caption is the same input).

>>> normalize_post("RT @user: Look at THIS!!  https://t.co/x  #wow")
'rt look at this wow'
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import defaultdict
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.report import DataReport

_URL = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MENTION = re.compile(r"@\w+")
TEXT_IN_TEST = "text in a test split"
IMAGE_IN_TEST = "image in a test split"


def normalize_post(text: str | None) -> str:
    """A post's text as compared across splits: NFKC, casefolded, URLs and @mentions removed,
    punctuation dropped, whitespace collapsed; ``""`` when nothing is left."""
    if not text:
        return ""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _MENTION.sub(" ", _URL.sub(" ", text))
    text = re.sub(r"[^\w\s]|_", " ", text)
    return " ".join(text.split())


class ImageDigests:
    """SHA-1 of image files under the data root, each file read once."""

    def __init__(self, data_root: Path) -> None:
        self.root = Path(data_root)
        self._cache: dict[str, str | None] = {}

    def __call__(self, image: str | None) -> str | None:
        if image is None:
            return None
        if image not in self._cache:
            try:
                self._cache[image] = hashlib.sha1((self.root / image).read_bytes()).hexdigest()
            except OSError:
                self._cache[image] = None
        return self._cache[image]


def drop_test_overlap(grouped: dict[tuple[str, str], list[Example]], data_root: Path,
                      report: DataReport) -> None:
    """Remove, in place, every train / val example of ``grouped`` (``(task, split) -> examples``)
    whose text or image occurs in the same task's test split; count each removal in
    ``report.removed[(task, split, source, reason)]``."""
    digest = ImageDigests(data_root)
    test_texts: dict[str, set[str]] = defaultdict(set)
    test_images: dict[str, set[str]] = defaultdict(set)
    for (task, split), examples in grouped.items():
        if split != "test":
            continue
        for ex in examples:
            if key := normalize_post(ex.text):
                test_texts[task].add(key)
            if key := digest(ex.image):
                test_images[task].add(key)
    for (task, split), examples in grouped.items():
        if split == "test" or not (test_texts[task] or test_images[task]):
            continue
        kept = []
        for ex in examples:
            reason = None
            if (key := normalize_post(ex.text)) and key in test_texts[task]:
                reason = TEXT_IN_TEST
            elif (key := digest(ex.image)) and key in test_images[task]:
                reason = IMAGE_IN_TEST
            if reason is None:
                kept.append(ex)
            else:
                report.removed[(task, split, ex.source, reason)] += 1
        examples[:] = kept
