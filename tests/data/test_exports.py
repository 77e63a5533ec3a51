"""SoMeData exports, read the way their consumers read them: LLaVA's training code does
``json.load(open(data_path))`` and joins ``image`` to ``--image_folder``; LLaMA-Factory looks the
dataset up in ``dataset_info.json``, loads its file with ``datasets``, maps the columns and tags it
names, joins ``images`` to ``media_dir`` and needs one ``<image>`` per image."""

from __future__ import annotations

import json
import os

import pytest

from somelvlm.data.exports import ExportError, export_somedata
from somelvlm.data.somedata import BuildConfig, build

TASKS = ["emotion", "hateful_meme", "detoxify", "meme_sentiment"]


@pytest.fixture(scope="module")
def somedata(data_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("somedata") / "build"
    build(BuildConfig(data_root=data_root, out=out, tasks=TASKS, max_per_task=6))
    return out


def jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_llava_json_is_an_array_per_split_that_llava_reads(somedata, data_root, tmp_path):
    datasets = pytest.importorskip("datasets")
    result = export_somedata(somedata, tmp_path / "llava", "llava-json")
    assert sorted(p.name for p in (tmp_path / "llava").iterdir()) == ["test.json", "train.json", "val.json"]
    with_image = 0
    for split in ("train", "val", "test"):
        path = tmp_path / "llava" / f"{split}.json"
        list_data_dict = json.load(open(path))  # LLaVA's LazySupervisedDataset, word for word
        source = jsonl(somedata / f"{split}.jsonl")
        assert isinstance(list_data_dict, list) and len(list_data_dict) == len(source) == result.counts[split]
        for item, record in zip(list_data_dict, source):
            assert item["id"] == record["id"] and item["conversations"] == record["conversations"]
            assert [t["from"] for t in item["conversations"]] == ["human", "gpt"]
            if "image" in item:  # LLaVA: os.path.join(image_folder, image), one <image> in the first turn
                with_image += 1
                assert os.path.isfile(os.path.join(str(data_root), item["image"]))
                assert item["conversations"][0]["value"].startswith("<image>\n")
                assert sum(t["value"].count("<image>") for t in item["conversations"]) == 1
            else:
                assert "<image>" not in item["conversations"][0]["value"]
        loaded = datasets.load_dataset("json", data_files={split: str(path)}, split=split)
        assert loaded.num_rows == len(source) and {"id", "conversations"} <= set(loaded.column_names)
        assert loaded[0]["conversations"] == source[0]["conversations"]
    assert with_image > 0, "the chosen tasks include memes"


def test_llama_factory_files_load_through_their_dataset_info_entry(somedata, data_root, tmp_path):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "lf"
    result = export_somedata(somedata, out, "llama-factory", media_dir=data_root)
    info = json.loads((out / "dataset_info.json").read_text())
    assert set(info) == {"somedata_train", "somedata_val", "somedata_test"}
    readme = (out / "README.md").read_text()
    assert "media_dir: " + str(data_root.resolve()) in readme and "dataset: somedata_train" in readme
    images_seen = 0
    for name, entry in info.items():
        assert entry["formatting"] == "sharegpt" and entry["columns"] == {"messages": "messages", "images": "images"}
        assert entry["media_dir"] == str(data_root.resolve())
        tags = entry["tags"]
        data = datasets.load_dataset("json", data_files=str(out / entry["file_name"]), split="train")
        split = name.removeprefix("somedata_")
        assert data.num_rows == result.counts[split] == len(jsonl(somedata / f"{split}.jsonl"))
        for row in data:
            messages, images = row[entry["columns"]["messages"]], row[entry["columns"]["images"]] or []
            roles = [m[tags["role_tag"]] for m in messages]
            assert roles == [tags["user_tag"], tags["assistant_tag"]]
            placeholders = sum(m[tags["content_tag"]].count("<image>") for m in messages)
            assert placeholders == len(images) <= 1
            for image in images:
                images_seen += 1
                assert os.path.isfile(os.path.join(entry["media_dir"], image))
    assert images_seen > 0


def test_bad_records_name_file_and_line_and_keep_the_previous_export(somedata, tmp_path):
    out = tmp_path / "llava"
    export_somedata(somedata, out, "llava-json")
    before = (out / "train.json").read_bytes()
    broken = tmp_path / "broken"
    broken.mkdir()
    lines = (somedata / "train.jsonl").read_text().splitlines()
    record = json.loads(lines[0])
    record["image"] = "memes/x.png"  # an image but no <image> placeholder
    (broken / "train.jsonl").write_text("\n".join([lines[1], json.dumps(record)]) + "\n")
    with pytest.raises(ExportError, match=r"train\.jsonl:2 .*0 <image> placeholders for one image"):
        export_somedata(broken, out, "llava-json")
    (broken / "train.jsonl").write_text(lines[1] + "\n{not json\n")
    with pytest.raises(ExportError, match=r"train\.jsonl:2: not JSON"):
        export_somedata(broken, out, "llama-factory")
    assert (out / "train.json").read_bytes() == before
    assert not list(tmp_path.glob(".*tmp-export"))


def test_unknown_format_missing_build_and_wrong_media_dir_are_clear(somedata, tmp_path):
    from somelvlm.registry import UnknownNameError

    with pytest.raises(UnknownNameError, match="llava-json"):
        export_somedata(somedata, tmp_path / "x", "llava")
    with pytest.raises(FileNotFoundError, match="somelvlm data build"):
        export_somedata(tmp_path, tmp_path / "x", "llava-json")
    with pytest.raises(FileNotFoundError, match="not under media_dir"):
        export_somedata(somedata, tmp_path / "x", "llama-factory", media_dir=tmp_path)


def test_export_commands_of_the_cli(somedata, tmp_path, data_root):
    """``somelvlm data export`` and ``somelvlm tasks export`` run the same writers."""
    from somelvlm.cli import main

    main(["data", "export", str(somedata), "--out", str(tmp_path / "llava"), "--format", "llava-json"])
    arrays = sorted((tmp_path / "llava").glob("*.json"))
    assert arrays and all(isinstance(json.load(p.open(encoding="utf-8")), list) for p in arrays)
    main(["data", "export", str(somedata), "--out", str(tmp_path / "lf"), "--format", "llama-factory",
          "--media-dir", str(data_root)])
    assert (tmp_path / "lf" / "dataset_info.json").is_file()
    main(["tasks", "export", str(tmp_path / "lm"), "--somedata", str(somedata)])
    assert list((tmp_path / "lm").glob("*.yaml"))
