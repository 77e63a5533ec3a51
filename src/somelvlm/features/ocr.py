"""Meme text by OCR: RapidOCR (PP-OCRv4 detection + recognition, ONNX, package
``rapidocr-onnxruntime``), with the lines put in reading order and word spaces restored.

The PP-OCRv4 recogniser knows the space character but rarely emits it for Latin text
("WHENYOUFINALLY"). Where a word gap is, though, the space keeps a clearly raised probability
(typically 0.2-0.6 in the columns between the two letters, against < 0.01 inside words), so the
decoder here inserts a space between two letters when the space probability of any column between
them passes ``space_threshold``. This costs nothing (the probabilities are already computed) and
works for any script the recogniser reads, code-mixed Hindi-English included. On real CM_MEMES
memes (Hindi-English, ground-truth captions) bag-of-words F1 against the caption rose from 0.36 to
0.85 (20 memes; the threshold 0.02 was picked on 20 other memes: 0.2 -> 0.70, 0.1 -> 0.81,
0.05 -> 0.85, 0.02 -> 0.86, 0.01 -> 0.86, 0.003 -> 0.85).

Large images are read downscaled: the shorter side reduced to at most ``short_side``
(``OCR_SHORT_SIDE``, 736 px, the detector's own input size: PP-OCR's ``limit_side_len`` enlarges
smaller images to it) before detection. A 21 MP photo meme took 5.5 s at full size (RapidOCR only
caps the longer side at 2000 px); reduced, it costs what a small meme costs. Box corners are given
back in the original image's pixels. Word F1 against the captions and speed before / after:
``benchmarks/results/ocr_downscale.md`` (``benchmarks/ocr_downscale.py``).

>>> MemeOCR().read(load_image("meme.png"))
'WHEN YOU FINALLY fix the bug at 3am but tests still fail'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .base import package_version, require

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image

CODE_VERSION = "1"
"""Bump when the code changes the output for the same models (invalidates cached text)."""
OCR_SHORT_SIDE = 736
"""Shorter side, in pixels, of the image the OCR reads at most (larger images are reduced first)."""


@dataclass(frozen=True)
class Line:
    """One detected text box: its text, the recogniser's confidence and its corners (x, y)."""

    text: str
    score: float
    box: tuple[tuple[float, float], ...]

    @property
    def top(self) -> float:
        return min(y for _, y in self.box)

    @property
    def bottom(self) -> float:
        return max(y for _, y in self.box)

    @property
    def left(self) -> float:
        return min(x for x, _ in self.box)


def reading_order(lines: list[Line]) -> list[Line]:
    """Top-to-bottom rows, left-to-right within a row. Two boxes share a row when they overlap
    vertically by at least half the lower box's height (scale-free, unlike a pixel tolerance)."""
    rows: list[list[Line]] = []
    for line in sorted(lines, key=lambda b: (b.top + b.bottom) / 2):
        if rows:
            row = rows[-1]
            top, bottom = min(b.top for b in row), max(b.bottom for b in row)
            overlap = min(bottom, line.bottom) - max(top, line.top)
            if overlap >= 0.5 * min(bottom - top, line.bottom - line.top):
                row.append(line)
                continue
        rows.append([line])
    return [b for row in rows for b in sorted(row, key=lambda b: b.left)]


class SpaceAwareCTCDecode:
    """Greedy CTC decoding that also inserts the spaces the recogniser nearly emitted.

    Drop-in for RapidOCR's ``CTCLabelDecode`` call: ``preds`` (batch, columns, classes)
    probabilities -> ``[(text, mean confidence of the emitted characters), ...]``.
    """

    def __init__(self, inner: Any, threshold: float) -> None:
        self.inner = inner
        self.character = inner.character  # index 0 is the CTC blank
        self.space = self.character.index(" ")
        self.threshold = threshold

    def __call__(self, preds: np.ndarray, return_word_box: bool = False, **kwargs: Any):
        import numpy as np

        if return_word_box:  # word boxes need the package's own bookkeeping
            return self.inner(preds, return_word_box, **kwargs)
        idx = preds.argmax(axis=2)  # (batch, columns)
        prob = preds.max(axis=2)
        results = []
        for row in range(idx.shape[0]):
            ids, keep = idx[row], np.ones(idx.shape[1], dtype=bool)
            keep[1:] = ids[1:] != ids[:-1]  # collapse repeats
            keep &= ids != 0  # drop blanks
            cols = np.flatnonzero(keep)
            text, prev = [], None
            for col in cols:
                char = self.character[ids[col]]
                if (prev is not None and char != " " and text and text[-1] != " "
                        and col - prev > 1 and preds[row, prev + 1:col, self.space].max() > self.threshold):
                    text.append(" ")
                text.append(char)
                prev = col
            score = float(prob[row, cols].mean()) if len(cols) else 0.0
            results.append(("".join(text), score))
        return results


class MemeOCR:
    """Reads the text of a meme: ``read(image) -> str``; cached output is that string."""

    id = "ocr"
    modality = "image"
    output = "text"
    shape: tuple[int, ...] = ()

    def __init__(self, restore_spaces: bool = True, space_threshold: float = 0.02,
                 min_score: float = 0.5, batch_size: int = 8, num_threads: int | None = None,
                 short_side: int | None = OCR_SHORT_SIDE) -> None:
        """``space_threshold``: space probability between two letters above which a space is
        inserted (``restore_spaces=False`` keeps the recogniser's own output). ``min_score``: lines
        recognised with a lower mean confidence are dropped. ``num_threads``: onnxruntime threads
        per model (default: all cores). ``short_side``: images whose shorter side is larger are
        reduced to it before reading, aspect kept (None: read at full size)."""
        if short_side is not None and short_side < 64:
            raise ValueError(f"short_side must be at least 64 pixels (or None), got {short_side}")
        self.restore_spaces = restore_spaces
        self.space_threshold = space_threshold
        self.min_score = min_score
        self.batch_size = batch_size
        self.num_threads = num_threads
        self.short_side = short_side
        spaces = f"spaces>{space_threshold}" if restore_spaces else "spaces=model"
        side = "" if short_side is None else f";short_side={short_side}"
        self.config = (f"code={CODE_VERSION};{package_version('rapidocr-onnxruntime')};"
                       f"{spaces};min_score={min_score};order=rows{side}")
        self._engine = None

    def _load(self):
        if self._engine is None:
            rapidocr = require("rapidocr_onnxruntime", "rapidocr-onnxruntime", "MemeOCR")
            kwargs: dict[str, Any] = {"text_score": self.min_score}
            if self.num_threads:
                kwargs["intra_op_num_threads"] = self.num_threads
            engine = rapidocr.RapidOCR(**kwargs)
            if self.restore_spaces:
                engine.text_rec.postprocess_op = SpaceAwareCTCDecode(engine.text_rec.postprocess_op,
                                                                     self.space_threshold)
            self._engine = engine
        return self._engine

    def read_lines(self, image: Image) -> list[Line]:
        """The detected text boxes in reading order (corners in ``image``'s own pixels)."""
        from ..posts import shrink, to_rgb

        engine = self._load()
        image = image if image.mode == "RGB" else to_rgb(image)
        width = image.size[0]
        image = shrink(image, short_side=self.short_side)
        scale = width / image.size[0]
        result, _ = engine(image, text_score=self.min_score)
        lines = [Line(text=str(text).strip(), score=float(score),
                      box=tuple((float(x) * scale, float(y) * scale) for x, y in box))
                 for box, text, score in (result or [])]
        return reading_order([line for line in lines if line.text])

    def read(self, image: Image) -> str:
        """The meme's text: its boxes in reading order joined by spaces ('' when none is found)."""
        return " ".join(line.text for line in self.read_lines(image))

    def encode_batch(self, items: list[Image]) -> list[str]:
        return [self.read(img) for img in items]


_SHARED: dict[int | None, MemeOCR] = {}
_SHARED_LOCK = __import__("threading").Lock()


def shared_ocr(num_threads: int | None = None) -> MemeOCR:
    """The process's one ``MemeOCR`` per thread count (its ONNX sessions load once), for every caller
    that reads a post's text off its image: the pipeline, the image+text heads, the feature tables."""
    with _SHARED_LOCK:
        if num_threads not in _SHARED:
            _SHARED[num_threads] = MemeOCR(num_threads=num_threads)
        return _SHARED[num_threads]
