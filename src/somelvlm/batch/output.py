"""Where a batch run's records go, so that a kill at any moment loses nothing and repeats nothing.

A *journal* is an append-only JSONL file, one record per line. Each batch is written with one
``write`` and then flushed and ``fsync``-ed, so after a kill every complete line is a record and
at most the last line is torn; opening the journal again cuts that torn tail and returns the ids
already there. One run at a time may hold a journal (an ``flock``, released by the OS on a kill).

JSONL output *is* the journal. Parquet output is written from ``OUT.partial.jsonl`` when the run
ends: the existing ``OUT`` rows (minus ids the journal holds again) and then the journal's, into a
temp file in the same folder, renamed over ``OUT`` with ``os.replace``; only then is the journal
removed. Nested dicts become dotted columns (``emotion.probs.joy``); lists and columns of mixed
kinds are stored as JSON text.

Temp files are named ``.NAME.PID.tmp`` beside the file they replace. A kill between writing one
and renaming it leaves it behind; the next run on the same OUT removes them
(``remove_stale_temps``), once it holds the journal's lock, so no other run can be writing them.

The run file ``OUT.run.json`` records what produced OUT's records (the pipeline's fingerprint:
its tasks, models and their weights' digests). A rerun on the same OUT whose fingerprint differs is
refused before anything is written, so a resume never mixes two models' answers in one output.

Record ids: a row's own id, or ``line:N`` for a row without one (``readers``), so error records of
unreadable rows never take a user's id.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from somelvlm.atomic import atomic_path, fsync_dir

PARQUET_CHUNK = 10_000
"""Records per Parquet write (bounds memory when finishing a large run)."""


def is_error(record: dict) -> bool:
    """Whether ``record`` is an error record (``{"id", "line", "error": {"reason", "message"}}``)."""
    return isinstance(record.get("error"), dict)


def to_line(record: dict) -> bytes:
    """One JSONL line. NumPy scalars / arrays are converted; other non-JSON values raise TypeError."""
    text = json.dumps(record, ensure_ascii=False, default=_json_default)
    return (text + "\n").encode("utf-8", errors="backslashreplace")  # lone surrogates -> \\udcxx escapes


def _json_default(value: object) -> object:
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalars and arrays
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


# --- the journal -------------------------------------------------------------------------------

def open_journal(path: Path, *, retry_errors: bool = False) -> tuple[BinaryIO, set[str]]:
    """``(handle to append to, ids already written)``; a torn last line is cut off first.

    With ``retry_errors`` the error records are dropped (the file is rewritten atomically), so
    their ids are not in the returned set and run again.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    f = path.open("ab")
    try:
        _lock(f, path)
        if new:
            fsync_dir(path.parent)
        remove_stale_temps(path)
        ids, error_ids, end = _scan(path)
        if end < os.fstat(f.fileno()).st_size:
            os.ftruncate(f.fileno(), end)
            os.fsync(f.fileno())
        if retry_errors and error_ids:
            f = _drop_errors(path, f)
            ids -= error_ids
    except BaseException:
        f.close()
        raise
    return f, ids


def append(f: BinaryIO, lines: list[bytes]) -> None:
    """Write encoded records in one go, then flush and fsync: after this they survive a kill."""
    f.write(b"".join(lines))
    f.flush()
    os.fsync(f.fileno())


def close_journal(f: BinaryIO, path: Path, *, remove: bool = False) -> None:
    """Close (and optionally delete, still holding the lock where the OS allows) a journal."""
    if remove and os.name != "nt":
        path.unlink(missing_ok=True)
    f.close()
    if remove and os.name == "nt":
        path.unlink(missing_ok=True)


def read_journal(path: Path) -> Iterator[dict]:
    """The records of a journal (complete lines only; call after ``open_journal`` has cut it)."""
    if not path.is_file():
        return
    with path.open("rb") as f:
        for raw in f:
            if raw.strip():
                yield json.loads(raw)


def _scan(path: Path) -> tuple[set[str], set[str], int]:
    """``(ids, ids of error records, byte offset after the last complete line)``, streamed."""
    ids: set[str] = set()
    error_ids: set[str] = set()
    end = 0
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.endswith(b"\n"):
                break  # torn by a kill mid-write: cut
            end += len(raw)
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
                rid = record["id"]
            except (ValueError, KeyError, TypeError) as err:
                raise ValueError(f"{path} line {n} is not a record of a somelvlm run ({type(err).__name__}: "
                                 f"{err}); move the file away or choose another --out") from None
            ids.add(rid)
            if is_error(record):
                error_ids.add(rid)
    return ids, error_ids, end


def _drop_errors(path: Path, f: BinaryIO) -> BinaryIO:
    """Rewrite ``path`` without its error records (temp file + rename); returns the new handle,
    locked before the rename, so the journal is never unlocked."""
    new = None
    try:
        with atomic_path(path) as tmp:
            new = tmp.open("wb")
            _lock(new, tmp)
            with path.open("rb") as src:
                for raw in src:
                    if raw.strip() and not is_error(json.loads(raw)):
                        new.write(raw)
            new.flush()
    except BaseException:
        if new is not None:
            new.close()
        raise
    f.close()
    return new


def remove_stale_temps(path: Path) -> list[Path]:
    """Remove the ``.NAME.PID.tmp`` files that killed runs left beside ``path``; returns them.

    Call only while holding ``path``'s journal lock: then no other run can be writing one.
    """
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.tmp")
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except FileNotFoundError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match and int(match.group(1)) != os.getpid() and entry.is_file(follow_symlinks=False):
            Path(entry.path).unlink(missing_ok=True)
            removed.append(Path(entry.path))
    return removed


def _lock(f: BinaryIO, path: Path) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory lock; one run per OUT is then up to the user
        return
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise RuntimeError(f"{path} is being written by another run right now: wait for it to finish, "
                           "or choose another --out") from None


# --- Parquet -----------------------------------------------------------------------------------

def parquet_ids(path: Path, *, retry_errors: bool = False) -> set[str]:
    """Ids in an existing Parquet output (read column by column, in batches); errors left out
    with ``retry_errors``."""
    if not path.is_file():
        return set()
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as pf:
        names = pf.schema_arrow.names
        if "id" not in names:
            raise ValueError(f"{path} has no 'id' column, so it is not a somelvlm output: move it away "
                             "or choose another --out")
        skip_errors = retry_errors and "error.reason" in names
        ids: set[str] = set()
        columns = ["id", "error.reason"] if skip_errors else ["id"]
        for batch in pf.iter_batches(batch_size=65_536, columns=columns):
            data = batch.to_pydict()
            if skip_errors:
                ids.update(i for i, e in zip(data["id"], data["error.reason"], strict=True) if e is None)
            else:
                ids.update(data["id"])
    return ids


def flatten(record: dict, prefix: str = "") -> dict:
    """Nested dicts to dotted keys: ``{"emotion": {"label": "joy"}}`` -> ``{"emotion.label": "joy"}``."""
    flat: dict = {}
    for key, value in record.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if -2**63 <= value < 2**63 else "json"
    if isinstance(value, float):
        return "float"
    return "str" if isinstance(value, str) else "json"


def _arrow_type(kinds: set[str]):
    import pyarrow as pa

    kinds = kinds - {"null"}
    if not kinds:
        return pa.null()
    if kinds <= {"int", "float"}:
        return pa.int64() if kinds == {"int"} else pa.float64()
    return {frozenset({"bool"}): pa.bool_()}.get(frozenset(kinds), pa.string())


def _merge_type(old, new):
    import pyarrow as pa

    if old == new or pa.types.is_null(new):
        return old
    if pa.types.is_null(old):
        return new
    if {str(old), str(new)} == {"int64", "double"}:
        return pa.float64()
    return pa.string()


def _conform(table, schema):
    """``table`` with exactly ``schema``'s columns: missing ones null, others cast."""
    import pyarrow as pa

    columns = [table[f.name].cast(f.type) if f.name in table.column_names else pa.nulls(len(table), f.type)
               for f in schema]
    return pa.Table.from_arrays(columns, schema=schema)


def finish_parquet(journal: Path, out: Path) -> None:
    """Write ``out`` from its existing rows plus the journal's records, atomically; remove nothing.

    Rows of the old ``out`` whose id is in the journal are dropped (the journal is newer), so
    finishing twice, or after a kill between the rename and the journal's removal, gives the
    same file.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    kinds: dict[str, set[str]] = {"id": {"str"}}
    journal_ids: list[str] = []
    for record in read_journal(journal):
        journal_ids.append(record["id"])
        for key, value in flatten(record).items():
            kinds.setdefault(key, set()).add(_kind(value))
    new_types = {k: _arrow_type(v) for k, v in kinds.items()}
    old = pq.ParquetFile(out) if out.is_file() else None
    fields = {}
    if old is not None:
        fields = {f.name: _merge_type(f.type, new_types.get(f.name, pa.null())) for f in old.schema_arrow}
    for name, kind in new_types.items():
        fields.setdefault(name, kind)
    schema = pa.schema(list(fields.items()))
    as_json = {name for name, typ in fields.items()  # string columns holding other kinds: JSON text
               if pa.types.is_string(typ) and kinds.get(name, {"str"}) - {"str", "null"}}

    with atomic_path(out) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        if old is not None:
            redone = pa.array(journal_ids, pa.string())
            for batch in old.iter_batches(batch_size=PARQUET_CHUNK):
                table = pa.Table.from_batches([batch])
                table = table.filter(pc.invert(pc.is_in(table["id"].cast(pa.string()), value_set=redone)))
                writer.write_table(_conform(table, schema))
            old.close()
        chunk: list[dict] = []
        for record in read_journal(journal):
            chunk.append(_row(flatten(record), as_json))
            if len(chunk) >= PARQUET_CHUNK:
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                chunk = []
        if chunk or old is None:
            writer.write_table(pa.Table.from_pylist(chunk, schema=schema))


def _row(flat: dict, as_json: set[str]) -> dict:
    return {k: (json.dumps(v, ensure_ascii=False, default=_json_default)
                if k in as_json and v is not None and not isinstance(v, str) else v)
            for k, v in flat.items()}


def run_file(out: Path) -> Path:
    """``OUT.run.json``, beside OUT: the fingerprint of the run that wrote OUT's records."""
    return out.with_name(out.name + ".run.json")


def check_run(out: Path, fingerprint: dict, resuming: bool) -> None:
    """Refuse to add to ``out`` records of a run unlike the one that wrote it (``ValueError`` naming
    what differs); else record ``fingerprint`` in ``run_file(out)``. ``resuming``: OUT already holds
    records (an OUT written before run files existed gets one now, with a warning)."""
    import logging

    from somelvlm.atomic import atomic_write_text

    fingerprint = json.loads(json.dumps(fingerprint, default=str))  # as it reads back from disk
    path = run_file(out)
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            old = {"unreadable": path.name}
        if old == fingerprint:
            return
        old = old if isinstance(old, dict) else {"unreadable": path.name}
        changed = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
        raise ValueError(f"--out {out} holds records of another run ({path.name} differs in: {', '.join(changed)}); "
                         f"adding to it would mix two runs' answers: give a new --out, or delete {out.name} and "
                         f"{path.name} to start over")
    if resuming:
        logging.getLogger(__name__).warning("%s has records but no %s (written before run files): its model is not "
                                            "known; recording this run's", out, path.name)
    atomic_write_text(path, json.dumps(fingerprint, indent=1, sort_keys=True) + "\n")
