"""The meme / multimodal adapters (hmc, harmeme, cm_memes, memotion, mediaeval2016, somelvlm_testset):
counts on the real data against ../shared/data/README.md, label ids of the task spec, unique ids,
images that exist, splits that are deterministic and never split an event; then bad input on
small files the tests write, checking each problem's file and line."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from somelvlm.data.example import SPLITS
from somelvlm.data.report import DataReport
from somelvlm.data.sources import load_source

MEME_SOURCES = ("hmc", "harmeme", "cm_memes", "memotion", "mediaeval2016", "somelvlm_testset")
LABELS = {  # the label ids of /work/notes/task_spec.md, for the tasks these sources feed
    "hateful_meme": {"not_hateful", "hateful"},
    "misogynous_meme": {"not_misogynous", "misogynous"},
    "offensive_meme": {"not_offensive", "offensive"},
    "meme_stance": {"neutral", "support", "oppose"},
    "hate_target": {"individual", "organization", "community", "society"},
    "harmful_meme": {"not_harmful", "somewhat_harmful", "very_harmful"},
    "offense_type": {"non_offensive", "explicit", "implicit"},
    "meme_sarcasm": {"not_sarcastic", "sarcastic"},
    "meme_sentiment": {"very_negative", "negative", "neutral", "positive", "very_positive"},
    "verify_post": {"real", "fake"},
    "sentiment": {"negative", "neutral", "positive"},
    "fake_news": {"real", "fake"},
    "image_post_gender": {"female", "male"},
    "image_post_ideology": {"left", "center", "right"},
    "image_post_emotion": {"happy", "love", "sad", "fear", "angry", "calm", "bored"},
    "image_post_hate_type": {"not_hate", "racist", "sexist", "homophobe", "religion", "other_hate"},
}
GENERATION = {"explain_offensive_meme", "hashtags", "hashtag_choice", "explain_personality", "explain_domain",
              "open_emotion", "open_hate", "open_news_veracity", "open_ideology", "open_gender"}
TESTSET = "somelvlm_testset/SoMeData_testset/Multimodal_testset"


def by_task_split(examples, *tasks):
    c = Counter((e.task, e.split) for e in examples)
    return {t: [c[(t, s)] for s in SPLITS] for t in tasks}


# ---- every source on the real data ---------------------------------------------------------------

@pytest.mark.parametrize("name", MEME_SOURCES)
def test_ids_labels_images_and_meta(loaded, data_root, name):
    examples, _ = loaded(name)
    assert examples
    ids = [e.id for e in examples]
    assert len(ids) == len(set(ids))
    assert all(i.startswith(f"{name}/") for i in ids)
    for e in examples:
        assert e.source == name and e.split in SPLITS
        if e.task in GENERATION:
            assert isinstance(e.target, str) and e.target.strip(), e.id
        else:
            assert e.target in LABELS[e.task], (e.id, e.target)
        assert (e.text and e.text.strip()) or e.image, e.id
        if e.image is not None:
            assert "\\" not in e.image and not Path(e.image).is_absolute()
            assert (data_root / e.image).is_file(), e.image
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in e.meta.items())


@pytest.mark.parametrize("name", MEME_SOURCES)
def test_reading_twice_gives_the_same_examples(loaded, data_root, name):
    first, _ = loaded(name)
    again = list(load_source(name, data_root, DataReport()))
    assert [(e.id, e.split, e.target) for e in again] == [(e.id, e.split, e.target) for e in first]


def test_hmc(loaded, data_root):
    examples, report = loaded("hmc")
    assert not report.problems
    c = Counter((e.meta["subset"], e.split) for e in examples if e.task not in ("meme_stance", "hate_target"))
    assert [c[("FHM", s)] for s in SPLITS] == [8500, 640, 1000]
    assert [c[("MAMI", s)] for s in SPLITS] == [9000, 1000, 1000]
    assert [c[("MultiOFF", s)] for s in SPLITS] == [445, 149, 149]
    assert [c[("PrideMM", s)] for s in SPLITS] == [4328, 228, 507]
    pride = [e for e in examples if e.meta["subset"] == "PrideMM"]
    # every PrideMM meme has a stance; a target only where it is not null (hateful memes)
    assert by_task_split(pride, "meme_stance", "hate_target") == {
        "meme_stance": [4328, 228, 507], "hate_target": [1454, 78, 179]}
    assert all(e.image is None and e.meta["image_name"] for e in examples)  # text only, names kept
    # the JSON splits agree with PrideMM.csv (same memes, same split, same hate label)
    with open(data_root / "hmc/data/PrideMM/PrideMM.csv", newline="", encoding="utf-8") as fh:
        csv_rows = {r["name"]: r for r in csv.DictReader(fh)}
    hateful = {e.id.split("/")[3]: e for e in pride if e.task == "hateful_meme"}
    assert len(csv_rows) == len(hateful) == 5063
    for upstream_id, e in hateful.items():
        row = csv_rows[f"img_{upstream_id}.png"]
        assert row["split"] == e.split
        assert row["hate"] == ("1" if e.target == "hateful" else "0")


def test_harmeme(loaded):
    examples, report = loaded("harmeme")
    c = Counter((e.meta["subset"], e.split) for e in examples if e.task == "harmful_meme")
    assert [c[("Harm-C", s)] for s in SPLITS] == [3013, 177, 354]
    # Harm-P train_v1 has 2,938 rows: one has an empty harm label (line 1706), reported and skipped
    assert [c[("Harm-P", s)] for s in SPLITS] == [2937, 177, 0]
    assert by_task_split(examples, "hate_target") == {"hate_target": [2495, 150, 124]}
    assert report.by_reason() == Counter({("harmeme", "missing field"): 41, ("harmeme", "ambiguous label"): 16,
                                          ("harmeme", "inconsistent label"): 12})
    assert {p.file for p in report.problems} == {"harmeme/HarMeme_V1/Annotations/Harm-P/train_v1.jsonl"}
    assert [p.line for p in report.problems if p.detail.startswith("id, text or labels")] == [1706]
    assert all(e.image is None and e.meta["image_name"] for e in examples)


def test_cm_memes(loaded, data_root):
    examples, report = loaded("cm_memes")
    memes = {e.meta["name"] for e in examples}
    assert len(memes) == 1308 == len(list((data_root / "cm_memes/LREC_COLING_meme").glob("*.png")))
    assert Counter(e.task for e in examples) == Counter(
        {"offensive_meme": 1308, "offense_type": 1308, "explain_offensive_meme": 1308, "meme_sarcasm": 1306})
    # the CSV's 2,021 rows minus the 1,308 with an image: one "missing image" line each
    assert report.by_reason() == Counter({("cm_memes", "missing image"): 2021 - 1308,
                                          ("cm_memes", "missing field"): 2})
    assert [(p.line, p.detail) for p in report.problems if p.reason == "missing field"] == [
        (610, "Sarcasm"), (1040, "Sarcasm")]
    splits = defaultdict(set)
    for e in examples:
        splits[e.meta["name"]].add(e.split)
    assert all(len(s) == 1 for s in splits.values())  # the four tasks of a meme share its split
    share = Counter(next(iter(s)) for s in splits.values())
    assert 0.7 < share["train"] / len(splits) < 0.9 and share["val"] and share["test"]


def test_memotion(loaded, data_root):
    examples, report = loaded("memotion")
    assert not report.problems
    # README: 6,992 rows and 6,989 images; this copy has 6,992 image files and every row finds its own
    assert len(examples) == 6992 == len(list((data_root / "memotion/images").iterdir()))
    assert all(e.image for e in examples)
    assert sum(e.text is None for e in examples) == 4  # neither text_corrected nor text_ocr
    assert Counter(e.target for e in examples) == Counter(
        {"positive": 3127, "neutral": 2201, "very_positive": 1033, "negative": 480, "very_negative": 151})
    share = Counter(e.split for e in examples)
    assert 0.75 < share["train"] / len(examples) < 0.85


def test_mediaeval2016_is_split_by_event(loaded):
    posts, report = loaded("mediaeval2016")
    assert len(posts) == 15629
    assert Counter(e.target for e in posts) == Counter({"fake": 9404, "real": 6225})
    events = defaultdict(set)
    for e in posts:
        events[e.meta["event"]].add(e.split)
    assert len(events) == 17 and all(len(s) == 1 for s in events.values())
    per_split = Counter((e.split, e.target) for e in posts)
    # the event assignment SoMe-mini was trained with (see the adapter's docstring)
    assert per_split == Counter({("train", "fake"): 8716, ("train", "real"): 4664, ("val", "fake"): 326,
                                 ("val", "real"): 484, ("test", "fake"): 362, ("test", "real"): 1077})
    for split in ("val", "test"):
        n = per_split[(split, "fake")] + per_split[(split, "real")]
        assert 0.05 <= n / len(posts) <= 0.2 and per_split[(split, "real")] and per_split[(split, "fake")]
    # 8 image ids have no file, each reported once; posts left with no image at all stay text-only
    assert report.by_reason() == Counter({("mediaeval2016", "missing image"): 8})
    assert sum(e.image is not None for e in posts) == 13416
    assert sum("video_url" in e.meta for e in posts) == 1786 + 61


FIRST_TESTSET_FILES = Counter({  # the files read before the rest of the test set was added
    "in_domain/HatefulMemes_test.json": 500, "in_domain/MVSA_Single_test.json": 451,
    "in_domain/MVSA_Multiple_test.json": 500, "in_domain/FakeNewsNet_test.json": 500,
    "in_domain/hashtag_gen_test.json": 492 - 8, "out_of_distribution/hashtag_gen_ood.json": 494})
LATER_TESTSET_FILES = Counter({  # published counts less the items whose caption is empty (reported)
    "in_domain/PAN_test.json": 500 - 1, "in_domain/Tweet_cele_test.json": 128, "in_domain/Tweet_leg_test.json": 188,
    "in_domain/TumEmo_test.json": 499 - 12, "in_domain/MMHS_test.json": 500 - 1,
    "in_domain/hashtag_choice_test.json": 500, "out_of_distribution/hashtag_choice_ood.json": 498,
    "in_domain/personality_explain_test.json": 488, "out_of_distribution/personality_explain_ood.json": 490,
    "in_domain/domain_explain_test.json": 494, "out_of_distribution/domain_explain_ood.json": 495,
    "in_domain/MVSA_Single_test_g.json": 451, "in_domain/MVSA_Multiple_test_g.json": 500,
    "in_domain/TumEmo_test_g.json": 498 - 7, "in_domain/HatefulMemes_test_g.json": 500,
    "in_domain/MMHS_test_g.json": 500, "in_domain/FakeNewsNet_test_g.json": 499,
    "in_domain/Tweet_cele_test_g.json": 126, "in_domain/Tweet_leg_test_g.json": 188,
    "in_domain/PAN_test_g.json": 500 - 3})


def test_somelvlm_testset(loaded):
    items, report = loaded("somelvlm_testset")
    files = Counter(e.meta["file"] for e in items)
    assert {f: n for f, n in files.items() if f in FIRST_TESTSET_FILES} == FIRST_TESTSET_FILES
    assert files == FIRST_TESTSET_FILES + LATER_TESTSET_FILES
    # 8 published hashtag answers are refusals with no hashtag: reported; 24 captions are empty (the
    # image was the whole post, and the images are not in this copy): reported; nothing else
    assert report.by_reason() == Counter({("somelvlm_testset", "unknown label"): 8,
                                          ("somelvlm_testset", "empty post"): 24})
    assert {p.file for p in report.problems if p.reason == "unknown label"} == {
        f"{TESTSET}/in_domain/hashtag_gen_test.json"}
    assert all(e.split == "test" and e.image is None and e.meta["prompt"] for e in items)
    assert all(re.fullmatch(r"#\w+ #\w+ #\w+", e.target) for e in items if e.task == "hashtags")
    assert Counter(e.target for e in items if e.task == "fake_news") == Counter({"real": 404, "fake": 96})
    # every caption was cut out of its prompt (none fell back to the whole prompt)
    assert all(e.text != e.meta["prompt"] and e.text in e.meta["prompt"] for e in items)


def test_somelvlm_testset_later_files(loaded):
    items, _ = loaded("somelvlm_testset")
    labels = Counter((e.task, e.target) for e in items if e.task.startswith("image_post_"))
    assert {lab: n for (task, lab), n in labels.items() if task == "image_post_gender"} == {"male": 253 - 1, "female": 247}
    assert {lab: n for (task, lab), n in labels.items() if task == "image_post_ideology"} == {
        "left": 53 + 119, "right": 52 + 69, "center": 23}
    assert {lab: n for (task, lab), n in labels.items() if task == "image_post_hate_type"} == {
        "other_hate": 110, "racist": 102, "not_hate": 101, "homophobe": 98, "sexist": 82 - 1, "religion": 7}
    # the published answers parse to the item's label (NotHate, OtherHate, Calm ...)
    from somelvlm.taxonomy import get_task, parse_answer

    for e in items:
        if e.task.startswith("image_post_"):
            assert parse_answer(get_task(e.task), e.meta["answer"]) == e.target, e.id
    choices = [e for e in items if e.task == "hashtag_choice"]
    assert all(e.target in e.meta["target"].split(", ") and len(e.meta["target"].split(", ")) >= 2 for e in choices)
    # no question, choice or constraint line of the published prompts is left in a caption
    leftovers = ("Choices: [", "Constraints:", "Options: [", "Explain it in one sentence", "In which area of work")
    assert not [e.id for e in items if any(w in e.text for w in leftovers)]
    sample = next(e for e in items if e.id == "somelvlm_testset/in_domain/MMHS_test/1")
    assert sample.text == "@maryashakil Unfortunately Islam contributed nothing to mankind except terrorism"


def test_somelvlm_testset_captions_match_the_published_ones(loaded, data_root):
    items, _ = loaded("somelvlm_testset")
    ood = json.loads((data_root / TESTSET / "out_of_distribution/hashtag_gen_ood.json").read_text("utf-8"))
    ours = [e for e in items if e.meta["file"] == "out_of_distribution/hashtag_gen_ood.json"]
    assert [e.text for e in ours] == [r["caption"].strip() for r in ood]


# ---- bad input, on files written here ------------------------------------------------------------

def problems(report):
    return [(p.file, p.line, p.reason) for p in report.problems]


def test_hmc_bad_json_records(tmp_path):
    fhm = tmp_path / "hmc/data/FHM/data"
    fhm.mkdir(parents=True)
    (fhm / "train.json").write_text(json.dumps([
        {"id": "1", "label": 1, "text": "a hateful meme", "img": "img/1.png"},
        {"id": "2", "label": 2, "text": "label two", "img": "img/2.png"},
        {"id": "3", "label": 0, "text": " ", "img": "img/3.png"},
        "not an object",
    ]), encoding="utf-8")
    pride = tmp_path / "hmc/data/PrideMM/data"
    pride.mkdir(parents=True)
    (pride / "test.json").write_text(json.dumps([
        {"id": "7", "label": 1, "target": "nation", "stance": "oppose", "humour": 0, "img": "7.png", "text": "x"},
        {"id": "8", "label": 0, "target": None, "stance": "unsure", "humour": 0, "img": "8.png", "text": "y"},
    ]), encoding="utf-8")
    report = DataReport()
    examples = list(load_source("hmc", tmp_path, report))
    assert [(e.id, e.target) for e in examples] == [
        ("hmc/FHM/train/1", "hateful"), ("hmc/PrideMM/test/7/hateful_meme", "hateful"),
        ("hmc/PrideMM/test/7/meme_stance", "oppose"), ("hmc/PrideMM/test/8/hateful_meme", "not_hateful")]
    found = [p for p in problems(report) if p[2] != "missing file"]  # the other upstream files are absent
    assert found == [("hmc/data/FHM/data/train.json", 2, "unknown label"),
                     ("hmc/data/FHM/data/train.json", 3, "missing field"),
                     ("hmc/data/FHM/data/train.json", 4, "malformed JSON"),
                     ("hmc/data/PrideMM/data/test.json", 1, "unknown label"),
                     ("hmc/data/PrideMM/data/test.json", 2, "unknown label")]


def test_harmeme_bad_lines(tmp_path):
    folder = tmp_path / "harmeme/HarMeme_V1/Annotations/Harm-C"
    folder.mkdir(parents=True)
    (folder / "train.jsonl").write_text("\n".join([
        '{"id": "a", "image": "a.png", "labels": ["very harmful", "society"], "text": "ok"}',
        '{"id": "b", "image": "b.png", "labels": ["very harmful", "society"], "text": "cut',
        '{"id": "c", "image": "c.png", "labels": ["extremely harmful"], "text": "?"}',
        '{"id": "d", "image": "d.png", "labels": [], "text": "no labels"}',
        '{"id": "e", "image": "e.png", "labels": ["not harmful", "individual"], "text": "both"}',
        '{"id": "f", "image": "f.png", "labels": ["somewhat harmful", "individual", "community"], "text": "two"}',
        '{"id": "g", "image": "g.png", "labels": ["somewhat harmful", "nation"], "text": "odd target"}',
    ]) + "\n", encoding="utf-8")
    report = DataReport()
    examples = list(load_source("harmeme", tmp_path, report))
    assert [e.id for e in examples] == [
        "harmeme/Harm-C/train/a/harmful_meme", "harmeme/Harm-C/train/a/hate_target",
        "harmeme/Harm-C/train/e/harmful_meme", "harmeme/Harm-C/train/f/harmful_meme",
        "harmeme/Harm-C/train/g/harmful_meme"]
    f = "harmeme/HarMeme_V1/Annotations/Harm-C/train.jsonl"
    assert [p for p in problems(report) if p[0] == f] == [
        (f, 2, "malformed JSON"), (f, 3, "unknown label"), (f, 4, "missing field"), (f, 5, "inconsistent label"),
        (f, 6, "ambiguous label"), (f, 7, "unknown label")]


def test_cm_memes_missing_images_duplicates_and_bad_labels(tmp_path):
    folder = tmp_path / "cm_memes/LREC_COLING_meme"
    folder.mkdir(parents=True)
    for name in ("a.png", "b.png"):
        (folder / name).write_bytes(b"\x89PNG\r\n\x1a\n")
    header = "Name,Text,Ground truth reality,Level1,Level2,Valence,Sarcasm,Joy,Sadness,Anger,Fear,Surprise\n"
    (tmp_path / "cm_memes/sample_data.csv").write_text(header + "".join([
        "a.png,hello,There is no offenisve content,non-off,non-off,neutral,non-sarcastic,0,0,0,0,0\n",
        "gone.png,bye,Mocking someone,off,explicit,negative,sarcasm,0,0,0,0,0\n",
        "a.png,again,Mocking someone,off,explicit,negative,sarcasm,0,0,0,0,0\n",
        "b.png,\"yo, bhai\",Mocking someone,offensive?,implicit,negative,,0,0,0,0,0\n",
    ]), encoding="utf-8")
    report = DataReport()
    examples = list(load_source("cm_memes", tmp_path, report))
    f = "cm_memes/sample_data.csv"
    assert problems(report) == [(f, 3, "missing image"), (f, 4, "duplicate id"), (f, 5, "unknown label"),
                                (f, 5, "missing field")]
    assert Counter(e.meta["name"] for e in examples) == Counter({"a.png": 4, "b.png": 2})
    b = {e.task: e for e in examples if e.meta["name"] == "b.png"}
    assert set(b) == {"offense_type", "explain_offensive_meme"} and b["offense_type"].text == "yo, bhai"
    assert b["offense_type"].image == "cm_memes/LREC_COLING_meme/b.png"


def test_memotion_resolves_names_case_insensitively(tmp_path):
    folder = tmp_path / "memotion/images"
    folder.mkdir(parents=True)
    (folder / "image_1.JPG").write_bytes(b"\xff\xd8\xff")
    (folder / "image_2.png").write_bytes(b"\x89PNG")
    (tmp_path / "memotion/labels.csv").write_text(
        ",image_name,text_ocr,text_corrected,overall_sentiment\n"
        "0,image_1.jpg,OCR TEXT,Corrected text,very_positive\n"
        "1,image_2.png,ocr only,,neutral\n"
        "2,image_3.jpg,,,positive\n"
        "3,image_4.jpg,no image here,,positive\n"
        "4,image_5.jpg,text,text,ecstatic\n", encoding="utf-8")
    report = DataReport()
    examples = list(load_source("memotion", tmp_path, report))
    assert [(e.image, e.text, e.target) for e in examples] == [
        ("memotion/images/image_1.JPG", "Corrected text", "very_positive"),
        ("memotion/images/image_2.png", "ocr only", "neutral"),
        (None, "no image here", "positive")]
    f = "memotion/labels.csv"
    assert problems(report) == [(f, 4, "missing image"), (f, 5, "missing image"), (f, 6, "unknown label")]


def test_mediaeval2016_images_events_and_bad_rows(tmp_path):
    images = tmp_path / "mediaeval2016/mediaeval2016/devset/Medieval2016_DevSet_Images"
    (images / "BostonMarathon/fakes").mkdir(parents=True)
    (images / "BostonMarathon/fakes/boston_fake_01.JPG").write_bytes(b"\xff\xd8\xff")
    (images / "Garissa_Attack").mkdir()
    (images / "Garissa_Attack/garissa_01.jpg").write_bytes(b"\xff\xd8\xff")
    (images / "Syrian_boy").mkdir()
    (images / "Syrian_boy/syrian_boy_video.txt").write_text("id\turl\nsyrianboy_1\thttps://example.org/v\n")
    rows = [
        "1\tfirst\tu\tboston_fake_99,boston_fake_01\tn\tt\tfake",
        "2\tsecond\tu\tboston_fake_99\tn\tt\tfake",
        "3\tthird\tu\tgarissa_01\tn\tt\treal",
        "4\tfourth\tu\tsyrianboy_1\tn\tt\tfake",
        "5\tfifth\tu\tmars_fake_01\tn\tt\tfake",
        "6\tsixth\tu\tgarissa_01\tn\tt\tsatire",
        "7\ttoo few fields\tu\tgarissa_01",
    ]
    (images.parent / "posts.txt").write_text(
        "post_id\tpost_text\tuser_id\timage_id(s)\tusername\ttimestamp\tlabel\n" + "\n".join(rows) + "\n",
        encoding="utf-8")
    report = DataReport()
    posts = list(load_source("mediaeval2016", tmp_path, report))
    base = "mediaeval2016/mediaeval2016/devset/Medieval2016_DevSet_Images"
    assert [(e.id, e.image, e.meta["event"]) for e in posts] == [
        ("mediaeval2016/devset/val/1", f"{base}/BostonMarathon/fakes/boston_fake_01.JPG", "BostonMarathon"),
        ("mediaeval2016/devset/val/2", None, "BostonMarathon"),
        ("mediaeval2016/devset/test/3", f"{base}/Garissa_Attack/garissa_01.jpg", "Garissa_Attack"),
        ("mediaeval2016/devset/train/4", None, "Syrian_boy")]
    assert posts[3].meta["video_url"] == "https://example.org/v"
    f = "mediaeval2016/mediaeval2016/devset/posts.txt"
    assert problems(report) == [(f, 2, "missing image"), (f, 6, "unknown event"), (f, 7, "unknown label"),
                                (f, 8, "malformed row")]  # boston_fake_99 is reported once, not per post


def test_somelvlm_testset_bad_records(tmp_path):
    folder = tmp_path / TESTSET / "in_domain"
    folder.mkdir(parents=True)
    good = "This meme goes along with the following caption: '{}'.\nDoes this meme show any hate speech?\n" \
           "Options: [true, false]"
    lines = [
        {"text_input": good.format("it's a caption"), "text_output": "true", "image": "1.png"},
        None,  # a malformed line
        {"text_input": good.format("b"), "text_output": "maybe", "image": "2.png"},
        {"text_input": "A prompt in no published template", "text_output": "false", "image": "3.png"},
        {"text_input": good.format("d"), "image": "4.png"},
    ]
    (folder / "HatefulMemes_test.json").write_text(
        "\n".join('{"text_input": "cut' if r is None else json.dumps(r) for r in lines) + "\n", encoding="utf-8")
    report = DataReport()
    items = list(load_source("somelvlm_testset", tmp_path, report))
    assert [(e.id, e.text, e.target) for e in items] == [
        ("somelvlm_testset/in_domain/HatefulMemes_test/1", "it's a caption", "hateful"),
        ("somelvlm_testset/in_domain/HatefulMemes_test/4", "A prompt in no published template", "not_hateful")]
    f = f"{TESTSET}/in_domain/HatefulMemes_test.json"
    assert [p for p in problems(report) if p[0] == f] == [
        (f, 2, "malformed JSON"), (f, 3, "unknown label"), (f, 4, "prompt not parsed"), (f, 5, "missing field")]
