"""The SoMeData builder: conversation format, Parquet for `datasets`, stats, determinism, atomicity."""

import hashlib
import json
from pathlib import Path

import pytest

from somelvlm.data import somedata
from somelvlm.data.somedata import BuildConfig, build
from somelvlm.taxonomy import get_task

SMALL_TASKS = ["emotion", "stance", "hateful_meme", "meme_sentiment", "humor_rating", "detoxify", "verify_post"]


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_build(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("somedata") / "build"
    result = build(BuildConfig(data_root=data_root, out=out, tasks=SMALL_TASKS, max_per_task=12))
    return out, result


def test_records_are_sharegpt_conversations(small_build, data_root):
    out, result = small_build
    records = [json.loads(line) for s in ("train", "val", "test")
               for line in (out / f"{s}.jsonl").read_text(encoding="utf-8").split("\n") if line.strip()]
    assert {r["task"] for r in records} == set(SMALL_TASKS)
    for r in records:
        human, gpt = r["conversations"]
        assert human["from"] == "human" and gpt["from"] == "gpt" and gpt["value"]
        task = get_task(r["task"])
        assert r["level"] == task.level
        if "image" in r:
            assert human["value"].startswith("<image>\n")
            assert (data_root / r["image"]).is_file()
        else:
            assert "<image>" not in human["value"]
        if task.kind == "classification":
            assert r["target"] in task.labels and gpt["value"] == task.answer(r["target"])
    assert any("image" in r for r in records), "memotion / mediaeval records carry images"
    # prompt templates rotate within a task
    for name in SMALL_TASKS:
        used = {r["prompt_index"] for r in records if r["task"] == name and r["split"] == "train"}
        assert len(used) >= min(5, len(get_task(name).prompts))
    # at most 12 per task and split
    assert max(result.counts.values()) <= 12


def test_parquet_loads_with_datasets(small_build):
    datasets = pytest.importorskip("datasets")
    out, result = small_build
    files = {s: str(out / "parquet" / f"{s}.parquet") for s in ("train", "val", "test")}
    ds = datasets.load_dataset("parquet", data_files=files)
    assert ds["train"].num_rows == sum(n for (t, s), n in result.counts.items() if s == "train")
    row = ds["train"][0]
    assert row["conversations"][0]["from"] == "human"


def test_stats_table_lists_levels_and_data_types(small_build):
    out, _ = small_build
    stats = (out / "stats.md").read_text(encoding="utf-8")
    assert "| level | family | task |" in stats
    assert "Knowledge & Comprehension" in stats and "Evaluation" in stats
    table = json.loads((out / "stats.json").read_text(encoding="utf-8"))
    types = {row["task"]: row["data_type"] for row in table["tasks"]}
    assert types["emotion"] == "text" and types["meme_sentiment"] == "multi"


def test_build_is_deterministic(small_build, data_root, tmp_path):
    out, _ = small_build
    again = tmp_path / "again"
    build(BuildConfig(data_root=data_root, out=again, tasks=SMALL_TASKS, max_per_task=12))
    assert digest(out) == digest(again)


def test_failed_build_leaves_previous_output_intact(data_root, tmp_path, monkeypatch):
    out = tmp_path / "build"
    build(BuildConfig(data_root=data_root, out=out, tasks=["emotion"], max_per_task=3))
    before = digest(out)

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(somedata, "_write_parquet", boom)
    with pytest.raises(RuntimeError):
        build(BuildConfig(data_root=data_root, out=out, tasks=["emotion", "hate"], max_per_task=3))
    assert digest(out) == before


def test_missing_data_root_is_one_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="--data-root"):
        BuildConfig(data_root=tmp_path / "missing", out=tmp_path / "out")


def test_bad_rows_are_reported_and_the_rest_built(tmp_path):
    """A tweeteval-format folder written here, with bad lines: reported by file and line."""
    root = tmp_path / "data"
    emo = root / "tweeteval" / "datasets" / "emotion"
    emo.mkdir(parents=True)
    (emo / "mapping.txt").write_text("0\tanger\n1\tjoy\n2\toptimism\n3\tsadness\n", encoding="utf-8")
    for split in ("train", "val", "test"):
        post = split.encode()  # other posts in each split: a repeated test post would leave train
        (emo / f"{split}_text.txt").write_bytes(b"so angry %b\nwhat a day %b\nbad \xff byte\n   \nhappy again %b\n"
                                                % (post, post, post))
        (emo / f"{split}_labels.txt").write_text("0\n1\n2\n3\n9\n", encoding="utf-8")
    out = tmp_path / "out"
    result = build(BuildConfig(data_root=root, out=out, tasks=["emotion"]))
    assert result.counts[("emotion", "train")] == 2
    reasons = {(p.file, p.line, p.reason) for p in result.report.problems}
    assert ("tweeteval/datasets/emotion/train_text.txt", 3, "invalid UTF-8") in reasons
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "train_text.txt:3" in report and "invalid UTF-8" in report


@pytest.fixture(scope="module")
def full_build(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("somedata-full") / "build"
    return out, build(BuildConfig(data_root=data_root, out=out))


def test_full_build_has_no_test_post_in_train_or_val(full_build, data_root):
    """Every task: no train / val record shares its post (normalised text, or image bytes) with a
    test record of the same task; checked on the written files, from the examples' own text."""
    from somelvlm.data.leakage import ImageDigests, normalize_post
    from somelvlm.data.report import DataReport
    from somelvlm.data.sources import load_source

    out, result = full_build
    records = [json.loads(line) for s in ("train", "val", "test")
               for line in (out / f"{s}.jsonl").read_text(encoding="utf-8").split("\n") if line.strip()]
    wanted = {r["id"] for r in records}
    texts = {}
    for source in sorted({r["source"] for r in records}):
        for ex in load_source(source, data_root, DataReport()):
            if ex.id in wanted:
                texts[ex.id] = normalize_post(ex.text)
    digest = ImageDigests(data_root)
    test_keys: dict[str, set] = {}
    for r in records:
        if r["split"] == "test":
            keys = test_keys.setdefault(r["task"], set())
            keys.add(("text", texts[r["id"]]))
            keys.add(("image", digest(r.get("image"))))
    leaks = [(r["task"], r["split"], r["id"]) for r in records if r["split"] != "test"
             and ({("text", texts[r["id"]]) if texts[r["id"]] else None,
                   ("image", digest(r["image"])) if r.get("image") else None} & test_keys.get(r["task"], set()))]
    assert leaks == [], f"{len(leaks)} train/val records repeat a test post, e.g. {leaks[:5]}"
    # the published HatefulMemes test items are FHM train memes: those were removed, and counted
    removed = result.report.removed
    assert removed[("hateful_meme", "train", "hmc", "text in a test split")] >= 500
    assert sum(n for (task, *_), n in removed.items() if task == "hateful_meme") >= 500
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "Test posts kept out of training" in report and "| hateful_meme | train | hmc |" in report
    assert json.loads((out / "report.json").read_text(encoding="utf-8"))["removed_test_overlap"]


def test_overlap_removal_on_a_small_folder(tmp_path):
    """Written here: a val tweet repeating a test tweet (other case, URL and @mention) is dropped."""
    root = tmp_path / "data"
    emo = root / "tweeteval" / "datasets" / "emotion"
    emo.mkdir(parents=True)
    (emo / "mapping.txt").write_text("0\tanger\n1\tjoy\n2\toptimism\n3\tsadness\n", encoding="utf-8")
    texts = {"train": "so angry\nfresh start\n", "val": "@bob What a DAY!! https://t.co/x\nhappy again\n",
             "test": "what a day\nsad news\n"}
    for split, body in texts.items():
        (emo / f"{split}_text.txt").write_text(body, encoding="utf-8")
        (emo / f"{split}_labels.txt").write_text("0\n1\n", encoding="utf-8")
    result = build(BuildConfig(data_root=root, out=tmp_path / "out", tasks=["emotion"]))
    assert result.counts[("emotion", "val")] == 1 and result.counts[("emotion", "train")] == 2
    assert dict(result.report.removed) == {("emotion", "val", "tweeteval", "text in a test split"): 1}
