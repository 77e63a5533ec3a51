"""What every text generator offers, so evaluation, ``analyze``, ``generate`` and the server treat
a local model and a remote OpenAI-compatible server alike.

A generator turns prompts (each with an optional image) into answers (``models.base.Generator``).
Backends live in the one model registry (``somelvlm.models.BACKENDS``); a shipped or saved
generative model is a folder whose ``config.json`` names its backend (``{"backend": "lvlm", ...}``).

>>> from somelvlm.models.generation import load_generator, GenerationConfig   # doctest: +SKIP
>>> gen = load_generator("some-lvlm")                                         # doctest: +SKIP
>>> gen.generate(["Rewrite politely: shut up, idiot"], config=GenerationConfig(max_new_tokens=32))
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from somelvlm.models import BACKENDS
from somelvlm.models.base import ChatGenerator, Generated, GenerationConfig, Generator  # noqa: F401 - re-exported

if TYPE_CHECKING:
    from PIL.Image import Image


GENERATORS = BACKENDS
"""The model backend registry (one for classifiers and generators; kept under this name for callers
that register a generator backend)."""


def load_generator(name: str | Path, **kwargs) -> Generator:
    """A generative model by shipped name, folder or server URL (``models.load_generator``)."""
    from somelvlm.models import load_generator as load

    return load(name, **kwargs)


def paired_images(prompts: list[str], images: list[Image | None] | None) -> list[Image | None]:
    """``images`` as a list with one entry (an image or None) per prompt; a length mismatch is an error."""
    images = list(images) if images is not None else [None] * len(prompts)
    if len(images) != len(prompts):
        raise ValueError(f"got {len(prompts)} prompts but {len(images)} images")
    return images
