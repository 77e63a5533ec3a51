"""HarMeme V1 (LCS2-IIITD/MOMENTA, MIT): harmful memes about COVID-19 (Harm-C) and US politics (Harm-P).

Upstream: ``harmeme/HarMeme_V1/Annotations/Harm-C/{train,val,test}.jsonl`` and
``Harm-P/{train,val}_v1.jsonl``, one object per line ``{id, image, labels, text}``:
``labels[0]`` is "not harmful" / "somewhat harmful" / "very harmful" -> harmful_meme, and for harmful
memes ``labels[1]`` is the target (individual / organization / community / society) -> hate_target.

Upstream splits: train -> train, val / val_v1 -> val, test -> test (Harm-P has no test file here).
Meme TEXT only: the images are not in this copy, so ``image`` is None and ``meta["image_name"]``
keeps the upstream file name; no "missing image" is reported.

Upstream oddities in Harm-P train_v1, each reported and kept out of the task it would corrupt:
an empty ``labels[0]`` (row skipped, "missing field"); "not harmful" rows that still carry a target
("inconsistent label": harmful_meme kept, no hate_target); harmful rows with two targets ("ambiguous
label": hate_target is single-label, so none is emitted); harmful rows with no target ("missing
field": harmful_meme kept, no hate_target).

Ids: ``harmeme/<Harm-C|Harm-P>/<split>/<upstream id>/<task>``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile
from somelvlm.data.report import DataReport

SOURCE = "harmeme"
HARM = {"not harmful": "not_harmful", "somewhat harmful": "somewhat_harmful", "very harmful": "very_harmful"}
TARGETS = ("individual", "organization", "community", "society")
FILES = (("Harm-C", "train", "train"), ("Harm-C", "val", "val"), ("Harm-C", "test", "test"),
         ("Harm-P", "train_v1", "train"), ("Harm-P", "val_v1", "val"))


def load(root: Path, report: DataReport) -> Iterator[Example]:
    for subset, name, split in FILES:
        f = SourceFile(root, f"{SOURCE}/HarMeme_V1/Annotations/{subset}/{name}.jsonl", SOURCE, report)
        for n, rec in f.jsonl_records():
            labels = rec.get("labels")
            text, uid = str(rec.get("text", "")).strip(), str(rec.get("id", "")).strip()
            if not (uid and text and isinstance(labels, list) and labels and str(labels[0]).strip()):
                f.problem(n, "missing field", f"id, text or labels[0]; labels={labels!r}")
                continue
            harm = HARM.get(str(labels[0]).strip().lower())
            if harm is None:
                f.problem(n, "unknown label", f"labels[0] {labels[0]!r}")
                continue
            common = dict(source=SOURCE, split=split, text=text,
                          meta={"subset": subset, "image_name": str(rec.get("image", ""))})
            base = f"{SOURCE}/{subset}/{split}/{uid}"
            yield Example(id=f"{base}/harmful_meme", task="harmful_meme", target=harm, **common)
            targets = [str(t).strip().lower() for t in labels[1:]]
            if harm == "not_harmful":
                if targets:
                    f.problem(n, "inconsistent label", f"not harmful but targets {labels[1:]}")
                continue
            if not targets:
                f.problem(n, "missing field", f"{labels[0]} meme without a target")
            elif len(targets) > 1:
                f.problem(n, "ambiguous label", f"several targets {labels[1:]}")
            elif targets[0] not in TARGETS:
                f.problem(n, "unknown label", f"target {labels[1]!r}")
            else:
                yield Example(id=f"{base}/hate_target", task="hate_target", target=targets[0], **common)
