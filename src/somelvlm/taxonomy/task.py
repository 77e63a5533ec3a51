"""A task of the cognitive framework, loaded from its YAML file and validated."""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

Kind = Literal["classification", "regression", "generation"]
Modality = Literal["text", "image", "both"]
KINDS: tuple[str, ...] = ("classification", "regression", "generation")
MODALITIES: tuple[str, ...] = ("text", "image", "both")
PLACEHOLDERS = {"text", "choices", "target", "range"}
_KEYS = {"name", "level", "family", "modality", "kind", "description", "labels", "aliases", "range",
         "metrics", "sources", "prompts", "generation", "domain"}
GENERATION_KEYS = {"max_new_tokens"}
DOMAIN_KEYS = {"genre", "topic"}


class TaskFileError(ValueError):
    """A task YAML that breaks the schema; the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class Metric:
    """How a task is scored: a registered metric name, plus the labels it averages over (``f1_of``)."""

    name: str
    labels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Source:
    """Where a task's real data comes from: a folder of the data root, and whom to cite."""

    name: str
    subset: str = ""
    citation: str = ""


@dataclass(frozen=True)
class Task:
    """One task: what to ask of a post, the answers allowed, and how answers are scored."""

    name: str
    level: str
    """Cognitive level id, e.g. ``"knowledge_comprehension"``."""
    family: str
    """Task family id, e.g. ``"hate_toxicity"``."""
    modality: Modality
    kind: Kind
    description: str
    labels: dict[str, str]
    """Classification only: label id -> one-line description; the order is the class index."""
    metrics: tuple[Metric, ...]
    """The first is the primary metric."""
    sources: tuple[Source, ...]
    prompts: tuple[str, ...]
    """Instruction templates with ``{text}``, ``{choices}``, ``{target}``, ``{range}`` placeholders."""
    range: tuple[float, float] | None = None
    """Regression only: the inclusive range of valid answers."""
    aliases: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Classification only: label id -> other words an answer may use for it, where the question's
    wording invites them ("Is it ironic?" -> ``irony: [ironic]``); the parser accepts them."""
    max_new_tokens: int | None = None
    """How many tokens an answer by generation may take (YAML ``generation: {max_new_tokens: N}``);
    None: 12 for classification and rating answers, 64 for generation tasks."""
    genre: str = ""
    """What kind of posts the task's data are (YAML ``domain: {genre: tweet}``): ``tweet``, ``meme``,
    ``code_mixed_meme``, ``joke``, ``statement``; empty when not said. A head's applicability
    contrasts its posts with posts of other genres."""
    topic: str = ""
    """The one subject the task's data are about (YAML ``domain: {topic: COVID-19}``), e.g. a COVID
    fake-news detector; empty for tasks that apply to posts on any subject. A topic-bound head's
    applicability contrasts its posts with every other dataset, also those of its own genre."""
    path: Path | None = field(default=None, compare=False)

    @property
    def topic_bound(self) -> bool:
        return bool(self.topic)

    @property
    def answer_tokens(self) -> int:
        """The answer budget when this task is asked of a generator."""
        if self.max_new_tokens is not None:
            return self.max_new_tokens
        return 64 if self.kind == "generation" else 12

    @property
    def label_ids(self) -> list[str]:
        return list(self.labels)

    @property
    def primary_metric(self) -> Metric:
        return self.metrics[0]

    def choices_text(self) -> str:
        """The answer choices as a prompt shows them: ``"not hate, hate"``."""
        return ", ".join(display_label(lab) for lab in self.labels)

    def answer(self, target: str | float) -> str:
        """The reference answer a model should give for ``target`` (the assistant turn)."""
        if self.kind == "classification":
            if target not in self.labels:
                raise ValueError(f"task {self.name}: {target!r} is not one of {self.label_ids}")
            return display_label(str(target))
        if self.kind == "regression":
            return f"{float(target):.2f}".rstrip("0").rstrip(".")
        return str(target)

    def render(self, prompt_index: int, text: str | None, meta: dict[str, str] | None = None) -> str:
        """Fill prompt ``prompt_index`` (taken modulo the number of prompts) for one post."""
        template = self.prompts[prompt_index % len(self.prompts)]
        values = {
            "text": (text or "").strip(),
            "choices": self.choices_text(),
            "target": (meta or {}).get("target", ""),
            "range": f"{self.range[0]:g} to {self.range[1]:g}" if self.range else "",
        }
        return template.format(**values)

    @classmethod
    def from_yaml(cls, path: Path) -> Task:
        """Load and validate one task file; every error names the file and the field to fix."""
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise TaskFileError(f"{path}: not valid YAML: {err}") from err
        if not isinstance(data, dict):
            raise TaskFileError(f"{path}: expected a mapping at the top level")
        return cls.from_dict(data, path=Path(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path | None = None) -> Task:
        from somelvlm.taxonomy.levels import LEVELS, family_ids

        where = str(path) if path else f"task {data.get('name', '?')}"

        def fail(msg: str) -> TaskFileError:
            return TaskFileError(f"{where}: {msg}")

        extra = set(data) - _KEYS
        if extra:
            raise fail(f"unknown keys {sorted(extra)}; allowed: {sorted(_KEYS)}")
        for key in ("name", "level", "family", "modality", "kind", "description", "metrics", "sources",
                    "prompts"):
            if not data.get(key):
                raise fail(f"missing `{key}`")
        if path is not None and data["name"] != path.stem:
            raise fail(f"`name: {data['name']}` must equal the file name {path.stem!r}")
        if data["level"] not in LEVELS.ids():
            raise fail(f"`level: {data['level']}` is not one of {LEVELS.ids()}")
        if data["family"] not in family_ids():
            raise fail(f"`family: {data['family']}` is not one of {family_ids()}")
        if data["modality"] not in MODALITIES:
            raise fail(f"`modality` must be one of {MODALITIES}")
        if data["kind"] not in KINDS:
            raise fail(f"`kind` must be one of {KINDS}")
        labels = {str(k): str(v) for k, v in (data.get("labels") or {}).items()}
        if data["kind"] == "classification" and len(labels) < 2:
            raise fail("a classification task needs `labels` with at least two entries")
        if data["kind"] != "classification" and labels:
            raise fail("`labels` is only for classification tasks")
        aliases = {str(k): tuple(str(a) for a in v) for k, v in (data.get("aliases") or {}).items()}
        if set(aliases) - set(labels):
            raise fail(f"`aliases` names labels {sorted(set(aliases) - set(labels))} not in `labels`")
        rng = data.get("range")
        if data["kind"] == "regression":
            if not (isinstance(rng, list) and len(rng) == 2 and rng[0] < rng[1]):
                raise fail("a regression task needs `range: [low, high]`")
            rng = (float(rng[0]), float(rng[1]))
        elif rng is not None:
            raise fail("`range` is only for regression tasks")
        metrics = tuple(Metric(m["name"], tuple(m.get("labels", ()))) for m in data["metrics"])
        for m in metrics:
            if set(m.labels) - set(labels):
                raise fail(f"metric {m.name} names labels {sorted(set(m.labels) - set(labels))} not in `labels`")
        sources = tuple(Source(s["name"], s.get("subset", ""), s.get("citation", "")) for s in data["sources"])
        prompts = tuple(str(p) for p in data["prompts"])
        if len(set(prompts)) < 5:
            raise fail(f"needs at least 5 distinct prompts, has {len(set(prompts))}")
        for i, prompt in enumerate(prompts):
            names = {f for _, f, _, _ in string.Formatter().parse(prompt) if f is not None}
            if names - PLACEHOLDERS:
                raise fail(f"prompt {i} uses unknown placeholders {sorted(names - PLACEHOLDERS)}")
            if "text" not in names:
                raise fail(f"prompt {i} must contain {{text}}")
            if data["kind"] == "classification" and "choices" not in names:
                raise fail(f"prompt {i} of a classification task must list {{choices}}")
        generation = data.get("generation") or {}
        if not isinstance(generation, dict) or set(generation) - GENERATION_KEYS:
            raise fail(f"`generation` takes only {sorted(GENERATION_KEYS)}")
        max_new_tokens = generation.get("max_new_tokens")
        if max_new_tokens is not None and (not isinstance(max_new_tokens, int) or max_new_tokens < 1):
            raise fail("`generation.max_new_tokens` must be a positive integer")
        domain = data.get("domain") or {}
        if not isinstance(domain, dict) or set(domain) - DOMAIN_KEYS:
            raise fail(f"`domain` takes only {sorted(DOMAIN_KEYS)}")
        if any(not isinstance(v, str) or not v.strip() for v in domain.values()):
            raise fail("`domain.genre` and `domain.topic` must be non-empty strings")
        return cls(
            name=data["name"], level=data["level"], family=data["family"], modality=data["modality"],
            kind=data["kind"], description=str(data["description"]).strip(), labels=labels,
            metrics=metrics, sources=sources, prompts=prompts, range=rng, aliases=aliases,
            max_new_tokens=max_new_tokens, genre=domain.get("genre", "").strip(),
            topic=domain.get("topic", "").strip(), path=path,
        )


def display_label(label_id: str) -> str:
    """How a label reads in prompts and answers: ``not_hate`` -> ``not hate``."""
    return label_id.replace("_", " ")
