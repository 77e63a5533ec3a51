"""What every feature extractor offers, so the cache and the registry can treat them alike."""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable


@runtime_checkable
class Extractor(Protocol):
    """A frozen model that turns one text or one image into features.

    The cache keys each result on ``id``, ``config`` and the item's bytes, so ``config`` must name
    everything that changes the output (package and weights version, preprocessing, pooling, prefix)
    and nothing that does not (batch size, threads).
    """

    id: str
    """Stable short name, e.g. ``"minilm"``."""
    config: str
    """Everything else that changes the output; a change invalidates the cache."""
    modality: Literal["text", "image"]
    """What ``encode_batch`` takes: ``list[str]`` or ``list[PIL.Image.Image]`` (RGB)."""
    output: Literal["array", "text"]
    """``"array"``: float32 rows of ``shape``; ``"text"``: one string per item (OCR)."""
    shape: tuple[int, ...]
    """Shape of one item's array (``()`` for text outputs)."""
    batch_size: int
    """How many misses the cache hands to ``encode_batch`` at once."""

    def encode_batch(self, items: list[Any]) -> Any:
        """``(n, *shape)`` float32 array, or ``list[str]`` for text outputs."""
        ...


def package_version(dist: str) -> str:
    """``"dist=1.2.3"``, or ``"dist=?"`` when the distribution metadata is missing (vendored copy)."""
    from importlib import metadata

    try:
        return f"{dist}={metadata.version(dist)}"
    except metadata.PackageNotFoundError:
        return f"{dist}=?"


def require(module: str, dist: str, what: str):
    """Import ``module`` or raise an ImportError that says which pip package to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{what} needs the package {dist}: pip install {dist} ({err})") from None


class torch_threads:
    """Run a block with ``torch.set_num_threads(n)`` and restore the old count after; ``None``
    leaves torch alone. On a machine whose cores other jobs share, 1 thread can be many times
    faster than all of them (OpenMP workers wait on each other at every small op)."""

    def __init__(self, n: int | None) -> None:
        self.n = n
        self.old: int | None = None

    def __enter__(self) -> None:
        if self.n:
            import torch

            self.old = torch.get_num_threads()
            torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        if self.old is not None:
            import torch

            torch.set_num_threads(self.old)
            self.old = None
