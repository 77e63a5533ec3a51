"""HMC (panFJCharlotte98/HMC, MIT): four hateful / offensive meme datasets, meme TEXT only.

Upstream files under ``hmc/data/`` and the tasks they give:

- FHM (Facebook Hateful Memes): ``FHM/data/{train,dev,test_seen}.json``, a JSON array of
  ``{id, label 0/1, text, is_seen, img}`` -> hateful_meme.
- MAMI (SemEval-2022 task 5): ``MAMI/{train,validation,test}.tsv`` with a header
  ``file_name, label, shaming, stereotype, objectification, violence, text`` -> misogynous_meme.
- MultiOFF: ``MultiOFF/data/{train,dev,test}.json``, ``{id, label 0/1, img, text}`` -> offensive_meme.
- PrideMM: ``PrideMM/data/{train,dev,test}.json``, ``{id, label 0/1, target, stance, humour, img,
  text}`` -> hateful_meme, meme_stance (neutral / support / oppose) and hate_target (only where
  ``target`` is not null). ``PrideMM/PrideMM.csv`` holds the same 5,063 memes with numeric codes
  and the same splits (the JSON texts drop watermarks such as "imgflip com"); it is not read.

Splits are upstream's: train -> train, dev / validation -> val, test / test_seen -> test.
The image files are not in this copy: ``image`` is None and ``meta["image_name"]`` keeps the
upstream ``img`` / ``file_name`` so images can be joined later. No "missing image" is reported.

Ids: ``hmc/<subset>/<split>/<upstream id>``, plus ``/<task>`` for PrideMM, whose rows give
several tasks.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile
from somelvlm.data.report import DataReport

SOURCE = "hmc"
SPLIT_OF = {"train": "train", "dev": "val", "validation": "val", "test_seen": "test", "test": "test"}
BINARY = {
    "hateful_meme": ("not_hateful", "hateful"),
    "misogynous_meme": ("not_misogynous", "misogynous"),
    "offensive_meme": ("not_offensive", "offensive"),
}
STANCES = ("neutral", "support", "oppose")
TARGETS = ("individual", "organization", "community", "society")


def _binary(task: str, value: Any) -> str | None:
    """0/1 (int or string) -> the task's label id; anything else -> None."""
    if isinstance(value, bool):
        return None
    return {"0": BINARY[task][0], "1": BINARY[task][1]}.get(str(value).strip())


def _json_rows(root: Path, report: DataReport, subset: str, names: tuple[str, ...], task: str):
    """``(file, record number, record, split, binary label)`` of one JSON subset; bad rows reported."""
    for name in names:
        f = SourceFile(root, f"{SOURCE}/data/{subset}/data/{name}.json", SOURCE, report)
        for n, rec in f.json_records():
            if not str(rec.get("id", "")).strip() or not str(rec.get("text", "")).strip():
                f.problem(n, "missing field", "id or text")
                continue
            label = _binary(task, rec.get("label"))
            if label is None:
                f.problem(n, "unknown label", f"label {rec.get('label')!r}")
                continue
            yield f, n, rec, SPLIT_OF[name], label


def _simple(
    root: Path, report: DataReport, subset: str, names: tuple[str, ...], task: str
) -> Iterator[Example]:
    for _, _, rec, split, label in _json_rows(root, report, subset, names, task):
        yield Example(id=f"{SOURCE}/{subset}/{split}/{str(rec['id']).strip()}", source=SOURCE, task=task,
                      split=split, target=label, text=str(rec["text"]).strip(),
                      meta={"subset": subset, "image_name": str(rec.get("img", ""))})


def _mami(root: Path, report: DataReport) -> Iterator[Example]:
    for name in ("train", "validation", "test"):
        f = SourceFile(root, f"{SOURCE}/data/MAMI/{name}.tsv", SOURCE, report)
        for line, row in f.csv_rows(required=("file_name", "label", "text"), delimiter="\t"):
            label = _binary("misogynous_meme", row["label"])
            if label is None:
                f.problem(line, "unknown label", f"label {row['label']!r}")
                continue
            split = SPLIT_OF[name]
            yield Example(id=f"{SOURCE}/MAMI/{split}/{row['file_name'].strip()}", source=SOURCE,
                          task="misogynous_meme", split=split, target=label, text=row["text"].strip(),
                          meta={"subset": "MAMI", "image_name": row["file_name"].strip()})


def _pridemm(root: Path, report: DataReport) -> Iterator[Example]:
    rows = _json_rows(root, report, "PrideMM", ("train", "dev", "test"), "hateful_meme")
    for f, n, rec, split, label in rows:
        uid = f"{SOURCE}/PrideMM/{split}/{str(rec['id']).strip()}"
        common = dict(source=SOURCE, split=split, text=str(rec["text"]).strip(),
                      meta={"subset": "PrideMM", "image_name": str(rec.get("img", ""))})
        yield Example(id=f"{uid}/hateful_meme", task="hateful_meme", target=label, **common)
        stance = str(rec.get("stance", "")).strip().lower()
        if stance in STANCES:
            yield Example(id=f"{uid}/meme_stance", task="meme_stance", target=stance, **common)
        else:
            f.problem(n, "unknown label", f"stance {rec.get('stance')!r}")
        if rec.get("target") is None:
            continue
        target = str(rec["target"]).strip().lower()
        if target in TARGETS:
            yield Example(id=f"{uid}/hate_target", task="hate_target", target=target, **common)
        else:
            f.problem(n, "unknown label", f"target {rec['target']!r}")


def load(root: Path, report: DataReport) -> Iterator[Example]:
    """FHM, MAMI, MultiOFF and PrideMM examples, in that order."""
    root = Path(root)
    yield from _simple(root, report, "FHM", ("train", "dev", "test_seen"), "hateful_meme")
    yield from _mami(root, report)
    yield from _simple(root, report, "MultiOFF", ("train", "dev", "test"), "offensive_meme")
    yield from _pridemm(root, report)
