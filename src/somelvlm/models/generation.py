"""What every text generator offers, so evaluation, ``analyze``, ``generate`` and the server treat
a local model and a remote OpenAI-compatible server alike.

A generator turns prompts (each with an optional image) into answers. Backends are looked up by
name through a lazy registry; a shipped or saved generative model is a folder whose
``config.json`` names its backend (``{"backend": "lvlm", ...}``).

>>> from somelvlm.models.generation import load_generator, GenerationConfig   # doctest: +SKIP
>>> gen = load_generator("some-lvlm")                                         # doctest: +SKIP
>>> gen.generate(["Rewrite politely: shut up, idiot"], config=GenerationConfig(max_new_tokens=32))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from somelvlm.registry import Registry

if TYPE_CHECKING:
    from PIL.Image import Image


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
    """Short name reported in results and by the server's ``/v1/models``."""

    def generate(self, prompts: list[str], images: list[Image | None] | None = None,
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

    def chat(self, conversations: list[list[dict]], images: list[Image | None] | None = None,
             config: GenerationConfig | None = None, *, on_text=None, cancel=None) -> list[Generated]:
        ...


GENERATORS = Registry("generator backend", {
    "lvlm": "somelvlm.models.lvlm:LVLMGenerator",
    "hf_vlm": "somelvlm.models.hf_vlm:HFVisionGenerator",
    "openai_http": "somelvlm.models.openai_http:OpenAIGenerator",
})
"""Backend name -> ``"module:Class"``; each class is built from a model folder or keyword options."""


def load_generator(name: str, **kwargs) -> Generator:
    """A generative model by shipped name or folder, built by the backend its ``config.json`` names.

    Remote servers are not folders: build them directly, e.g.
    ``GENERATORS.get("openai_http")(base_url="http://127.0.0.1:8000/v1", model="some-lvlm")``.
    """
    import json

    from somelvlm.models import model_folder

    folder = model_folder(name)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    if "backend" not in config or config["backend"] not in GENERATORS:
        raise ValueError(f"{folder} is not a generative model (its config.json names backend "
                         f"{config.get('backend', 'compact')!r}; generators: {', '.join(GENERATORS)})")
    return GENERATORS.get(config["backend"])(folder, **kwargs)


def paired_images(prompts: list[str], images: list[Image | None] | None) -> list[Image | None]:
    """``images`` as a list with one entry (an image or None) per prompt; a length mismatch is an error."""
    images = list(images) if images is not None else [None] * len(prompts)
    if len(images) != len(prompts):
        raise ValueError(f"got {len(prompts)} prompts but {len(images)} images")
    return images
