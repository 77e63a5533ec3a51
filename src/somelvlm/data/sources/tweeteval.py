"""TweetEval (cardiffnlp/tweeteval): seven tweet classification tasks, plus self-supervised hashtags.

Upstream format: ``datasets/<task>/{train,val,test}_text.txt`` and ``..._labels.txt``, aligned by
line (one tweet / one label index per line), ``mapping.txt`` = ``index<TAB>name``. Stance has one
folder per target topic (abortion, atheism, climate, feminist, hillary). The upstream splits are
used as they are. Sentiment's ``train_text.txt`` is missing upstream, so sentiment has val and test
only (the compact model trains on 80% of val, see ``somelvlm.train.head_data``).

Hashtags (creation level): every tweet that carries a hashtag other than the SemEval stance
artifact ``#SemST`` gives an example whose input is the tweet without its hashtags and whose
target is the hashtags in order; same split as its file; duplicates of an input text keep the first
(tasks in a fixed order, then file order).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile
from somelvlm.data.report import DataReport

SOURCE = "tweeteval"
TASKS = ("emotion", "hate", "irony", "offensive", "sentiment", "emoji")
STANCE_TOPICS = ("abortion", "atheism", "climate", "feminist", "hillary")
SPLITS = {"train": "train", "val": "val", "test": "test"}
HASHTAG = re.compile(r"#\w+")
ARTIFACTS = {"#semst"}
LABEL_IDS = {
    "not-hate": "not_hate", "not-offensive": "not_offensive",
}


def _label_id(name: str) -> str:
    name = name.strip()
    return LABEL_IDS.get(name, name.strip("_").lower())


def _mapping(file: SourceFile) -> dict[str, str]:
    """Label index (as written in the labels file) -> label id."""
    mapping = {}
    for _, line in file.lines(skip_blank=True):
        parts = line.split("\t")
        if len(parts) >= 3 and parts[2].strip():  # emoji: index, glyph, _name_
            mapping[parts[0].strip()] = _label_id(parts[2])
        elif len(parts) >= 2:
            mapping[parts[0].strip()] = _label_id(parts[1])
    return mapping


def _pairs(root: Path, folder: str, split: str, report: DataReport) -> Iterator[tuple[int, str, str]]:
    """``(line, text, raw label)`` for one split of one task folder; misalignment is reported."""
    texts = SourceFile(root, f"{SOURCE}/datasets/{folder}/{split}_text.txt", SOURCE, report)
    labels = SourceFile(root, f"{SOURCE}/datasets/{folder}/{split}_labels.txt", SOURCE, report)
    if not texts.path.is_file():
        return
    label_lines = dict(labels.lines())
    text_lines = dict(texts.lines())
    n_text = _count_lines(texts.path)
    n_label = _count_lines(labels.path) if labels.path.is_file() else 0
    if n_text != n_label:
        texts.problem(None, "misaligned files", f"{n_text} text lines but {n_label} label lines")
    for n, text in text_lines.items():
        if n not in label_lines:
            if n > n_label:
                texts.problem(n, "missing field", "no label line for this tweet")
            continue  # else that label line held invalid UTF-8 and was already reported
        if not text.strip():
            texts.problem(n, "empty post", "blank tweet line")
            continue
        yield n, text, label_lines[n].strip()


def _count_lines(path: Path) -> int:
    return len(path.read_bytes().splitlines())


def load(root: Path, report: DataReport) -> Iterator[Example]:
    seen_hashtag_inputs: set[str] = set()
    folders = [(t, t, {}) for t in TASKS] + [("stance", f"stance/{topic}", {"target": topic})
                                             for topic in STANCE_TOPICS]
    for task, folder, meta in folders:
        mapping_file = "stance/mapping.txt" if task == "stance" else f"{folder}/mapping.txt"
        mfile = SourceFile(root, f"{SOURCE}/datasets/{mapping_file}", SOURCE, report)
        if not mfile.exists():
            continue
        mapping = _mapping(mfile)
        for split in SPLITS:
            if task == "sentiment" and split == "train":
                continue  # train text is missing upstream (documented above)
            rel = f"{SOURCE}/datasets/{folder}/{split}_labels.txt"
            for n, text, raw in _pairs(root, folder, split, report):
                if raw not in mapping:
                    report.problem(SOURCE, rel, n, "unknown label", f"{raw!r} not in mapping.txt")
                    continue
                ex_id = f"{SOURCE}/{folder}/{split}/{n}"
                yield Example(id=ex_id, source=SOURCE, task=task, split=split, target=mapping[raw],
                              text=text.strip(), meta=dict(meta))
                hashtags = [h for h in HASHTAG.findall(text) if h.lower() not in ARTIFACTS]
                if not hashtags:
                    continue
                rest = " ".join(HASHTAG.sub(" ", text).split())
                if not rest or rest in seen_hashtag_inputs:
                    continue
                seen_hashtag_inputs.add(rest)
                yield Example(id=f"{SOURCE}/hashtags/{folder}/{split}/{n}", source=SOURCE, task="hashtags",
                              split=split, target=" ".join(hashtags), text=rest)
