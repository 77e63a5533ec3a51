"""Posts as the models see them, and the careful loading that turns user input into them.

Everything here treats input as hostile: text may be bytes in any encoding, empty, or megabytes
long; images may be corrupt, not images at all, decompression bombs, animated, CMYK, 16-bit or
rotated by EXIF. Each problem raises ``PostError`` with a reason a person can act on, so a batch
can record it for that row and go on.
"""

from __future__ import annotations

import contextlib
import io
import re
import stat
import unicodedata
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image


_SURROGATES = re.compile("[\ud800-\udfff]")
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Cc", "Zs", "Zl", "Zp"})
_FILLERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
"""Letters that render as nothing (Hangul fillers, the blank Braille pattern)."""

MODEL_IMAGE_SHORT_SIDE = 768
"""Shorter side, in pixels, an image is decoded to at most for the models (``load_image(short_side=)``):
the image encoder reads 224-256 px, the OCR detector 736 (``features.ocr.OCR_SHORT_SIDE``)."""
MODEL_IMAGE_LONG_SIDE = 2048
"""Longer side, in pixels, an image is decoded to at most (bounds very tall or wide images; RapidOCR
caps at 2000 itself)."""


class PostError(ValueError):
    """A post that cannot be processed; ``reason`` is a short category, the message says why."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    """What a post may be. The defaults fit real social-media posts with a wide margin."""

    max_text_chars: int = 20_000
    """Longer texts are rejected (tweets are <= 280 characters, long Facebook posts ~10k)."""
    max_image_bytes: int = 25_000_000
    """Larger image files are rejected before decoding."""
    max_image_pixels: int = 50_000_000
    """Width x height above this is rejected before decoding (decompression bombs)."""


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Post:
    """One post ready for a model: its id, its text (or None) and its RGB image (or None)."""

    id: str
    text: str | None = None
    image: Image | None = None
    meta: dict[str, str] | None = None
    """Extra fields a task's prompt may use (the stance ``target`` topic), e.g. in evaluation."""

    def __post_init__(self) -> None:
        if self.text is None and self.image is None:
            raise PostError("empty post", f"post {self.id!r} has neither text nor image")


def clean_text(value: str | bytes | None, limits: Limits = DEFAULT_LIMITS) -> str | None:
    """The post text, stripped; None when empty. Bytes must be UTF-8."""
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as err:
            raise PostError("invalid UTF-8", f"byte {err.start} ({value[err.start:err.start + 1]!r}) "
                            "is not valid UTF-8") from None
    if not isinstance(value, str):
        raise PostError("wrong type", f"text must be a string, got {type(value).__name__}")
    if _SURROGATES.search(value):
        raise PostError("invalid UTF-8", "text holds lone surrogates (undecodable bytes)")
    value = value.replace("\x00", "").strip()
    if len(value) > limits.max_text_chars:
        raise PostError("text too long", f"{len(value)} characters, the limit is {limits.max_text_chars}")
    if value and is_invisible(value):
        return None
    return value or None


def is_invisible(text: str) -> bool:
    """Whether ``text`` shows nothing: only spaces, zero-width characters (U+200B, joiners, BOM),
    controls and filler letters."""
    return all(c in _FILLERS or unicodedata.category(c) in _INVISIBLE_CATEGORIES for c in text)


def _image_bytes(source: bytes | Path | str, limits: Limits) -> bytes:
    """The bytes of an image file or buffer, after the file and byte-size checks."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            info = path.stat()
        except FileNotFoundError:
            raise PostError("missing image", f"{path} does not exist") from None
        except OSError as err:
            raise PostError("unreadable image", f"{path}: {err.strerror or err}") from None
        if stat.S_ISDIR(info.st_mode):
            raise PostError("not a regular file", f"{path} is a directory, not an image file")
        if not stat.S_ISREG(info.st_mode):
            raise PostError("not a regular file", f"{path} is not a regular file (a device, pipe or socket)")
        size = info.st_size
        if size > limits.max_image_bytes:
            raise PostError("image too large", f"{size} bytes, the limit is {limits.max_image_bytes}")
        data = path.read_bytes()
    else:
        data = bytes(source)
    if not data:
        raise PostError("empty image", "the image file has zero bytes")
    if len(data) > limits.max_image_bytes:
        raise PostError("image too large", f"{len(data)} bytes, the limit is {limits.max_image_bytes}")
    return data


@contextlib.contextmanager
def _decode_errors() -> Iterator[None]:
    """Pillow's failures while opening or decoding an image as ``PostError`` (a decompression-bomb
    warning counts as an error); a ``PostError`` raised inside passes through."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", PILImage.DecompressionBombWarning)
            yield
    except PostError:
        raise
    except (PILImage.DecompressionBombError, PILImage.DecompressionBombWarning) as err:
        raise PostError("image too large", str(err)) from None
    except UnidentifiedImageError:
        raise PostError("not an image", "the bytes are not an image format Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise PostError("corrupt image", str(err) or type(err).__name__) from None


def check_image(source: bytes | Path | str, limits: Limits = DEFAULT_LIMITS) -> tuple[int, int]:
    """``(width, height)`` of an image from its header, after the checks ``load_image`` makes before
    decoding (file, byte and pixel limits, a format Pillow knows): for an image no chosen task reads,
    which is then never decoded (``Pipeline.needs_image``). Raises ``PostError`` as ``load_image`` does."""
    from PIL import Image as PILImage

    data = _image_bytes(source, limits)
    with _decode_errors(), PILImage.open(io.BytesIO(data)) as img:  # reads the header only
        width, height = img.size
    if width * height > limits.max_image_pixels:
        raise PostError("image too large", f"{width}x{height} pixels, the limit is "
                                           f"{limits.max_image_pixels} pixels")
    return width, height


def load_image(source: bytes | Path | str, limits: Limits = DEFAULT_LIMITS, max_side: int | None = None,
               short_side: int | None = None) -> Image:
    """Decode an image into RGB, safely.

    ``source`` is the file's bytes or a local path (callers that serve requests pass bytes only).
    Animated images give their first frame; EXIF rotation is applied; CMYK, palette, 16-bit and
    alpha images are converted (transparency over white).

    ``max_side`` / ``short_side``: the image comes back with its longer / shorter side at most
    this many pixels (aspect kept), and is reduced while it is decoded: a JPEG is decoded at 1/2,
    1/4 or 1/8 scale by the decoder itself (``draft``), other formats are reduced right after
    decoding, so a batch of huge images holds only small ones (a 50 MP JPEG at ``short_side=768``
    never exists at full size in memory).
    """
    from PIL import Image as PILImage
    from PIL import ImageOps

    data = _image_bytes(source, limits)
    with _decode_errors():
        img = PILImage.open(io.BytesIO(data))
        width, height = img.size
        if width * height > limits.max_image_pixels:
            raise PostError("image too large", f"{width}x{height} pixels, the limit is "
                            f"{limits.max_image_pixels} pixels")
        if getattr(img, "is_animated", False):
            img.seek(0)
        scale = fit_scale(width, height, max_side, short_side)
        if scale < 1 and img.format == "JPEG":
            img.draft(None, (max(1, int(width * scale)), max(1, int(height * scale))))
        img.load()
        if scale < 1 and img.mode in _RESIZABLE_MODES:
            img = shrink(img, max_side, short_side)
    img = to_rgb(ImageOps.exif_transpose(img))
    return shrink(img, max_side, short_side)


_RESIZABLE_MODES = frozenset({"RGB", "RGBA", "L", "LA", "CMYK"})
"""Modes reduced before the RGB conversion (smaller to convert); others are converted first."""


def fit_scale(width: int, height: int, max_side: int | None = None, short_side: int | None = None) -> float:
    """The factor (at most 1) that brings the longer side to ``max_side`` and the shorter to
    ``short_side`` at most (None: no bound)."""
    scale = 1.0
    if max_side:
        scale = min(scale, max_side / max(width, height))
    if short_side:
        scale = min(scale, short_side / min(width, height))
    return scale


def shrink(img: Image, max_side: int | None = None, short_side: int | None = None) -> Image:
    """``img`` reduced by ``fit_scale`` (aspect kept; box-reduced, then bicubic); never enlarged."""
    from PIL import Image as PILImage

    width, height = img.size
    scale = fit_scale(width, height, max_side, short_side)
    if scale >= 1:
        return img
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return img.resize(size, PILImage.BICUBIC, reducing_gap=2.0)


def to_rgb(img: Image) -> Image:
    """RGB 8-bit: 16-bit scaled down, transparency composited over white, CMYK/palette converted."""
    from PIL import Image as PILImage

    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        import numpy as np

        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = PILImage.fromarray(np.clip(arr / peak * 255.0, 0, 255).astype("uint8"), mode="L")
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA"):
        rgba = img.convert("RGBA")
        background = PILImage.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = PILImage.alpha_composite(background, rgba)
    return img.convert("RGB")
