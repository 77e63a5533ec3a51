"""POLAR (SemEval-2026 Task 9) trial sample (Polar-SemEval/trial-data; no licence stated: evaluation and
research runs only, never the shipped weights).

Upstream: ``Trial_Data.csv``: ``text``, ``lang`` (17 languages; 20 English posts), ``id``,
``polarization`` (0/1: 186 polarized, 152 not), target flags ``political, racial/ethnic, religious,
gender/sexual, other`` and manifestation flags ``stereotype, vilification, dehumanization,
extreme_language, lack_of_empathy, invalidation`` (all 0/1). Each row -> polarized_post: target =
``polarized`` / ``not_polarized``, ``meta["lang"]`` = the language code, ``meta["targets"]`` and
``meta["manifestations"]`` = the flags set, comma-separated. A value other than 0/1 for
``polarization`` is reported ("unknown label").

Ids: ``polar_trial/<upstream id>``. Split: every row is ``test``: a 338-post trial sample is for
evaluation only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile
from somelvlm.data.report import DataReport

SOURCE = "polar_trial"
TARGETS = ("political", "racial/ethnic", "religious", "gender/sexual", "other")
MANIFESTATIONS = ("stereotype", "vilification", "dehumanization", "extreme_language", "lack_of_empathy",
                  "invalidation")
LABELS = {"0": "not_polarized", "1": "polarized"}


def load(root: Path, report: DataReport) -> Iterator[Example]:
    f = SourceFile(root, f"{SOURCE}/Trial_Data.csv", SOURCE, report)
    for line, row in f.csv_rows(required=("text", "polarization")):
        label = LABELS.get(row["polarization"].strip().removesuffix(".0"))
        if label is None:
            f.problem(line, "unknown label", f"polarization {row['polarization']!r}")
            continue
        uid = row.get("id", "").strip() or f"line{line}"
        flags = {name: [c for c in cols if row.get(c, "").strip().removesuffix(".0") == "1"]
                 for name, cols in (("targets", TARGETS), ("manifestations", MANIFESTATIONS))}
        yield Example(id=f"{SOURCE}/{uid}", source=SOURCE, task="polarized_post", split="test", target=label,
                      text=" ".join(row["text"].split()),
                      meta={"lang": row.get("lang", "").strip(), **{k: ",".join(v) for k, v in flags.items()}})
