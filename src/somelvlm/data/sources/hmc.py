"""HMC (panFJCharlotte98/HMC): four meme datasets, meme TEXT only (the image files are not in
this copy: each example keeps the upstream image name in ``meta["image_name"]``).

- FHM (Facebook Hateful Memes): ``data/FHM/data/{train,dev,test_seen}.json`` -> hateful_meme.
- MAMI: ``data/MAMI/{train,validation,test}.tsv`` (file_name, label, 4 subtypes, text) -> misogynous_meme.
- MultiOFF: ``data/MultiOFF/data/{train,dev,test}.json`` -> offensive_meme.
- PrideMM: ``data/PrideMM/data/{train,dev,test}.json`` -> hateful_meme, meme_stance, hate_target.
Upstream splits are used (dev / validation -> val, test_seen -> test).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile
from somelvlm.data.report import DataReport

SOURCE = "hmc"
SPLITS = {"train": "train", "dev": "val", "validation": "val", "test_seen": "test", "test": "test"}
BINARY = {"hateful_meme": ("not_hateful", "hateful"), "offensive_meme": ("not_offensive", "offensive"),
          "misogynous_meme": ("not_misogynous", "misogynous")}
TARGETS = {"individual", "organization", "community", "society"}
STANCES = {"neutral", "support", "oppose"}


def _binary(task: str, value) -> str | None:
    return {"0": BINARY[task][0], "1": BINARY[task][1]}.get(str(value).strip())


def _json_subset(root, report, subset, names, task) -> Iterator[tuple[SourceFile, int, dict, str, str | None]]:
    for name in names:
        f = SourceFile(root, f"{SOURCE}/data/{subset}/data/{name}.json", SOURCE, report)
        for n, rec in f.json_records():
            if not str(rec.get("text", "")).strip() or rec.get("id") is None:
                f.problem(n, "missing field", "text or id")
                continue
            label = _binary(task, rec.get("label"))
            if label is None:
                f.problem(n, "unknown label", f"label {rec.get('label')!r}")
                continue
            yield f, n, rec, SPLITS[name], label


def load(root: Path, report: DataReport) -> Iterator[Example]:
    for subset, names, task in (("FHM", ("train", "dev", "test_seen"), "hateful_meme"),
                                ("MultiOFF", ("train", "dev", "test"), "offensive_meme")):
        for _, _, rec, split, label in _json_subset(root, report, subset, names, task):
            yield Example(id=f"{SOURCE}/{subset}/{split}/{rec['id']}", source=SOURCE, task=task, split=split,
                          target=label, text=str(rec["text"]).strip(),
                          meta={"subset": subset, "image_name": str(rec.get("img", ""))})
    for name in ("train", "validation", "test"):
        f = SourceFile(root, f"{SOURCE}/data/MAMI/{name}.tsv", SOURCE, report)
        for line, row in f.csv_rows(required=("file_name", "label", "text"), delimiter="\t"):
            label = _binary("misogynous_meme", row["label"])
            if label is None:
                f.problem(line, "unknown label", f"label {row['label']!r}")
                continue
            yield Example(id=f"{SOURCE}/MAMI/{SPLITS[name]}/{row['file_name']}", source=SOURCE,
                          task="misogynous_meme", split=SPLITS[name], target=label, text=row["text"].strip(),
                          meta={"subset": "MAMI", "image_name": row["file_name"]})
    for f, n, rec, split, label in _json_subset(root, report, "PrideMM", ("train", "dev", "test"), "hateful_meme"):
        base = dict(source=SOURCE, split=split, text=str(rec["text"]).strip(),
                    meta={"subset": "PrideMM", "image_name": str(rec.get("img", ""))})
        uid = f"{SOURCE}/PrideMM/{split}/{rec['id']}"
        yield Example(id=f"{uid}/hateful_meme", task="hateful_meme", target=label, **base)
        stance = str(rec.get("stance", "")).strip().lower()
        if stance in STANCES:
            yield Example(id=f"{uid}/meme_stance", task="meme_stance", target=stance, **base)
        else:
            f.problem(n, "unknown label", f"stance {rec.get('stance')!r}")
        target = rec.get("target")
        if target is not None and str(target).strip().lower() in TARGETS:
            yield Example(id=f"{uid}/hate_target", task="hate_target", target=str(target).strip().lower(), **base)
