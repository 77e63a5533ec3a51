"""HarMeme V1 (LCS2-IIITD/MOMENTA): harmful memes about COVID-19 (Harm-C) and US politics (Harm-P).

Upstream: ``HarMeme_V1/Annotations/Harm-C/{train,val,test}.jsonl`` and ``Harm-P/{train,val}_v1.jsonl``,
one object per line: ``id, image, labels, text`` where ``labels[0]`` is not / somewhat / very
harmful and ``labels[1]`` (harmful memes only) the target. Meme TEXT only (images not in this copy:
``meta["image_name"]``). Upstream splits; Harm-P has no test file here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile
from somelvlm.data.report import DataReport

SOURCE = "harmeme"
HARM = {"not harmful": "not_harmful", "somewhat harmful": "somewhat_harmful", "very harmful": "very_harmful"}
TARGETS = {"individual", "organization", "community", "society"}
FILES = (("Harm-C", "train", "train"), ("Harm-C", "val", "val"), ("Harm-C", "test", "test"),
         ("Harm-P", "train_v1", "train"), ("Harm-P", "val_v1", "val"))


def load(root: Path, report: DataReport) -> Iterator[Example]:
    for subset, name, split in FILES:
        f = SourceFile(root, f"{SOURCE}/HarMeme_V1/Annotations/{subset}/{name}.jsonl", SOURCE, report)
        for n, rec in f.jsonl_records():
            labels = rec.get("labels") or []
            text = str(rec.get("text", "")).strip()
            if not text or not rec.get("id") or not labels:
                f.problem(n, "missing field", "id, text or labels")
                continue
            harm = HARM.get(str(labels[0]).strip().lower())
            if harm is None:
                f.problem(n, "unknown label", str(labels[0]))
                continue
            uid = f"{SOURCE}/{subset}/{split}/{rec['id']}"
            base = dict(source=SOURCE, split=split, text=text,
                        meta={"subset": subset, "image_name": str(rec.get("image", ""))})
            yield Example(id=f"{uid}/harmful_meme", task="harmful_meme", target=harm, **base)
            if len(labels) > 1:
                target = str(labels[1]).strip().lower()
                if target in TARGETS:
                    yield Example(id=f"{uid}/hate_target", task="hate_target", target=target, **base)
                else:
                    f.problem(n, "unknown label", f"target {labels[1]!r}")
