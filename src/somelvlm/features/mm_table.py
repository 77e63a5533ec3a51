"""Multimodal feature tables: the three image datasets as cached frozen features.

A table holds, for every labelled post of one dataset, its pooled EfficientNet-Lite0 image vector
(1280-d), its sentence vector (MiniLM or multilingual e5, 384-d; the post's text, else OCR of its
image), masks saying which are present, the integer label and the split. Everything goes through
``FeatureCache``, so the first build encodes and every later one reads ``.npy`` files.

Datasets (``MM_DATASETS``): cm_memes -> offensive_meme (Hindi-English memes), memotion ->
meme_sentiment (5 classes, 100 px thumbnails), mediaeval2016 -> verify_post (fake / real, split by
event; most of its 15k posts share ~410 images, ~2.2k posts have none).

>>> table = build_table(data_root, "cm_memes", text="e5")                    # doctest: +SKIP
>>> table.image.shape, table.text.shape, table.y[:5]                         # doctest: +SKIP
((1308, 1280), (1308, 384), array([0, 1, 0, 0, 1]))
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from somelvlm.posts import PostError

log = logging.getLogger(__name__)

MM_DATASETS: dict[str, str] = {
    "cm_memes": "offensive_meme",
    "memotion": "meme_sentiment",
    "mediaeval2016": "verify_post",
}
"""Dataset (source folder) -> the task id of its label."""


@dataclass
class MMTable:
    """Frozen features of one dataset's labelled posts, row-aligned."""

    dataset: str
    task: str
    labels: tuple[str, ...]
    """Label ids in the task's order; ``y`` indexes into it."""
    ids: list[str]
    split: np.ndarray  # (n,) str
    y: np.ndarray  # (n,) int64
    image: np.ndarray  # (n, 1280) float32, zeros where has_image is False
    has_image: np.ndarray  # (n,) bool
    text: np.ndarray  # (n, 384) float32, zeros where has_text is False
    has_text: np.ndarray  # (n,) bool
    texts: list[str]
    """The text each post was encoded from ("" when none)."""
    group: list[str] = field(default_factory=list)
    """A grouping per post (mediaeval: the event), else the dataset name."""
    encoders: dict[str, str] = field(default_factory=dict)
    """Role ("image", "text", "ocr") -> ``extractor.id + config``: what made these features."""

    def rows(self, split: str) -> np.ndarray:
        """Row indices of one split."""
        return np.flatnonzero(self.split == split)

    def subset(self, rows: np.ndarray) -> MMTable:
        """The same table restricted to ``rows``."""
        rows = np.asarray(rows)
        pick = lambda seq: [seq[i] for i in rows]  # noqa: E731
        return MMTable(self.dataset, self.task, self.labels, pick(self.ids), self.split[rows], self.y[rows],
                       self.image[rows], self.has_image[rows], self.text[rows], self.has_text[rows],
                       pick(self.texts), pick(self.group) if self.group else [], dict(self.encoders))


def encode_robust(cache: Any, extractor: Any, items: Sequence[Any], chunk: int = 64,
                  progress: Callable[[int, int], None] | None = None) -> tuple[list[Any], dict[int, str]]:
    """``cache.get_many`` that never loses a batch to one bad item.

    Items go ``chunk`` at a time; a chunk that raises ``PostError`` (not an image, corrupt, too
    large, missing) is redone item by item. Returns ``(outputs, errors)``: outputs[i] is None for a
    failed item and ``errors[i]`` says why.
    """
    out: list[Any] = [None] * len(items)
    errors: dict[int, str] = {}
    for start in range(0, len(items), chunk):
        part = list(items[start:start + chunk])
        try:
            values = cache.get_many(extractor, part)
        except PostError:
            values = []
            for j, item in enumerate(part):
                try:
                    values.append(cache.get_many(extractor, [item])[0])
                except PostError as err:
                    values.append(None)
                    errors[start + j] = f"{err.reason}: {str(err)[len(err.reason) + 2:]}"
        out[start:start + len(part)] = values
        if progress is not None:
            progress(min(start + chunk, len(items)), len(items))
    return out, errors


def load_examples(root: Path, dataset: str) -> list:
    """The labelled examples of ``dataset``'s classification task (problems are logged, not raised)."""
    from somelvlm.data.report import DataReport
    from somelvlm.data.sources import load_source

    if dataset not in MM_DATASETS:
        raise ValueError(f"dataset must be one of {sorted(MM_DATASETS)}, got {dataset!r}")
    task = MM_DATASETS[dataset]
    report = DataReport()
    return [e for e in load_source(dataset, Path(root), report) if e.task == task]


def cap_train(examples: list, max_train: int | None) -> list:
    """At most ``max_train`` training examples, a fixed sample (lowest sha1 of the id); val and
    test are never cut. Keeps file order."""
    import hashlib

    train = [e for e in examples if e.split == "train"]
    if max_train is None or len(train) <= max_train:
        return examples
    keep = set(sorted((e.id for e in train), key=lambda i: hashlib.sha1(i.encode()).hexdigest())[:max_train])
    return [e for e in examples if e.split != "train" or e.id in keep]


def build_table(root: Path | str, dataset: str, text: str = "minilm", ocr: bool = True,
                cache: Any = None, num_threads: int = 1, verbose: bool = False,
                max_train: int | None = None,
                progress: Callable[[str, int, int], None] | None = None) -> MMTable:
    """Features of every labelled post of ``dataset`` under the data ``root``.

    ``text``: the text extractor ("minilm" or "e5"). ``ocr``: read text off the image for posts
    whose text is empty (memes without a caption); without it those posts are image-only.
    ``max_train``: cap on training posts (``cap_train``). Unreadable images are logged and the
    post kept without an image. ``progress(stage, done, total)`` is called as features are extracted.
    """
    from somelvlm.features import FeatureCache, get_extractor
    from somelvlm.taxonomy.registry import get_task

    root = Path(root)
    cache = cache or FeatureCache()
    examples = cap_train(load_examples(root, dataset), max_train)
    task = get_task(MM_DATASETS[dataset])
    labels = tuple(task.labels)
    index = {label: i for i, label in enumerate(labels)}
    n = len(examples)
    say = (lambda what: lambda d, t: log.warning("%s %s: %d/%d", dataset, what, d, t)) if verbose else (lambda _: None)
    if progress is not None:
        say = lambda what: lambda d, t: progress(f"{dataset} {what}", d, t)

    image_enc = get_extractor("efficientnet_lite0", num_threads=num_threads)
    with_image = [i for i, e in enumerate(examples) if e.image]
    paths = [root / examples[i].image for i in with_image]
    unique = sorted(set(paths))
    vectors, errors = encode_robust(cache, image_enc, unique, progress=say("images"))
    by_path = {p: v for p, v in zip(unique, vectors)}
    for j, why in errors.items():
        log.warning("%s: image %s skipped (%s)", dataset, unique[j], why)
    image = np.zeros((n, image_enc.dim), np.float32)
    has_image = np.zeros(n, bool)
    for i, p in zip(with_image, paths):
        if by_path[p] is not None:
            image[i], has_image[i] = by_path[p], True

    texts = [(e.text or "").strip() for e in examples]
    encoders = {"image": f"{image_enc.id}|{image_enc.config}"}
    need_ocr = [i for i in range(n) if not texts[i] and has_image[i]]
    if ocr and need_ocr:
        ocr_enc = get_extractor("ocr", num_threads=num_threads)
        read, _ = encode_robust(cache, ocr_enc, [root / examples[i].image for i in need_ocr], chunk=8,
                                progress=say("ocr"))
        for i, t in zip(need_ocr, read):
            texts[i] = (t or "").strip()
        encoders["ocr"] = f"{ocr_enc.id}|{ocr_enc.config}"
    text_enc = get_extractor(text, num_threads=num_threads)
    has_text = np.array([bool(t) for t in texts])
    text_vecs = np.zeros((n, text_enc.dim), np.float32)
    present = [i for i in range(n) if has_text[i]]
    if present:
        got = cache.get_many(text_enc, [texts[i] for i in present], progress=say("texts"))
        text_vecs[present] = np.stack(got)
    encoders["text"] = f"{text_enc.id}|{text_enc.config}"
    return MMTable(
        dataset=dataset, task=task.name, labels=labels, ids=[e.id for e in examples],
        split=np.array([e.split for e in examples]), y=np.array([index[e.target] for e in examples], np.int64),
        image=image, has_image=has_image, text=text_vecs, has_text=has_text, texts=texts,
        group=[e.meta.get("event", dataset) for e in examples], encoders=encoders)


def main(argv: list[str] | None = None) -> None:
    """Precompute (cache) the features of the three datasets: ``python -m somelvlm.features.mm_table ROOT``."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("root")
    parser.add_argument("--datasets", nargs="*", default=list(MM_DATASETS))
    parser.add_argument("--texts", nargs="*", default=["minilm", "e5"])
    parser.add_argument("--max-train", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    for dataset in args.datasets:
        for text in args.texts:
            t = build_table(args.root, dataset, text=text, verbose=True, max_train=args.max_train)
            log.warning("%s/%s: %d posts, %d with image, %d with text", dataset, text, len(t.ids),
                        t.has_image.sum(), t.has_text.sum())


if __name__ == "__main__":
    main()
