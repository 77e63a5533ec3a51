"""MAGPIE's preprocessed copies (Media-Bias-Group/magpie-multi-task, Apache-2.0) of HateXplain (MIT)
and of the Pujari et al. 2022 stereotype data.

Upstream:

- ``datasets/92_HateXplain/preprocessed.csv``: ``text`` (lower-cased, punctuation dropped by MAGPIE's
  detokenisation), ``rationale_pos`` (the words every annotator marked as inducing hate or offence,
  spans separated by ``;``; empty for normal posts), ``label`` (0 normal / 1 offensive / 2 hate; the
  README's mapping has a typo) and five binary target columns ``label_gender, label_religion,
  label_race, label_economic, label_minority``. 18,962 Twitter and Gab posts. Two tasks:

  - ``bias_target``: posts with exactly one target flag set (9,154); target = that group. Posts with
    none (4,886, mostly normal) or several (4,922) are left out of this task, not reported: several
    targets is valid upstream.
  - ``hate_rationale``: offensive or hateful posts whose rationale is not empty (8,611); target = the
    rationale spans joined by ``"; "``.

- ``datasets/109_stereotype/preprocessed.csv``: ``text``, ``stereotype_explicit_label``,
  ``stereotype_implicit_label``, ``label`` (0/1). 2,208 Reddit sentences -> stereotype: target =
  ``explicit_stereotype`` / ``implicit_stereotype`` / ``no_stereotype``; the 8 sentences flagged both
  explicit and implicit are left out (not reported). A row whose ``label`` disagrees with its two flags
  is reported ("inconsistent labels").

Values outside 0/1 (0/1/2 for ``label``) are reported ("unknown label"). Ids:
``magpie/<HateXplain|stereotype>/<line of the row>``. Split: upstream has none, so ``hash_split``
of the text (80/10/10); the two tasks of a HateXplain post share it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile, hash_split
from somelvlm.data.report import DataReport

SOURCE = "magpie"
TARGETS = ("gender", "religion", "race", "economic", "minority")
BINARY = ("0", "1")


def load(root: Path, report: DataReport) -> Iterator[Example]:
    yield from _hatexplain(root, report)
    yield from _stereotype(root, report)


def _flag(value: str) -> str:
    return value.strip().removesuffix(".0")


def _hatexplain(root: Path, report: DataReport) -> Iterator[Example]:
    f = SourceFile(root, f"{SOURCE}/datasets/92_HateXplain/preprocessed.csv", SOURCE, report)
    columns = tuple(f"label_{t}" for t in TARGETS)
    for line, row in f.csv_rows(required=("text", "label", *columns)):
        label = _flag(row["label"])
        flags = [_flag(row[c]) for c in columns]
        if label not in ("0", "1", "2") or any(v not in BINARY for v in flags):
            f.problem(line, "unknown label", f"label {row['label']!r}, targets {flags}")
            continue
        text = " ".join(row["text"].split())
        base = {"source": SOURCE, "split": hash_split(f"{SOURCE}/{text}"), "text": text}
        chosen = [t for t, v in zip(TARGETS, flags) if v == "1"]
        if len(chosen) == 1:
            yield Example(id=f"{SOURCE}/HateXplain/bias_target/{line}", task="bias_target", target=chosen[0],
                          **base)
        spans = [" ".join(s.split()) for s in row.get("rationale_pos", "").split(";")]
        spans = [s for s in spans if s]
        if label != "0" and spans:
            yield Example(id=f"{SOURCE}/HateXplain/hate_rationale/{line}", task="hate_rationale",
                          target="; ".join(spans), meta={"label": "hate" if label == "2" else "offensive"},
                          **base)


def _stereotype(root: Path, report: DataReport) -> Iterator[Example]:
    f = SourceFile(root, f"{SOURCE}/datasets/109_stereotype/preprocessed.csv", SOURCE, report)
    cols = ("stereotype_explicit_label", "stereotype_implicit_label", "label")
    for line, row in f.csv_rows(required=("text", *cols)):
        explicit, implicit, label = (_flag(row[c]) for c in cols)
        if any(v not in BINARY for v in (explicit, implicit, label)):
            f.problem(line, "unknown label", f"{explicit!r} {implicit!r} {label!r}")
            continue
        if label != ("1" if "1" in (explicit, implicit) else "0"):
            f.problem(line, "inconsistent labels", f"label {label} with explicit {explicit}, implicit {implicit}")
            continue
        if explicit == implicit == "1":
            continue
        target = "explicit_stereotype" if explicit == "1" else "implicit_stereotype" if implicit == "1" else "no_stereotype"
        text = " ".join(row["text"].split())
        yield Example(id=f"{SOURCE}/stereotype/{line}", source=SOURCE, task="stereotype",
                      split=hash_split(f"{SOURCE}/{text}"), target=target, text=text)
