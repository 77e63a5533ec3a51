"""Run a model over a file of posts: streamed in batches, resumable, exactly once per id.

Output is JSONL or Parquet (by OUT's extension). Each input row gives one record:
``{"id": ..., **predict(post)}`` or an error record ``{"id", "line", "error": {"reason",
"message"}}``. Error records are written like any other, so a rerun does not retry them: fix the
row and give it a new id (or delete its line) to try again.

Exactly once: JSONL output is appended batch by batch, flushed and fsynced; a rerun first cuts a
half-written last line (a kill mid-write), then skips every id already there. Parquet output is
journalled the same way to ``OUT.partial.jsonl`` and written atomically (temp file + rename) when
the input is exhausted; a rerun after a kill resumes from the journal.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from somelvlm.batch.readers import Row, RowError, read_rows
from somelvlm.posts import DEFAULT_LIMITS, Limits, Post, PostError, clean_text, load_image

Predict = Callable[[list[Post]], list[dict]]


@dataclass
class RunConfig:
    """How a batch run reads, groups and limits posts."""

    batch_size: int = 64
    """Posts per model call."""
    limits: Limits = field(default_factory=lambda: DEFAULT_LIMITS)
    image_root: Path | None = None
    """Relative image paths resolve against this folder (default: the input file's folder)."""


@dataclass
class RunSummary:
    written: int
    skipped_existing: int
    errors: int
    seconds: float
    out: Path


def run(input: Path, out: Path, predict: Predict, config: RunConfig | None = None, *, text_col: str = "text",
        image_col: str = "image", id_col: str = "id", fmt: str | None = None, progress: bool = True) -> RunSummary:
    """Apply ``predict`` to every post of ``input`` not yet in ``out``; see the module docstring."""
    config = config or RunConfig()
    input, out = Path(input), Path(out)
    image_root = Path(config.image_root) if config.image_root else input.resolve().parent
    parquet = out.suffix.lower() in (".parquet", ".pq")
    journal = out.with_name(out.name + ".partial.jsonl") if parquet else out
    out.parent.mkdir(parents=True, exist_ok=True)
    done = _existing_ids(journal) | (_parquet_ids(out) if parquet else set())
    start = time.perf_counter()
    summary = RunSummary(0, 0, 0, 0.0, out)
    bar = _progress(progress)
    with journal.open("a", encoding="utf-8") as sink:
        for batch in _batches(read_rows(input, text_col=text_col, image_col=image_col, id_col=id_col, fmt=fmt),
                              config.batch_size, done, summary):
            records = _process(batch, predict, config.limits, image_root)
            for record in records:
                sink.write(json.dumps(record, ensure_ascii=False) + "\n")
                summary.errors += "error" in record
            sink.flush()
            os.fsync(sink.fileno())
            summary.written += len(records)
            if bar is not None:
                bar.update(len(records))
    if bar is not None:
        bar.close()
    if parquet:
        _finish_parquet(journal, out)
    summary.seconds = time.perf_counter() - start
    return summary


def _progress(enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(unit=" posts", file=sys.stderr, dynamic_ncols=True, mininterval=0.5)


def _batches(rows: Iterator[Row | RowError], size: int, done: set[str], summary: RunSummary) -> Iterator[list]:
    batch: list = []
    for row in rows:
        if row.id in done:
            summary.skipped_existing += 1
            continue
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _to_post(row: Row, limits: Limits, image_root: Path) -> Post:
    text = clean_text(row.text if isinstance(row.text, (str, bytes)) or row.text is None else str(row.text), limits)
    image = None
    if row.image is not None and row.image != "":
        if isinstance(row.image, (bytes, bytearray)):
            image = load_image(bytes(row.image), limits)
        elif isinstance(row.image, str):
            path = Path(row.image)
            image = load_image(path if path.is_absolute() else image_root / path, limits)
        else:
            raise PostError("wrong type", f"image must be a path or bytes, got {type(row.image).__name__}")
    return Post(id=row.id, text=text, image=image)


def _error(row_id: str, line: int, reason: str, message: str) -> dict:
    return {"id": row_id, "line": line, "error": {"reason": reason, "message": message}}


def _process(batch: list, predict: Predict, limits: Limits, image_root: Path) -> list[dict]:
    """Records for one batch, in input order; bad rows and failing posts become error records."""
    records: list[dict | None] = [None] * len(batch)
    posts: list[tuple[int, Post]] = []
    for i, row in enumerate(batch):
        if isinstance(row, RowError):
            records[i] = _error(row.id, row.line, row.reason, row.message)
            continue
        try:
            posts.append((i, _to_post(row, limits, image_root)))
        except PostError as err:
            records[i] = _error(row.id, row.line, err.reason, str(err))
    if posts:
        try:
            outputs = predict([p for _, p in posts])
            pairs = list(zip(posts, outputs, strict=True))
        except Exception:  # one bad post must not sink the batch: retry them one by one
            pairs = []
            for item in posts:
                try:
                    pairs.append((item, predict([item[1]])[0]))
                except PostError as err:
                    pairs.append((item, err))
                except Exception as err:  # noqa: BLE001 - recorded for the user, the run goes on
                    pairs.append((item, PostError("model error", f"{type(err).__name__}: {err}")))
        for (i, post), output in pairs:
            if isinstance(output, PostError):
                records[i] = _error(post.id, batch[i].line, output.reason, str(output))
            else:
                records[i] = {"id": post.id, **output}
    return [r for r in records if r is not None]


def _existing_ids(path: Path) -> set[str]:
    """Ids already in a JSONL output; a half-written last line (a kill mid-write) is cut first."""
    if not path.is_file():
        return set()
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with path.open("r+b") as f:
            f.truncate(end)
    ids = set()
    for line in data[:end].splitlines():
        if line.strip():
            ids.add(json.loads(line)["id"])
    return ids


def _parquet_ids(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    import pyarrow.parquet as pq

    return set(pq.read_table(path, columns=["id"]).column("id").to_pylist())


def flatten(record: dict, prefix: str = "") -> dict:
    """Nested predictions to dotted columns (``emotion.label``); ``probs`` maps become JSON text."""
    flat: dict = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and key != "probs":
            flat.update(flatten(value, name + "."))
        elif isinstance(value, (dict, list)):
            flat[name] = json.dumps(value, ensure_ascii=False)
        else:
            flat[name] = value
    return flat


def _finish_parquet(journal: Path, out: Path) -> None:
    """Existing OUT rows + the journal -> OUT, atomically; then the journal goes."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = pq.read_table(out).to_pylist() if out.is_file() else []
    if journal.is_file():
        with journal.open(encoding="utf-8") as f:
            rows += [flatten(json.loads(line)) for line in f if line.strip()]
    columns = sorted({k for r in rows for k in r} - {"id"})
    table = pa.Table.from_pylist([{c: r.get(c) for c in ["id", *columns]} for r in rows]) if rows else \
        pa.table({"id": pa.array([], pa.string())})
    tmp = out.with_name(out.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, out)
    journal.unlink(missing_ok=True)
