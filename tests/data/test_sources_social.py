"""The nine adapters of trust & bias, social factors, ideology, polarization and opinion rewriting:
counts on the real data against ../shared/data/README.md, label ids, unique and stable ids, splits
that never mix a post; then bad input on small files written here."""

from __future__ import annotations

import io
import zipfile
from collections import Counter, defaultdict

import pytest

from somelvlm.data.report import DataReport
from somelvlm.data.sources import load_source

SOURCES = ("redditbias", "magpie", "twitter_gender", "mitweet", "political_social_media", "usvsthem",
           "polar_trial", "positive_frames", "cad_imdb")
SPLITS = ("train", "val", "test")
LABELS = {  # the tasks' label ids, written out so this file does not depend on the taxonomy
    "reddit_bias": {"not_biased", "biased"},
    "stereotype": {"no_stereotype", "explicit_stereotype", "implicit_stereotype"},
    "bias_target": {"race", "religion", "gender", "economic", "minority"},
    "user_gender": {"female", "male", "brand"},
    "facet_ideology": {"left", "center", "right"},
    "partisan_post": {"neutral", "partisan"},
    "us_vs_them": {"neutral", "critical"},
    "polarized_post": {"not_polarized", "polarized"},
}
GENERATION = {"hate_rationale", "depolarize", "positive_reframe", "invert_sentiment"}


def per_split(examples, task):
    c = Counter(e.split for e in examples if e.task == task)
    return [c[s] for s in SPLITS]


def reasons(report):
    return Counter(p.reason for p in report.problems)


@pytest.mark.parametrize("name", SOURCES)
def test_ids_labels_and_determinism(loaded, data_root, name):
    examples, report = loaded(name)
    assert examples
    ids = [e.id for e in examples]
    assert len(ids) == len(set(ids))
    for e in examples:
        assert e.source == name and e.id.startswith(f"{name}/") and e.image is None, e.id
        assert e.text and e.text == e.text.strip(), e.id
        if e.task in GENERATION:
            assert isinstance(e.target, str) and e.target.strip(), e.id
        else:
            assert e.target in LABELS[e.task], (e.id, e.target)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in e.meta.items())
    assert all(p.source == name and p.reason for p in report.problems)
    again = [(e.id, e.split, e.target) for e in load_source(name, data_root, DataReport())]
    assert again == [(e.id, e.split, e.target) for e in examples]


@pytest.mark.parametrize("name", ["redditbias", "magpie", "twitter_gender", "political_social_media", "mitweet"])
def test_derived_splits_never_mix_a_post(loaded, name):
    examples, _ = loaded(name)
    splits = defaultdict(set)
    for e in examples:
        splits[e.text].add(e.split)
    mixed = [t for t, s in splits.items() if len(s) > 1]
    if name == "twitter_gender":  # split by profile: a few profiles tweeted the same text
        assert len(mixed) < 0.01 * len(splits)
    else:
        assert mixed == []
    if name != "mitweet":
        share = Counter(e.split for e in examples)
        assert 0.77 < share["train"] / sum(share.values()) < 0.83


def test_redditbias(loaded):
    examples, report = loaded("redditbias")
    assert len(examples) == 11_492
    assert Counter(e.target for e in examples)["biased"] == 6_592
    assert Counter(e.meta["group"] for e in examples) == {
        "female": 2_976, "lgbtq": 1_983, "black": 2_620, "jews": 2_111, "muslims": 1_802}
    # 24 gender rows labelled 2 and 23 free-text notes in religion1; the stray Mac-Roman byte is repaired
    assert reasons(report) == Counter({"unknown label": 24 + 23, "repaired encoding": 1})
    repaired = next(p for p in report.problems if p.reason == "repaired encoding")
    assert repaired.file.endswith("religion1_jews_processed_phrase_annotated.csv")
    assert any("that\u2019s" in e.text for e in examples if e.meta["group"] == "jews")


def test_magpie(loaded):
    examples, report = loaded("magpie")
    assert not report.problems
    targets = Counter(e.target for e in examples if e.task == "bias_target")
    assert sum(targets.values()) == 9_154 and targets["race"] == 3_246 and targets["economic"] == 7
    assert Counter(e.target for e in examples if e.task == "stereotype") == {
        "no_stereotype": 1_189, "explicit_stereotype": 737, "implicit_stereotype": 274}  # 2,208 less 8 flagged both
    rationales = [e for e in examples if e.task == "hate_rationale"]
    assert len(rationales) == 8_611 and {e.meta["label"] for e in rationales} == {"offensive", "hate"}
    assert all(all(word in e.text.split() for span in e.target.split("; ") for word in span.split())
               for e in rationales[:500])


def test_twitter_gender(loaded):
    examples, report = loaded("twitter_gender")
    # 20,050 profiles; kept: female / male / brand with gender:confidence 1 (13,926 less 122 unknown)
    assert Counter(e.target for e in examples) == {"female": 5_367, "male": 4_653, "brand": 3_784}
    assert reasons(report) == Counter({"missing field": 97})  # blank gender
    assert sum(bool(e.meta["description"]) for e in examples) > 10_000


def test_mitweet(loaded):
    examples, report = loaded("mitweet")
    assert not report.problems
    val = Counter(e.target for e in examples if e.split in ("train", "val"))
    test = Counter(e.target for e in examples if e.split == "test")
    assert val == {"left": 1_221, "center": 428, "right": 922}  # upstream val.csv, split 80/20 here
    assert test == {"left": 1_274, "center": 418, "right": 850}
    assert len({e.meta["target"] for e in examples}) == 12


def test_political_social_media(loaded):
    examples, report = loaded("political_social_media")
    assert Counter(e.target for e in examples) == {"partisan": 1_311, "neutral": 3_689}
    assert not report.problems


def test_usvsthem(loaded):
    examples, report = loaded("usvsthem")
    assert per_split(examples, "us_vs_them") == [3_683, 920, 2_261]
    assert Counter(e.target for e in examples if e.split == "train") == {"critical": 1_969, "neutral": 1_714}
    assert {e.meta["target"] for e in examples} == {
        "immigrants", "refugees", "muslims", "jews", "liberals", "conservatives"}
    assert not report.problems


def test_polar_trial(loaded):
    examples, report = loaded("polar_trial")
    assert per_split(examples, "polarized_post") == [0, 0, 338]
    assert Counter(e.target for e in examples) == {"polarized": 186, "not_polarized": 152}
    assert sum(e.meta["lang"] == "eng" for e in examples) == 20
    assert not report.problems


def test_positive_frames(loaded):
    examples, report = loaded("positive_frames")
    assert per_split(examples, "positive_reframe") == [6_679, 835, 835]
    assert per_split(examples, "depolarize") == [2_410, 303, 302]
    assert reasons(report) == Counter({"unknown label": 7})  # 7 train rows with a malformed strategy
    assert all("neutralizing" in e.meta["strategies"].split(",") for e in examples if e.task == "depolarize")


def test_cad_imdb(loaded):
    examples, report = loaded("cad_imdb")
    assert per_split(examples, "invert_sentiment") == [1_707, 245, 488]
    assert not report.problems
    assert all({e.meta["target"], e.meta["source_sentiment"]} == {"positive", "negative"} for e in examples)
    assert not any("<br" in e.text or "<br" in e.target for e in examples)


# ---- bad input, on files written here ------------------------------------------------------------

def test_redditbias_bad_rows(tmp_path):
    folder = tmp_path / "redditbias/data/race"
    folder.mkdir(parents=True)
    (folder / "reddit_comments_race_black_processed_phrase_annotated.csv").write_bytes(
        b"id,attribute_in_window,comment,phrase,bias_sent,bias_phrase\n"
        b"a1,TRUE,first comment,first,1,1\n"
        b"a2,TRUE,not annotated,x,,\n"
        b"a3,TRUE,a note,x,unsure,0\n"
        b"a4,TRUE,that\xd5s a stray byte,x,0,0\n"
        b"a5,TRUE,too,many,fields,0,0,0\n")
    report = DataReport()
    examples = list(load_source("redditbias", tmp_path, report))
    assert [(e.id, e.target, e.text) for e in examples] == [
        ("redditbias/black/2", "biased", "first comment"),
        ("redditbias/black/5", "not_biased", "that\u2019s a stray byte")]
    rel = "redditbias/data/race/reddit_comments_race_black_processed_phrase_annotated.csv"
    found = [(p.file, p.line, p.reason) for p in report.problems if p.reason != "missing file"]
    assert found == [(rel, 5, "repaired encoding"), (rel, 4, "unknown label"), (rel, 6, "malformed row")]


def test_twitter_gender_reads_the_zip_and_reports_a_bad_archive(tmp_path):
    folder = tmp_path / "twitter_gender"
    folder.mkdir()
    rows = ("_unit_id,gender,gender:confidence,text,description\n"
            "1,female,1,caf\xe9 time,bio\n2,unknown,1,x,\n3,,1,blank,\n4,male,0.6,unsure,\n5,robot,1,beep,\n")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("gender-classifier-DFE-791531.csv", rows.encode("latin-1"))
    (folder / "gender-classifier-DFE-791531.csv.zip").write_bytes(buffer.getvalue())
    report = DataReport()
    examples = list(load_source("twitter_gender", tmp_path, report))
    assert [(e.id, e.target, e.text) for e in examples] == [("twitter_gender/1", "female", "caf\xe9 time")]
    assert [(p.line, p.reason) for p in report.problems] == [(4, "missing field"), (6, "unknown label")]
    (folder / "gender-classifier-DFE-791531.csv.zip").write_bytes(b"not a zip")
    report = DataReport()
    assert list(load_source("twitter_gender", tmp_path, report)) == []
    assert [p.reason for p in report.problems] == ["unreadable archive"]


def test_cad_imdb_malformed_pair(tmp_path):
    folder = tmp_path / "cad_imdb/sentiment/combined/paired"
    folder.mkdir(parents=True)
    (folder / "train_paired.tsv").write_text(
        "Sentiment\tText\tbatch_id\nNegative\tbad film<br /><br />truly\t1\nPositive\tgood film truly\t1\n"
        "Negative\tlonely row\t2\nPositive\tsame\t3\nPositive\tsame again\t3\n", encoding="utf-8")
    report = DataReport()
    examples = list(load_source("cad_imdb", tmp_path, report))
    assert [(e.id, e.text, e.target, e.meta["target"]) for e in examples] == [
        ("cad_imdb/train/1", "bad film truly", "good film truly", "positive")]
    found = [(p.line, p.reason) for p in report.problems if p.reason != "missing file"]
    assert found == [(4, "malformed pair"), (5, "malformed pair")]
