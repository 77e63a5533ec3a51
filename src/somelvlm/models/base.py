"""The two kinds of model every entry point can use, and the one way their answers are written.

* ``Classifier``: posts in, one probability array per head out (``predict_proba``). SoMe-mini
  (``compact``), the image+text meme heads (``image_text``) and a remote somelvlm server
  (``openai_classifier``) are classifiers.
* ``Generator``: prompts (each with an optional image) in, answers out. SoMe-LVLM (``lvlm``),
  Hugging Face VLMs (``hf_vlm``) and any OpenAI-compatible server (``openai_http``) are generators.

``format_prediction`` turns one head's output row into the prediction dict that every output
(``analyze`` JSONL / Parquet, the Python API, the server, chat, ``eval``) carries. Nothing here
imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from somelvlm.taxonomy.heads import STANCE_TARGETS, HeadSpec

if TYPE_CHECKING:
    from somelvlm.posts import Post

__all__ = ["ChatGenerator", "Classifier", "Generated", "GenerationConfig", "Generator", "HeadSpec", "STANCE_TARGETS", "format_prediction", "texts_of"]


@runtime_checkable
class Classifier(Protocol):
    """A model with one head per task; one call serves every task asked for."""

    name: str
    """Short name reported in results and by the server's ``/v1/models``."""
    specs: dict[str, HeadSpec]
    """Task -> what its head outputs."""
    modalities: frozenset[str]
    """What it reads of a post: ``{"text"}`` or ``{"image", "text"}``."""

    def predict_proba(self, posts: list[Post] | list[str], tasks: list[str] | None = None) -> dict[str, np.ndarray]:
        """``task -> array``: (n, labels) probabilities, (n, groups, labels) for per-target heads,
        (n,) numbers for ratings. ``posts`` carry the text to read (the pipeline has already read a
        caption or OCR text into ``post.text``); plain strings are text posts."""
        ...


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding options shared by every backend."""

    max_new_tokens: int = 128
    """Upper bound on generated tokens per answer."""
    temperature: float = 0.0
    """0 means greedy decoding (deterministic: the same answers in-process and over HTTP)."""
    top_p: float = 1.0
    """Nucleus sampling mass, used only when ``temperature > 0``."""
    seed: int | None = None
    """Seed for sampling; ignored when greedy."""
    stop: tuple[str, ...] = ()
    """Stop strings: an answer ends before the first one it contains (OpenAI's ``stop``)."""

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not isinstance(self.stop, tuple) or not all(isinstance(x, str) and x for x in self.stop):
            raise ValueError(f"stop must be a tuple of non-empty strings, got {self.stop!r}")


@dataclass(frozen=True)
class Generated:
    """One answer and what an OpenAI client reports about it (``usage``, ``finish_reason``)."""

    text: str
    """The answer, cut before the first stop string, stripped."""
    prompt_tokens: int | None = None
    """Tokens of the rendered prompt (image placeholder tokens included); None when unknown."""
    completion_tokens: int | None = None
    """Tokens generated for the answer (the end-of-answer or stop-string token included)."""
    finish_reason: str = "stop"
    """``"stop"``: the model ended its answer or wrote a stop string; ``"length"``: it hit ``max_new_tokens``."""


@runtime_checkable
class Generator(Protocol):
    """A model that answers prompts, optionally about an image."""

    name: str

    def generate(self, prompts: list[str], images: list | None = None,
                 config: GenerationConfig | None = None) -> list[str]:
        """One answer per prompt, in order; ``images[i]`` (RGB) goes with ``prompts[i]``."""
        ...


@runtime_checkable
class ChatGenerator(Generator, Protocol):
    """A local generator that also takes whole conversations (its tokenizer's chat template renders
    system, user and assistant turns) and reports token counts; ``lvlm`` and ``hf_vlm`` are.

    A conversation is a list of ``{"role": "system" | "user" | "assistant", "content": str}``; the
    image of ``images[i]`` sits where ``<image>`` is in conversation ``i`` (else before the last user
    turn). ``on_text`` (one conversation only) receives the answer's text piece by piece while it is
    generated; ``cancel[i]`` (an Event) set stops conversation ``i`` early.
    """

    def chat(self, conversations: list[list[dict]], images: list | None = None,
             config: GenerationConfig | None = None, *, on_text=None, cancel=None) -> list[Generated]:
        ...


def texts_of(posts: list) -> list[str]:
    """The text of each post (``Post.text`` or the string itself), for text classifiers."""
    return [p if isinstance(p, str) else (p.text or "") for p in posts]


def format_prediction(spec: HeadSpec, row: np.ndarray, digits: int = 4, domain: tuple[float, float] | None = None,
                      **extra) -> dict:
    """One head's output for one post as the prediction every output carries.

    ``row``: (labels,) probabilities, (groups, labels) for per-target heads, or a number for
    ratings. Classification -> ``{"label", "prob", "probs"}``; ratings -> ``{"value"}`` (clipped to
    0-5); per-target -> ``{"targets": {target: {"label", "prob", "probs"}}}``. ``digits``: 4 by
    default (ratings 3); 9 round-trips float32 exactly (the server's ``probability_digits``).
    ``domain``: ``(score, threshold)`` of the head's applicability check, giving ``in_domain`` and
    ``domain_score``; None when the model has no such check (both fields null). ``extra`` keys
    (e.g. ``modality``) are added as given.
    """
    if spec.kind == "regression":
        out: dict = {"value": _round(float(np.clip(row, 0, 5)), digits if digits >= 9 else min(digits, 3))}
    elif spec.groups:
        out = {"targets": {g: _label(spec.labels, row[j], digits) for j, g in enumerate(spec.groups)}}
    else:
        out = _label(spec.labels, row, digits)
    if domain is None:
        out["in_domain"], out["domain_score"] = None, None
    else:
        score, threshold = domain
        out["in_domain"], out["domain_score"] = bool(score >= threshold), _round(float(score), digits)
    out.update(extra)
    return out


def _round(x: float, digits: int) -> float:
    return float(f"{x:.{digits}g}") if digits >= 9 else round(x, digits)


def _label(labels: tuple[str, ...], p: np.ndarray, digits: int) -> dict:
    k = int(np.argmax(p))
    return {"label": labels[k], "prob": _round(float(p[k]), digits),
            "probs": {lab: _round(float(x), digits) for lab, x in zip(labels, p)}}
