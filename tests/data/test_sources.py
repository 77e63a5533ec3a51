"""Each source adapter on the real upstream files: counts against ../shared/data/README.md, valid
labels, unique ids, splits that never mix a post; then bad input on files the tests write."""

import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from somelvlm.data.report import DataReport
from somelvlm.data.sources import SOURCES, load_source
from somelvlm.taxonomy import get_task


@pytest.fixture(scope="module")
def loaded(data_root):
    cache = {}

    def get(name):
        if name not in cache:
            report = DataReport()
            examples = list(load_source(name, data_root, report))
            cache[name] = (examples, report)
        return cache[name]

    return get


def counts(examples):
    return Counter((e.task, e.split) for e in examples)


def check_common(examples, data_root):
    ids = [e.id for e in examples]
    assert len(ids) == len(set(ids)), "ids are unique"
    for e in examples:
        task = get_task(e.task)
        if task.kind == "classification":
            assert e.target in task.labels, (e.id, e.target)
        elif task.kind == "regression":
            low, high = task.range
            assert low <= float(e.target) <= high
        else:
            assert str(e.target).strip()
        if e.image is not None:
            assert (data_root / e.image).is_file(), e.image


def test_registry_has_all_fourteen_sources():
    assert len(SOURCES) == 14


def test_tweeteval(loaded, data_root):
    examples, report = loaded("tweeteval")
    check_common(examples, data_root)
    c = counts(examples)
    assert [c[("emotion", s)] for s in ("train", "val", "test")] == [3257, 374, 1421]
    assert [c[("irony", s)] for s in ("train", "val", "test")] == [2862, 955, 784]
    assert [c[("offensive", s)] for s in ("train", "val", "test")] == [11916, 1324, 860]
    assert [c[("stance", s)] for s in ("train", "val", "test")] == [2620, 294, 1249]
    assert [c[("emoji", s)] for s in ("train", "val", "test")] == [45000, 5000, 50000]
    assert c[("sentiment", "train")] == 0 and [c[("sentiment", s)] for s in ("val", "test")] == [2000, 12284]
    # hate: 9000/1000/2970 upstream; 8 lines are blank tweets, each reported by file and line
    assert [c[("hate", s)] for s in ("train", "val", "test")] == [8993, 999, 2970]
    assert report.by_reason() == Counter({("tweeteval", "empty post"): 8})
    assert all(p.line for p in report.problems)
    assert {e.meta["target"] for e in examples if e.task == "stance"} == {
        "abortion", "atheism", "climate", "feminist", "hillary"}
    tags = [e for e in examples if e.task == "hashtags"]
    assert len(tags) > 50_000
    assert not any(re.search(r"#\w", e.text) for e in tags)  # stray '#' characters may stay
    assert all(e.target.startswith("#") and "#SemST" not in e.target for e in tags)


def test_text_sources(loaded, data_root):
    davidson, _ = loaded("davidson")
    assert len(davidson) == 24_783
    liar, _ = loaded("liar")
    c = counts(liar)
    assert [c[("claim_veracity", s)] for s in ("train", "val", "test")] == [10_269, 1_284, 1_283]
    assert c == Counter({(t, s): n for t in ("claim_veracity", "party") for s, n in
                         (("train", 10_269), ("val", 1_284), ("test", 1_283))})
    constraint, _ = loaded("constraint")
    c = counts(constraint)
    assert c[("fake_news", "train")] == 6_420 and c[("fake_news", "val")] + c[("fake_news", "test")] == 2_140
    hahack, _ = loaded("hahackathon")
    assert sum(1 for e in hahack if e.task == "humor") == 8_000
    sarcasm, report = loaded("isarcasmeval")
    labels = Counter(e.target for e in sarcasm if e.task == "sarcasm")
    # 3,468 rows upstream, 867 sarcastic; one row has an empty tweet and is reported
    assert sum(labels.values()) == 3_467 and labels["sarcastic"] == 867
    assert report.by_reason() == Counter({("isarcasmeval", "missing field"): 1})
    colbert, _ = loaded("colbert_humor")
    assert len(colbert) == 40_000
    detox, report = loaded("paradetox")
    # 11,935 data lines; 12 are halves of rows broken by a newline inside a field (reported)
    assert len(detox) == 11_921 and report.by_reason()[("paradetox", "malformed row")] == 13
    for examples in (davidson, liar, constraint, hahack, sarcasm, colbert, detox):
        check_common(examples, data_root)


@pytest.mark.parametrize("name", ["davidson", "hahackathon", "isarcasmeval", "colbert_humor", "paradetox"])
def test_derived_splits_never_mix_a_post(loaded, name):
    examples, _ = loaded(name)
    splits = defaultdict(set)
    for e in examples:
        splits[e.text].add(e.split)
    mixed = [t for t, s in splits.items() if len(s) > 1]
    assert len(mixed) <= 0.001 * len(splits), mixed[:3]  # only upstream duplicates with other ids
    share = Counter(e.split for e in examples)
    assert 0.75 < share["train"] / sum(share.values()) < 0.85


def test_meme_sources(loaded, data_root):
    hmc, _ = loaded("hmc")
    check_common(hmc, data_root)
    subset = Counter((e.meta["subset"], e.split) for e in hmc if e.task != "meme_stance" and e.task != "hate_target")
    assert [subset[("FHM", s)] for s in ("train", "val", "test")] == [8500, 640, 1000]
    assert [subset[("MAMI", s)] for s in ("train", "val", "test")] == [9000, 1000, 1000]
    assert [subset[("MultiOFF", s)] for s in ("train", "val", "test")] == [445, 149, 149]
    assert [subset[("PrideMM", s)] for s in ("train", "val", "test")] == [4328, 228, 507]
    harm, report = loaded("harmeme")
    check_common(harm, data_root)
    c = Counter((e.meta["subset"], e.split) for e in harm if e.task == "harmful_meme")
    assert [c[("Harm-C", s)] for s in ("train", "val", "test")] == [3013, 177, 354]
    assert [c[("Harm-P", s)] for s in ("train", "val")] == [2937, 177]  # 2,938 upstream, one bad label reported
    assert report.by_reason() == Counter({("harmeme", "unknown label"): 1})
    cm, report = loaded("cm_memes")
    check_common(cm, data_root)
    memes = {e.image for e in cm}
    assert len(memes) == 1_308 and all(e.image for e in cm)
    assert report.by_reason()[("cm_memes", "missing image")] == 2_021 - 1_308
    memo, _ = loaded("memotion")
    check_common(memo, data_root)
    assert len(memo) == 6_992 and sum(e.image is not None for e in memo) >= 6_989


def test_mediaeval_is_split_by_event(loaded, data_root):
    posts, report = loaded("mediaeval2016")
    check_common(posts, data_root)
    assert len(posts) == 15_629 and not report.problems
    assert Counter(e.target for e in posts) == Counter({"fake": 9_404, "real": 6_225})
    events = defaultdict(set)
    for e in posts:
        events[e.meta["event"]].add(e.split)
    assert len(events) == 17 and all(len(s) == 1 for s in events.values())
    for split in ("val", "test"):
        assert {e.target for e in posts if e.split == split} == {"fake", "real"}
    assert sum(e.image is not None for e in posts) > 10_000


def test_published_testset(loaded):
    items, report = loaded("somelvlm_testset")
    assert not report.problems
    c = Counter(e.task for e in items)
    assert c == Counter({"hateful_meme": 500, "sentiment": 951, "fake_news": 500, "hashtags": 986})
    assert all(e.split == "test" and e.meta["prompt"] for e in items)


def test_adapters_are_deterministic(data_root):
    first = [(e.id, e.split) for e in load_source("constraint", data_root, DataReport())]
    again = [(e.id, e.split) for e in load_source("constraint", data_root, DataReport())]
    assert first == again


# ---- bad input, on files written here ------------------------------------------------------------

def test_malformed_csv_rows_unknown_labels_and_bad_utf8(tmp_path):
    folder = tmp_path / "davidson" / "data"
    folder.mkdir(parents=True)
    (folder / "labeled_data.csv").write_bytes(
        b',count,hate_speech,offensive_language,neither,class,tweet\n'
        b'0,3,0,0,3,2,a fine tweet\n'
        b'1,3,0,3,0,7,unknown class\n'
        b'2,3,0,3,0,1\n'
        b'3,3,0,3,0,1,bad \xff byte\n'
        b'4,3,0,3,0,0,\n'
        b'5,3,3,0,0,0,"a hateful tweet"\n')
    report = DataReport()
    examples = list(load_source("davidson", tmp_path, report))
    assert [e.target for e in examples] == ["neither", "hate"]
    where = {(p.line, p.reason) for p in report.problems}
    assert where == {(3, "unknown label"), (4, "malformed row"), (5, "invalid UTF-8"), (6, "missing field")}
    assert all(p.file == "davidson/data/labeled_data.csv" for p in report.problems)


def test_malformed_json_lines_and_missing_images(tmp_path):
    harm = tmp_path / "harmeme" / "HarMeme_V1" / "Annotations" / "Harm-C"
    harm.mkdir(parents=True)
    (harm / "train.jsonl").write_text(
        '{"id": "a", "image": "a.png", "labels": ["not harmful"], "text": "ok"}\n'
        '{"id": "b", "labels": ["very harmful", "society"], "text": "bad"\n'
        '{"id": "c", "image": "c.png", "labels": ["extremely harmful"], "text": "?"}\n', encoding="utf-8")
    report = DataReport()
    examples = list(load_source("harmeme", tmp_path, report))
    assert [e.id for e in examples] == ["harmeme/Harm-C/train/a/harmful_meme"]
    reasons = {(p.file.rsplit("/", 1)[-1], p.line, p.reason) for p in report.problems}
    assert ("train.jsonl", 2, "malformed JSON") in reasons and ("train.jsonl", 3, "unknown label") in reasons
    cm = tmp_path / "cm_memes"
    (cm / "LREC_COLING_meme").mkdir(parents=True)
    (cm / "LREC_COLING_meme" / "here.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (cm / "sample_data.csv").write_text(
        "Name,Text,Ground truth reality,Level1,Level2,Valence,Sarcasm,Joy,Sadness,Anger,Fear,Surprise\n"
        "here.png,hello,nothing offensive,non-off,non-off,neutral,sarcasm,0,0,0,0,0\n"
        "gone.png,bye,nothing offensive,off,explicit,negative,sarcasm,0,0,0,0,0\n", encoding="utf-8")
    report = DataReport()
    examples = list(load_source("cm_memes", tmp_path, report))
    assert {e.image for e in examples} == {"cm_memes/LREC_COLING_meme/here.png"}
    assert [(p.line, p.reason, p.detail) for p in report.problems] == [
        (3, "missing image", "cm_memes/LREC_COLING_meme/gone.png")]


def test_missing_source_folder_is_reported_not_raised(tmp_path):
    report = DataReport()
    assert list(load_source("liar", tmp_path, report)) == []
    assert report.problems[0].reason == "missing source folder"
