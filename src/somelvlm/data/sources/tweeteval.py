"""TweetEval (cardiffnlp/tweeteval): seven tweet classification tasks, plus self-supervised hashtags.

Upstream format: ``datasets/<task>/{train,val,test}_text.txt`` and ``..._labels.txt``, aligned by
line (one tweet / one label index per line), ``mapping.txt`` = ``index<TAB>name`` (emoji:
``index<TAB>glyph<TAB>_name_``). Stance has one folder per target topic (abortion, atheism,
climate, feminist, hillary) and one ``stance/mapping.txt``; each stance example carries
``meta["target"]`` = the topic.

Splits: upstream's, as they are (the benchmark's). Sentiment's ``train_text.txt`` is missing
upstream (its train labels exist), a known gap that is not reported: sentiment has val and test
only (the compact model trains on 80% of val, see ``somelvlm.data.head_items``).

Labels: the index in a labels file maps to the task's label ids in ``LABELS`` (index order, as
``mapping.txt`` lists them); ``mapping.txt`` is checked against them and a task whose mapping
disagrees is reported and skipped. When a text file and its labels file differ in length, the
mismatch is reported once and the shorter length is used; blank tweets, invalid UTF-8 and unknown
label indices are reported by file and line.

Hashtags (creation level): every tweet with a hashtag gives an example whose input is the tweet
with its hashtags removed (whitespace collapsed) and whose target is the hashtags in order,
space-separated. A hashtag is ``#`` and word characters with at least one letter (``#1`` or
``#2017`` stay in the text, as on Twitter), not after ``&`` (HTML entities such as ``&#x1f621;``
occur in hate tweets); ``#SemST``, an artifact the SemEval stance data appends
to every tweet, is removed from the input but never a target. Tweets left without a target or
without text are skipped. Same split as the file; a repeated input keeps its first occurrence
(task order of ``FOLDERS``, then train, val, test, then line order).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import SPLITS, Example
from somelvlm.data.readers import SourceFile
from somelvlm.data.report import DataReport

SOURCE = "tweeteval"
LABELS: dict[str, tuple[str, ...]] = {
    "emotion": ("anger", "joy", "optimism", "sadness"),
    "hate": ("not_hate", "hate"),
    "irony": ("non_irony", "irony"),
    "offensive": ("not_offensive", "offensive"),
    "sentiment": ("negative", "neutral", "positive"),
    "emoji": (
        "red_heart", "smiling_face_with_hearteyes", "face_with_tears_of_joy", "two_hearts", "fire",
        "smiling_face_with_smiling_eyes", "smiling_face_with_sunglasses", "sparkles", "blue_heart",
        "face_blowing_a_kiss", "camera", "united_states", "sun", "purple_heart", "winking_face",
        "hundred_points", "beaming_face_with_smiling_eyes", "christmas_tree", "camera_with_flash",
        "winking_face_with_tongue",
    ),
    "stance": ("none", "against", "favor"),
}
STANCE_TOPICS = ("abortion", "atheism", "climate", "feminist", "hillary")
FOLDERS: tuple[tuple[str, str], ...] = (
    *((t, t) for t in ("emotion", "hate", "irony", "offensive", "sentiment", "emoji")),
    *(("stance", f"stance/{topic}") for topic in STANCE_TOPICS),
)
"""``(task, folder under datasets/)`` in reading order."""
MISSING_UPSTREAM = {("sentiment", "train")}
HASHTAG = re.compile(r"(?<!&)#\w*[^\W\d]\w*")
ARTIFACTS = {"#semst"}


def load(root: Path, report: DataReport) -> Iterator[Example]:
    usable = {task: _mapping_agrees(root, task, report) for task in LABELS}
    seen_inputs: set[str] = set()
    for task, folder in FOLDERS:
        if not usable[task]:
            continue
        meta = {"target": folder.split("/")[1]} if task == "stance" else {}
        for split in SPLITS:
            if (task, split) in MISSING_UPSTREAM:
                continue
            for line, text, label in _aligned(root, folder, split, LABELS[task], report):
                yield Example(id=f"{SOURCE}/{folder}/{split}/{line}", source=SOURCE, task=task, split=split,
                              target=label, text=text, meta=dict(meta))
                tagged = hashtag_example(text)
                if tagged is not None and tagged[0] not in seen_inputs:
                    seen_inputs.add(tagged[0])
                    yield Example(id=f"{SOURCE}/hashtags/{folder}/{split}/{line}", source=SOURCE,
                                  task="hashtags", split=split, target=tagged[1], text=tagged[0])


def hashtag_example(tweet: str) -> tuple[str, str] | None:
    """``(tweet without hashtags, "#a #b")``, or None when no hashtag or no text is left."""
    tags = [t for t in HASHTAG.findall(tweet) if t.lower() not in ARTIFACTS]
    rest = " ".join(HASHTAG.sub(" ", tweet).split())
    if not tags or not rest:
        return None
    return rest, " ".join(tags)


def _mapping_agrees(root: Path, task: str, report: DataReport) -> bool:
    """True when ``mapping.txt`` names ``LABELS[task]`` in index order (case, ``_`` and ``-`` aside)."""
    file = SourceFile(root, f"{SOURCE}/datasets/{task}/mapping.txt", SOURCE, report)
    if not file.exists():
        return False
    found = {}
    for _, line in file.lines(skip_blank=True):
        parts = [p.strip() for p in line.split("\t")]
        name = parts[2] if len(parts) > 2 and parts[2] else parts[-1]  # emoji: index, glyph, _name_
        found[parts[0]] = name.strip("_").lower().replace("-", "_")
    expected = {str(i): name for i, name in enumerate(LABELS[task])}
    if found != expected:
        file.problem(None, "mapping mismatch", f"expected {expected}, found {found}")
        return False
    return True


def _aligned(root: Path, folder: str, split: str, labels: tuple[str, ...], report: DataReport
             ) -> Iterator[tuple[int, str, str]]:
    """``(line, tweet, label id)`` for one split of one folder; bad lines reported, skipped."""
    texts = SourceFile(root, f"{SOURCE}/datasets/{folder}/{split}_text.txt", SOURCE, report)
    golds = SourceFile(root, f"{SOURCE}/datasets/{folder}/{split}_labels.txt", SOURCE, report)
    if not (texts.exists() and golds.exists()):
        return
    n_text, n_gold = _count_lines(texts.path), _count_lines(golds.path)
    if n_text != n_gold:
        texts.problem(None, "misaligned files",
                      f"{n_text} text lines but {n_gold} label lines in {golds.relpath}; using the first "
                      f"{min(n_text, n_gold)}")
    gold = dict(golds.lines())  # lines with invalid UTF-8 are reported and absent
    for line, text in texts.lines():
        if line > n_gold:
            break
        if not text.strip():
            texts.problem(line, "empty post", "blank tweet line")
            continue
        raw = gold.get(line)
        if raw is None:
            continue
        if not raw.strip():
            golds.problem(line, "missing field", "blank label line")
            continue
        index = raw.strip()
        if not index.isdigit() or int(index) >= len(labels):
            golds.problem(line, "unknown label", f"{index!r} is not an index of mapping.txt")
            continue
        yield line, text.strip(), labels[int(index)]


def _count_lines(path: Path) -> int:
    return len(path.read_bytes().splitlines())
