"""Harmful / hateful / offensive meme sources as *domains* for cross-domain training (LMM-RGCL).

A domain is one source (and subset) of the data root with one binary notion of "bad meme": the
task's first label (``not_harmful``, ``not_hateful``, ``not_offensive`` ...) is the negative class,
every other label positive (HarMeme's ``somewhat_harmful`` and ``very_harmful`` both count as
harmful, as in the LMM-RGCL paper's binary Harm-C / Harm-P). The label itself is kept, so a model
can still be taught to answer in the task's own label words.

| domain     | source / subset     | task            | images here |
|------------|---------------------|-----------------|-------------|
| harm-c     | harmeme / Harm-C    | harmful_meme    | no (text)   |
| harm-p     | harmeme / Harm-P    | harmful_meme    | no (text)   |
| fhm        | hmc / FHM           | hateful_meme    | no (text)   |
| pridemm    | hmc / PrideMM       | hateful_meme    | no (text)   |
| multioff   | hmc / MultiOFF      | offensive_meme  | no (text)   |
| mami       | hmc / MAMI          | misogynous_meme | no (text)   |
| cm_memes   | cm_memes            | offensive_meme  | yes         |

Harm-P has no test file upstream, so its ``val`` split is its test split here (``test_split``).

>>> memes, skipped = load_domain(data_root, "harm-c")                     # doctest: +SKIP
>>> memes[0].positive, memes[0].label, memes[0].split                     # doctest: +SKIP
(True, 'very_harmful', 'train')
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from somelvlm.registry import unknown


@dataclass(frozen=True)
class Domain:
    """Where a domain's memes come from."""

    source: str
    subset: str | None
    task: str
    test_split: str = "test"
    """The split used as the domain's test set (Harm-P has no test file: its val)."""


DOMAINS: dict[str, Domain] = {
    "harm-c": Domain("harmeme", "Harm-C", "harmful_meme"),
    "harm-p": Domain("harmeme", "Harm-P", "harmful_meme", test_split="val"),
    "fhm": Domain("hmc", "FHM", "hateful_meme"),
    "pridemm": Domain("hmc", "PrideMM", "hateful_meme"),
    "multioff": Domain("hmc", "MultiOFF", "offensive_meme"),
    "mami": Domain("hmc", "MAMI", "misogynous_meme"),
    "cm_memes": Domain("cm_memes", None, "offensive_meme"),
}
"""Domain name -> where its memes come from."""


def get_domain(name: str) -> Domain:
    """The domain called ``name``; an unknown name raises naming the closest ones."""
    if name not in DOMAINS:
        raise unknown("meme domain", name, DOMAINS)
    return DOMAINS[name]


@dataclass(frozen=True)
class Meme:
    """One labelled meme of a domain."""

    id: str
    text: str
    image: str | None
    """Absolute path of the image, or None (text-only copies)."""
    label: str
    """The task's label id."""
    positive: bool
    """The binary target: any label but the task's first (negative) one."""
    split: str
    domain: str
    task: str


def negative_label(task_name: str) -> str:
    """The task's negative label: its first one (``not_harmful``, ``not_hateful`` ...)."""
    from somelvlm.taxonomy.registry import get_task

    return get_task(task_name).label_ids[0]


def positive_name(task_name: str) -> str:
    """The binary positive class's name: the only other label, else the negative without ``not_``."""
    from somelvlm.taxonomy.registry import get_task

    labels = get_task(task_name).label_ids
    return labels[1] if len(labels) == 2 else labels[0].removeprefix("not_").removeprefix("non_")


def load_domain(root: Path | str, name: str) -> tuple[list[Meme], list[dict]]:
    """``(memes, skipped)``: every labelled meme of domain ``name``; the adapter's problems and memes
    without text are ``{"id", "reason", "message"}`` rows of ``skipped`` (nothing raises)."""
    from somelvlm.data.report import DataReport
    from somelvlm.data.sources import load_source

    spec = get_domain(name)
    root = Path(root)
    report = DataReport()
    negative = negative_label(spec.task)
    memes, skipped = [], []
    for e in load_source(spec.source, root, report):
        if e.task != spec.task or (spec.subset and (e.meta or {}).get("subset") != spec.subset):
            continue
        if not (e.text or "").strip():
            skipped.append({"id": e.id, "reason": "no text", "message": "the meme has no text (no caption or OCR)"})
            continue
        memes.append(Meme(id=e.id, text=e.text.strip(), image=str(root / e.image) if e.image else None,
                          label=str(e.target), positive=str(e.target) != negative, split=e.split,
                          domain=name, task=spec.task))
    for p in report.problems:
        if spec.subset and spec.subset not in p.file:
            continue
        skipped.append({"id": f"{p.file}:{p.line}", "reason": p.reason, "message": p.detail})
    return memes, skipped


def load_meme_file(path: Path | str, task_name: str, domain: str | None = None) -> tuple[list[Meme], list[dict]]:
    """``(memes, skipped)`` from a JSONL file of labelled memes: ``id``, ``text``, ``image`` (optional,
    relative to the file), ``label`` (one of the task's labels) and ``split`` (default train). Rows
    without text, with an unknown label, a repeated id or an image file that is not there are
    ``skipped`` with the reason; the rest are read."""
    import json

    from somelvlm.taxonomy.registry import get_task

    path = Path(path)
    task = get_task(task_name)
    negative = task.label_ids[0]
    memes, skipped, seen = [], [], set()
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            skipped.append({"id": f"{path.name}:{n}", "reason": "malformed JSON", "message": str(err)})
            continue
        uid = str(row.get("id") or f"{path.name}:{n}")
        text, label, image = str(row.get("text") or "").strip(), str(row.get("label") or ""), row.get("image")
        why = None
        if uid in seen:
            why = ("duplicate id", "the id appears earlier in the file")
        elif not text:
            why = ("no text", "the meme has no text")
        elif label not in task.labels:
            why = ("bad label", f"label {label!r} is not one of {task.label_ids}")
        elif image and not (path.parent / str(image)).is_file():
            why = ("unreadable image", f"image {image} is not there")
        if why:
            skipped.append({"id": uid, "reason": why[0], "message": why[1]})
            continue
        seen.add(uid)
        memes.append(Meme(id=uid, text=text, image=str(path.parent / str(image)) if image else None, label=label,
                          positive=label != negative, split=str(row.get("split") or "train"),
                          domain=domain or path.stem, task=task_name))
    return memes, skipped


def sample(memes: list[Meme], n: int | None, seed: int = 0, balanced: bool = False) -> list[Meme]:
    """At most ``n`` memes, a fixed sample (sha1 of seed + id); ``balanced``: half positive where
    the pool allows. Keeps no order guarantee beyond determinism."""
    key = lambda m: hashlib.sha1(f"{seed}:{m.id}".encode()).hexdigest()
    ranked = sorted(memes, key=key)
    if n is None or len(ranked) <= n:
        return ranked
    if not balanced:
        return ranked[:n]
    pos = [m for m in ranked if m.positive]
    neg = [m for m in ranked if not m.positive]
    k = min(len(pos), n // 2)
    k = max(k, n - len(neg))
    return sorted(pos[:k] + neg[:n - k], key=key)
