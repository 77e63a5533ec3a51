"""Atomic writes: a file or folder is either the old one or the complete new one, never half.

Every write goes to a temporary name in the same folder, ``.NAME.PID.tmp`` (``.NAME.PID-THREAD.tmp``
off the main thread), is flushed to disk (``fsync``), renamed over ``NAME`` with ``os.replace``,
and then the folder's entry is made durable too. A failure removes the temporary; a temporary left
by a killed process never blocks the next run (another process writes under another name, and the
same name is simply overwritten).

>>> atomic_write_text(out / "stats.json", json.dumps(stats))                   # doctest: +SKIP
>>> with atomic_path(out / "model.safetensors") as tmp:                          # doctest: +SKIP
...     save_file(tensors, str(tmp))
>>> with atomic_dir(out / "model") as tmp:                                       # doctest: +SKIP
...     (tmp / "config.json").write_text("{}")
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temp_path(path: str | Path, kind: str = "tmp") -> Path:
    """The temporary sibling of ``path`` this process (and thread) writes: ``.NAME.PID.tmp``."""
    path = Path(path)
    owner = str(os.getpid())
    if threading.current_thread() is not threading.main_thread():
        owner += f"-{threading.get_ident()}"
    return path.with_name(f".{path.name}.{owner}.{kind}")


def fsync_file(path: str | Path) -> None:
    """Flush a written file's data to disk."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(folder: str | Path) -> None:
    """Make a folder's entries (a rename, a new file) durable; a no-op on Windows."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def atomic_path(path: str | Path, durable: bool = True) -> Iterator[Path]:
    """A temporary path next to ``path`` to write a file at; on success it is fsync-ed and renamed
    over ``path`` (then the folder fsync-ed), on failure removed. The folder is created if needed.

    ``durable=False`` skips both fsyncs (about 8 ms a file here): still all-or-nothing for readers,
    for files that can be recomputed (the feature cache)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    _remove(tmp)  # left by a killed run of a process that had this id
    try:
        yield tmp
        if durable:
            fsync_file(tmp)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    if durable:
        fsync_dir(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes, durable: bool = True) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_path(path, durable) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8", durable: bool = True) -> Path:
    """Write ``text`` to ``path`` atomically (``\\n`` line ends kept as written); returns ``path``."""
    return atomic_write_bytes(path, text.encode(encoding), durable)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """A new, empty temporary folder next to ``path`` to fill; on success its files are fsync-ed and
    it takes ``path``'s place (an old ``path`` is moved aside, then deleted), on failure it is
    removed. A reader sees the old folder or the complete new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    _remove(tmp)
    tmp.mkdir()
    old = temp_path(path, "old")
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file() and not f.is_symlink():
                fsync_file(f)
        fsync_dir(tmp)
        _remove(old)
        if path.exists():
            os.replace(path, old)
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        if old.exists() and not path.exists():
            os.replace(old, path)  # put the old folder back
        raise
    fsync_dir(path.parent)
    _remove(old)
