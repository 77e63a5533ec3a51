"""``somelvlm.analyze``: posts in, a label and probability per task out (the ``Pipeline`` underneath).

>>> from somelvlm import analyze                                        # doctest: +SKIP
>>> analyze(["what a lovely day #sun"], tasks=["emotion", "irony"])     # doctest: +SKIP
[{'emotion': {'label': 'joy', 'prob': 0.93, 'probs': {...}}, 'irony': {...}}]

A post's text is its caption or, when it has none, the text OCR reads off its image. A post that
cannot be read comes back as ``{"error": {"reason", "message"}}`` in its place.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from somelvlm.pipeline import Pipeline
from somelvlm.posts import Post, PostError

Analyzer = Pipeline
"""The former name of ``Pipeline`` (same arguments)."""


def analyze(posts: Iterable[str | Post], tasks: list[str] | None = None, levels: list[str] | None = None,
            model: str | Path | None = None, **options) -> list[dict]:
    """Labels for each post (a string or a ``Post``), one dict per post in input order. ``options``
    go to ``Pipeline`` (``generator``, ``runtime``, ``rkc``, ``ocr``, ``multimodal``, ...)."""
    from somelvlm.posts import clean_text

    pipeline = Pipeline(model, tasks, levels, **options)
    items = [p if isinstance(p, Post) else Post(id=str(i), text=clean_text(p)) for i, p in enumerate(posts)]
    return [{"error": {"reason": r.reason, "message": str(r)}} if isinstance(r, PostError) else r
            for r in pipeline(items)]
