"""The one atomic-write helper: whole file or old file, recognisable temporaries, no leftovers."""

from __future__ import annotations

import os
import threading

import pytest

from somelvlm.atomic import atomic_dir, atomic_path, atomic_write_bytes, atomic_write_text, temp_path


def test_text_and_bytes_land_whole_with_no_temporary_left(tmp_path):
    out = tmp_path / "deep" / "stats.json"
    assert atomic_write_text(out, "{\"a\": 1}\n") == out
    assert out.read_text() == "{\"a\": 1}\n"
    atomic_write_bytes(out, b"\x00\x01")
    assert out.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in out.parent.iterdir()) == ["stats.json"]


def test_temporary_is_named_after_the_file_and_the_process(tmp_path):
    seen = []
    with atomic_path(tmp_path / "model.safetensors") as tmp:
        seen.append(tmp)
        tmp.write_bytes(b"w")
    assert seen[0].parent == tmp_path
    assert seen[0].name == f".model.safetensors.{os.getpid()}.tmp"

    def other_thread():
        seen.append(temp_path(tmp_path / "x"))

    t = threading.Thread(target=other_thread)
    t.start()
    t.join()
    assert seen[1].name.startswith(f".x.{os.getpid()}-") and seen[1].name.endswith(".tmp")


def test_failure_keeps_the_old_file_and_removes_the_temporary(tmp_path):
    out = tmp_path / "index.faiss"
    out.write_bytes(b"old")
    with pytest.raises(OSError, match="disk full"):
        with atomic_path(out) as tmp:
            tmp.write_bytes(b"half")
            raise OSError("disk full")
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["index.faiss"]


def test_a_killed_runs_leftovers_do_not_break_the_next_write(tmp_path):
    out = tmp_path / "config.json"
    (tmp_path / ".config.json.99999999.tmp").write_text("from a dead process")
    temp_path(out).mkdir()  # same pid, even as a folder: replaced
    (temp_path(out) / "junk").write_text("x")
    atomic_write_text(out, "new")
    assert out.read_text() == "new"
    assert not temp_path(out).exists()


def test_atomic_dir_swaps_whole_folders_and_keeps_the_old_one_on_failure(tmp_path):
    out = tmp_path / "model"
    with atomic_dir(out) as tmp:
        (tmp / "config.json").write_text("v1")
        (tmp / "adapter").mkdir()
        (tmp / "adapter" / "w.bin").write_bytes(b"1")
    assert (out / "config.json").read_text() == "v1" and (out / "adapter" / "w.bin").is_file()
    with atomic_dir(out) as tmp:
        (tmp / "config.json").write_text("v2")
    assert sorted(p.name for p in out.iterdir()) == ["config.json"] and (out / "config.json").read_text() == "v2"
    with pytest.raises(RuntimeError, match="killed"):
        with atomic_dir(out) as tmp:
            (tmp / "config.json").write_text("v3")
            raise RuntimeError("killed")
    assert (out / "config.json").read_text() == "v2"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]


def test_a_recomputable_file_may_skip_the_fsyncs(tmp_path, monkeypatch):
    import somelvlm.atomic as atomic

    calls = []
    monkeypatch.setattr(atomic, "fsync_file", lambda p: calls.append(p))
    monkeypatch.setattr(atomic, "fsync_dir", lambda p: calls.append(p))
    atomic_write_bytes(tmp_path / "cache.npy", b"x", durable=False)
    assert calls == [] and (tmp_path / "cache.npy").read_bytes() == b"x"
    atomic_write_bytes(tmp_path / "model.bin", b"y")
    assert calls == [temp_path(tmp_path / "model.bin"), tmp_path]
