"""Content-addressed on-disk cache of extractor outputs.

Key: sha256 over the extractor's ``id``, its ``config`` and the item's content bytes (a text's
UTF-8, an image file's bytes, or a decoded image's mode, size and pixels). Value: one float32
``.npy`` per item (``.txt`` UTF-8 for text outputs such as OCR) under ``root/ab/cdef....npy``.
Files are written to a temporary name and renamed (``os.replace``), so a reader never sees half a
file; arrays load with ``allow_pickle=False``. A file that is unreadable or of the wrong shape is a
miss: it is recomputed and overwritten, never an error.

>>> from somelvlm.features import FeatureCache, get_extractor
>>> cache = FeatureCache()                                    # $SOMELVLM_CACHE or ~/.cache/...
>>> vecs = cache.get_many(get_extractor("minilm"), ["a post", "another post"])  # 2 x (384,)
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from somelvlm.digests import feature_cache_key
from somelvlm.posts import PostError, load_image, to_rgb

if TYPE_CHECKING:
    from .base import Extractor

log = logging.getLogger(__name__)


def default_root() -> Path:
    """``$SOMELVLM_CACHE`` if set, else ``~/.cache/somelvlm/features``."""
    env = os.environ.get("SOMELVLM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "somelvlm" / "features"


def content_bytes(item: Any, modality: str) -> bytes:
    """The bytes an item is keyed on: UTF-8 of a text; an image file's bytes (given as bytes or a
    path); for an already decoded PIL image, its mode, size and raw pixels."""
    if modality == "text":
        if not isinstance(item, str):
            raise TypeError(f"a text extractor takes str items, got {type(item).__name__}")
        return item.encode("utf-8", "surrogatepass")
    if isinstance(item, (bytes, bytearray, memoryview)):
        return bytes(item)
    if isinstance(item, (str, Path)):
        return Path(item).read_bytes()
    if hasattr(item, "tobytes") and hasattr(item, "mode") and hasattr(item, "size"):
        header = json.dumps({"pil": item.mode, "size": list(item.size)}).encode()
        return header + b"\n" + item.tobytes()
    raise TypeError(f"an image extractor takes file bytes, a path or a PIL image, got {type(item).__name__}")


class FeatureCache:
    """Computes extractor outputs once per distinct content and keeps them on disk."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root).expanduser() if root is not None else default_root()
        self.hits = 0
        """Items served from disk since this cache object was made."""
        self.misses = 0
        """Items computed (each distinct key once) since this cache object was made."""

    # -- keys and paths -------------------------------------------------------------------------
    @staticmethod
    def key(extractor: Extractor, content: bytes) -> str:
        """sha256 hex of the extractor's identity and the content bytes (``feature_cache_key``)."""
        return feature_cache_key(extractor.id, extractor.config, content)

    def path(self, key: str, output: str = "array") -> Path:
        """Where the value for ``key`` lives: ``root/ab/cdef....npy`` (``.txt`` for text outputs)."""
        suffix = ".npy" if output == "array" else ".txt"
        return self.root / key[:2] / (key[2:] + suffix)

    # -- reading and writing --------------------------------------------------------------------
    def load(self, path: Path, extractor: Extractor) -> Any:
        """The stored value, or None when absent, unreadable or not of the extractor's shape."""
        import numpy as np

        if not path.is_file():
            return None
        try:
            if extractor.output == "text":
                return path.read_bytes().decode("utf-8")
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError, UnicodeDecodeError) as err:
            log.warning("cache file %s is unreadable (%s): recomputing", path, err)
            return None
        if arr.dtype != np.float32 or tuple(arr.shape) != tuple(extractor.shape):
            log.warning("cache file %s holds %s %s, expected float32 %s: recomputing",
                        path, arr.dtype, arr.shape, tuple(extractor.shape))
            return None
        return arr

    @staticmethod
    def store(path: Path, value: Any) -> None:
        """Write ``value`` to ``path`` atomically (temporary file in the same folder, then rename);
        not fsync-ed: an entry lost to a crash is recomputed."""
        import numpy as np

        from somelvlm.atomic import atomic_path

        with atomic_path(path, durable=False) as tmp, open(tmp, "wb") as fh:
            if isinstance(value, str):
                fh.write(value.encode("utf-8"))
            else:
                buf = io.BytesIO()
                np.save(buf, np.ascontiguousarray(value, dtype=np.float32), allow_pickle=False)
                fh.write(buf.getbuffer())

    # -- the main entry point -------------------------------------------------------------------
    def get_many(self, extractor: Extractor, items: Sequence[Any], batch_size: int | None = None,
                 progress: Callable[[int, int], None] | None = None) -> list[Any]:
        """One output per item, in order: float32 arrays of ``extractor.shape`` (or strings).

        Only misses are computed, each distinct content once, ``batch_size`` (default the
        extractor's) at a time; images are decoded (``posts.load_image``) batch by batch, so memory
        stays bounded. ``progress(done, total_misses)`` is called after each batch. An image that is
        missing or cannot be decoded raises ``PostError`` naming its position. Items with the same
        content share one array object.
        """
        import numpy as np

        groups: dict[str, list[int]] = {}  # key -> positions of the items with that content
        for i, item in enumerate(items):
            groups.setdefault(self.key(extractor, self._content(item, i, extractor.modality)), []).append(i)
        out: list[Any] = [None] * len(items)
        misses = []
        for key, positions in groups.items():
            value = self.load(self.path(key, extractor.output), extractor)
            if value is None:
                misses.append(key)
                continue
            for i in positions:
                out[i] = value
            self.hits += len(positions)
        size = batch_size or extractor.batch_size
        for start in range(0, len(misses), size):
            keys = misses[start:start + size]
            batch = [self._prepare(items[groups[k][0]], groups[k][0], extractor.modality) for k in keys]
            values = extractor.encode_batch(batch)
            if extractor.output == "array":
                values = np.asarray(values, dtype=np.float32)
                expected = (len(keys), *extractor.shape)
                if values.shape != expected:
                    raise RuntimeError(f"{extractor.id} returned {values.shape}, expected {expected}")
            elif len(values) != len(keys):
                raise RuntimeError(f"{extractor.id} returned {len(values)} outputs for {len(keys)} items")
            for key, value in zip(keys, values, strict=True):
                if extractor.output == "array":
                    value = np.array(value, dtype=np.float32)  # its own copy, not a view of the batch
                self.store(self.path(key, extractor.output), value)
                for i in groups[key]:
                    out[i] = value
            self.misses += len(keys)
            if progress is not None:
                progress(min(start + size, len(misses)), len(misses))
        return out

    @staticmethod
    def _content(item: Any, position: int, modality: str) -> bytes:
        try:
            return content_bytes(item, modality)
        except FileNotFoundError:
            raise PostError("missing image", f"item {position}: {item} does not exist") from None

    @staticmethod
    def _prepare(item: Any, position: int, modality: str) -> Any:
        """What ``encode_batch`` takes: the text, or the image decoded to RGB."""
        if modality == "text":
            return item
        if hasattr(item, "mode") and hasattr(item, "size"):  # already a PIL image
            return item if item.mode == "RGB" else to_rgb(item)
        try:
            return load_image(item if isinstance(item, (str, Path)) else bytes(item))
        except PostError as err:
            raise PostError(err.reason, f"item {position}: {str(err)[len(err.reason) + 2:]}") from None
