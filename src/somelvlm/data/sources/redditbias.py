"""RedditBias (umanlp/RedditBias, MIT): Reddit comments hand-labelled as biased or not against a group.

Upstream: ``data/<dimension>/reddit_comments_<dimension>_<group>_processed_phrase_annotated.csv``
for five (dimension, group) pairs: gender/female, orientation/lgbtq, race/black, religion1/jews,
religion2/muslims. Columns ``id`` (Reddit comment id; absent in gender, empty in orientation),
``attribute_in_window``, ``comment``, ``phrase`` (the window around the target and attribute words),
``bias_sent`` (1 = the comment is biased against the file's group, 0 = not) and ``bias_phrase``.
Each labelled row -> reddit_bias: text = comment, target = ``biased`` / ``not_biased``,
``meta["target"]`` = the group as a prompt names it ("women", "LGBTQ people", ...).

Rows with an empty ``bias_sent`` were never annotated upstream and are left out silently (about
16,600 of 28,131). Other values (24 rows of gender labelled ``2``; 23 free-text notes in religion1) are reported
("unknown label"). religion1 has one stray Mac-Roman byte (0xD5, a right quote): that line is read
with the byte as Mac-Roman and reported ("repaired encoding").

Ids: ``redditbias/<group>/<line of the row>``. Split: upstream has none, so ``hash_split`` of the
comment text (80/10/10): one comment that sits in two files (e.g. about both Jews and Muslims) lands
in the same split for both groups.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile, hash_split
from somelvlm.data.report import DataReport

SOURCE = "redditbias"
GROUPS = {  # group -> (dimension folder, how a prompt names the group)
    "female": ("gender", "women"),
    "lgbtq": ("orientation", "LGBTQ people"),
    "black": ("race", "Black people"),
    "jews": ("religion1", "Jewish people"),
    "muslims": ("religion2", "Muslims"),
}
LABELS = {"0": "not_biased", "1": "biased"}


def load(root: Path, report: DataReport) -> Iterator[Example]:
    for group, (dimension, named) in GROUPS.items():
        rel = f"{SOURCE}/data/{dimension}/reddit_comments_{dimension}_{group}_processed_phrase_annotated.csv"
        f = SourceFile(root, rel, SOURCE, report, legacy_encoding="mac_roman")
        for line, row in f.csv_rows(required=("comment",)):
            flag = row.get("bias_sent", "").strip().removesuffix(".0")
            if not flag:
                continue
            label = LABELS.get(flag)
            if label is None:
                f.problem(line, "unknown label", f"bias_sent {flag!r}")
                continue
            text = " ".join(row["comment"].split())
            yield Example(id=f"{SOURCE}/{group}/{line}", source=SOURCE, task="reddit_bias",
                          split=hash_split(f"{SOURCE}/{text}"), target=label, text=text,
                          meta={"target": named, "group": group})
