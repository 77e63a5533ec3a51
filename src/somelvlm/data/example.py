"""The typed example every source adapter yields."""

from __future__ import annotations

from dataclasses import dataclass, field

SPLITS: tuple[str, ...] = ("train", "val", "test")


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled post from a real upstream dataset.

    Adapters fill this from the upstream's own files; the SoMeData builder turns it into an
    instruction record with the task's prompt templates.
    """

    id: str
    """Globally unique and stable: ``"<source>/<subset>/<upstream id or line number>"``."""
    source: str
    """The folder under the data root it came from, e.g. ``"tweeteval"``."""
    task: str
    """The task name in the taxonomy registry, e.g. ``"emotion"``."""
    split: str
    """One of ``"train"``, ``"val"``, ``"test"`` (upstream's, or derived and documented)."""
    target: str | float
    """A label name of the task (classification), a number (regression) or the reference text
    (generation)."""
    text: str | None = None
    """The post's text (for memes: the text written on the image), or None for image-only posts."""
    image: str | None = None
    """The image's path relative to the data root (POSIX separators), or None."""
    meta: dict[str, str] = field(default_factory=dict)
    """Extra upstream fields a prompt or an analysis may use (stance ``target`` topic, event...)."""

    def __post_init__(self) -> None:
        if self.split not in SPLITS:
            raise ValueError(f"{self.id}: split must be one of {SPLITS}, got {self.split!r}")
