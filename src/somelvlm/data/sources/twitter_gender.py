"""Twitter User Gender Classification (CrowdFlower "Data for Everyone", copied from mgent83/dataScience;
the repository states no licence: evaluation and research runs only, never the shipped weights).

Upstream: ``gender-classifier-DFE-791531.csv.zip`` holding one latin-1 CSV (read from the archive,
never unpacked) of 20,050 profiles, each with ``_unit_id``, ``gender`` (female / male / brand /
unknown / blank), ``gender:confidence`` (the share of annotators who agreed), ``text`` (one tweet),
``description`` (the profile bio), ``name`` and profile fields. Each profile whose ``gender`` is
female, male or brand with ``gender:confidence`` = 1 (all annotators agreed: 13,804 profiles) ->
user_gender: text = the tweet, target = the gender, ``meta["description"]`` = the bio. Profiles
labelled ``unknown`` or annotated with less agreement are left out silently; a blank or other
``gender`` is reported ("missing field" / "unknown label"). Tweets keep the upstream's mojibake
(UTF-8 emoji read as latin-1 by the original export).

Ids: ``twitter_gender/<_unit_id>``. Split: upstream has none, so ``hash_split`` of ``_unit_id``
(80/10/10).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile, hash_split
from somelvlm.data.report import DataReport

SOURCE = "twitter_gender"
ARCHIVE = "gender-classifier-DFE-791531.csv.zip"
LABELS = ("female", "male", "brand")


def load(root: Path, report: DataReport) -> Iterator[Example]:
    f = SourceFile(root, f"{SOURCE}/{ARCHIVE}", SOURCE, report, encoding="latin-1",
                   member=ARCHIVE.removesuffix(".zip"))
    for line, row in f.csv_rows(required=("_unit_id", "gender", "text")):
        gender = row["gender"].strip().lower()
        if gender == "unknown":
            continue
        if gender not in LABELS:
            f.problem(line, "unknown label", f"gender {row['gender']!r}")
            continue
        try:
            confidence = float(row.get("gender:confidence", "") or "nan")
        except ValueError:
            f.problem(line, "unknown label", f"gender:confidence {row['gender:confidence']!r}")
            continue
        if confidence != 1.0:
            continue
        uid = row["_unit_id"].strip()
        yield Example(id=f"{SOURCE}/{uid}", source=SOURCE, task="user_gender", split=hash_split(f"{SOURCE}/{uid}"),
                      target=gender, text=" ".join(row["text"].split()),
                      meta={"description": " ".join(row.get("description", "").split())})
