"""UsVsThem (Huguet Cabot et al., EACL 2021; copied from HaakFab/bias_pc; CC BY-NC 4.0, non-commercial:
evaluation and research runs only, never the shipped weights).

Upstream: ``USvsTHEM/UsVsThem_{train,valid,test}_public.csv`` (3,683 / 920 / 2,261 Reddit comments on
news about Immigrants, Refugees, Muslims, Jews, Liberals or Conservatives), columns: an unnamed row
index, ``body``, ``usVSthem_scale`` (mean annotation, 0 supportive .. 1/3 neutral .. 2/3 critical ..
1 discriminatory), ``is_Disc_Crit`` (True / False: the paper's binary task), ``group``, ``bias``
(AllSides leaning of the linked news source), twelve emotion flags and ``allsides_name``. Each row ->
us_vs_them: text = the comment, target = ``critical`` (is_Disc_Crit True: critical or discriminatory
towards the group) / ``neutral`` (False: neutral or supportive), ``meta["target"]`` = the group
(lower-cased), ``meta["scale"]`` = usVSthem_scale, ``meta["news_bias"]`` = bias. Another
is_Disc_Crit value is reported ("unknown label").

Ids: ``usvsthem/<train|valid|test>/<row index>``. Split: upstream's (valid -> val).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile
from somelvlm.data.report import DataReport

SOURCE = "usvsthem"
SPLITS = {"train": "train", "valid": "val", "test": "test"}
LABELS = {"true": "critical", "false": "neutral"}


def load(root: Path, report: DataReport) -> Iterator[Example]:
    for name, split in SPLITS.items():
        f = SourceFile(root, f"{SOURCE}/USvsTHEM/UsVsThem_{name}_public.csv", SOURCE, report)
        for line, row in f.csv_rows(required=("body", "is_Disc_Crit", "group")):
            label = LABELS.get(row["is_Disc_Crit"].strip().lower())
            if label is None:
                f.problem(line, "unknown label", f"is_Disc_Crit {row['is_Disc_Crit']!r}")
                continue
            uid = row.get("", "").strip() or f"line{line}"
            yield Example(id=f"{SOURCE}/{name}/{uid}", source=SOURCE, task="us_vs_them", split=split,
                          target=label, text=" ".join(row["body"].split()),
                          meta={"target": row["group"].strip().lower(), "scale": row.get("usVSthem_scale", ""),
                                "news_bias": row.get("bias", "").strip()})
