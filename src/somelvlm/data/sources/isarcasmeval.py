"""iSarcasmEval (SemEval-2022 task 6, iabufarha/iSarcasmEval): tweets labelled by their own authors.

Upstream: ``train/train.En.csv`` (3,468 rows, 867 sarcastic): an unnamed index column (the row
id), ``tweet``, ``sarcastic`` (0/1), ``rephrase`` (the author's literal rephrase of a sarcastic
tweet) and six category columns (``sarcasm, irony, satire, understatement, overstatement,
rhetorical_question``, 0/1, filled for sarcastic tweets only). A row gives up to three examples:

- ``sarcasm``: every row;
- ``explain_sarcasm``: sarcastic rows with a rephrase (text = tweet, target = rephrase);
- ``sarcasm_type``: sarcastic rows with exactly one category set (173 rows set two and 2 set
  three; they are left out of this task only, not reported: several categories is valid upstream).

Ids: ``isarcasmeval/<task>/train.En/<row id>``. Upstream oddities, kept as they are: one row has
an empty tweet (reported, "missing field"); 9 tweets occur more than once, 5 of them labelled
both sarcastic and not sarcastic.

Split: only the train file is here, so ``hash_split`` of the tweet TEXT (80/10/10), shared by the
three tasks of a row; keyed by text, not row id, so the repeated tweets share one split.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile, hash_split
from somelvlm.data.report import DataReport

SOURCE = "isarcasmeval"
FILE = "train.En"
CATEGORIES = ("sarcasm", "irony", "satire", "understatement", "overstatement", "rhetorical_question")


def load(root: Path, report: DataReport) -> Iterator[Example]:
    f = SourceFile(root, f"{SOURCE}/train/{FILE}.csv", SOURCE, report)
    for line, row in f.csv_rows(required=("tweet", "sarcastic")):
        flag = row["sarcastic"].strip().removesuffix(".0")
        if flag not in ("0", "1"):
            f.problem(line, "unknown label", f"sarcastic {row['sarcastic']!r}")
            continue
        uid = row.get("", "").strip() or f"line{line}"
        text = row["tweet"].strip()
        base = {"source": SOURCE, "split": hash_split(f"{SOURCE}/{text}"), "text": text}
        yield Example(id=f"{SOURCE}/sarcasm/{FILE}/{uid}", task="sarcasm",
                      target="sarcastic" if flag == "1" else "not_sarcastic", **base)
        if flag == "0":
            continue
        rephrase = " ".join(row.get("rephrase", "").split())
        if rephrase:
            yield Example(id=f"{SOURCE}/explain_sarcasm/{FILE}/{uid}", task="explain_sarcasm", target=rephrase,
                          **base)
        else:
            f.problem(line, "missing field", "rephrase of a sarcastic tweet")
        chosen = [c for c in CATEGORIES if row.get(c, "").strip().removesuffix(".0") == "1"]
        if len(chosen) == 1:
            yield Example(id=f"{SOURCE}/sarcasm_type/{FILE}/{uid}", task="sarcasm_type", target=chosen[0],
                          **base)
