"""iSarcasmEval (SemEval-2022 task 6, iabufarha/iSarcasmEval): tweets labelled by their authors.

Upstream: ``train/train.En.csv`` (3,468 rows, 867 sarcastic): ``tweet, sarcastic, rephrase`` (the
author's literal rephrase of a sarcastic tweet) and six category columns for sarcastic tweets.
Only the train file is here, so the split is ``hash_split`` of the tweet text (80/10/10), shared by
the three tasks a row gives: sarcasm; explain_sarcasm (tweet -> rephrase); sarcasm_type (when
exactly one category is set; rows with several are left out of that task only).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile, hash_split
from somelvlm.data.report import DataReport

SOURCE = "isarcasmeval"
CATEGORIES = ("sarcasm", "irony", "satire", "understatement", "overstatement", "rhetorical_question")


def load(root: Path, report: DataReport) -> Iterator[Example]:
    f = SourceFile(root, f"{SOURCE}/train/train.En.csv", SOURCE, report)
    for line, row in f.csv_rows(required=("tweet", "sarcastic")):
        uid = row.get("", "").strip() or str(line)
        text = row["tweet"].strip()
        flag = row["sarcastic"].strip()
        if flag not in ("0", "1"):
            f.problem(line, "unknown label", f"sarcastic {flag!r}")
            continue
        split = hash_split(f"{SOURCE}/{text}")
        base = dict(source=SOURCE, split=split, text=text)
        yield Example(id=f"{SOURCE}/sarcasm/{uid}", task="sarcasm",
                      target="sarcastic" if flag == "1" else "not_sarcastic", **base)
        if flag != "1":
            continue
        rephrase = row.get("rephrase", "").strip()
        if rephrase:
            yield Example(id=f"{SOURCE}/explain_sarcasm/{uid}", task="explain_sarcasm", target=rephrase, **base)
        chosen = [c for c in CATEGORIES if row.get(c, "").strip() in ("1", "1.0")]
        if len(chosen) == 1:
            yield Example(id=f"{SOURCE}/sarcasm_type/{uid}", task="sarcasm_type", target=chosen[0], **base)
