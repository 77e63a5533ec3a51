"""Read posts from a user's file, row by row, without ever stopping on a bad row.

JSONL (``.jsonl`` / ``.ndjson``), CSV / TSV and Parquet (streamed in record batches). A row that
cannot be read (malformed JSON, wrong field count, invalid UTF-8, a repeated id) becomes a
``RowError`` carrying its line; the rest go on. Missing text AND image columns fail once, up front.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv",
           ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class Row:
    """One input row before validation: raw values as read."""

    id: str
    line: int
    """1-based line (JSONL, CSV: the row's first line) or row number (Parquet)."""
    text: object | None
    image: object | None


@dataclass(frozen=True)
class RowError:
    """A row that could not be read; becomes an error record in the output."""

    id: str
    line: int
    reason: str
    message: str


def detect_format(path: Path, fmt: str | None = None) -> str:
    if fmt:
        if fmt not in set(FORMATS.values()):
            raise ValueError(f"unknown input format {fmt!r}: use one of {sorted(set(FORMATS.values()))}")
        return fmt
    try:
        return FORMATS[Path(path).suffix.lower()]
    except KeyError:
        raise ValueError(f"cannot tell the format of {path}: name it .jsonl, .csv, .tsv or .parquet "
                         "(or pass the format)") from None


def read_rows(path: Path, *, text_col: str = "text", image_col: str = "image", id_col: str = "id",
              fmt: str | None = None) -> Iterator[Row | RowError]:
    """Every row of ``path`` as a ``Row`` or a ``RowError``, in file order; ids are unique."""
    kind = detect_format(path, fmt)
    reader = {"jsonl": _jsonl, "csv": _csv, "tsv": _csv, "parquet": _parquet}[kind]
    seen: set[str] = set()
    for item in reader(Path(path), text_col, image_col, id_col, kind):
        if isinstance(item, Row):
            if item.id in seen:
                item = RowError(item.id, item.line, "duplicate id", f"id {item.id!r} appeared earlier in the input")
            else:
                seen.add(item.id)
        yield item


def _check_columns(columns: list[str], text_col: str, image_col: str, path: Path) -> None:
    if text_col not in columns and image_col not in columns:
        raise ValueError(f"{path} has neither a {text_col!r} nor an {image_col!r} column (it has "
                         f"{', '.join(map(repr, columns[:20])) or 'none'}): pass --text-col / --image-col")


def _row_id(value: object, line: int) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        return f"row-{line}"
    return str(value).strip()


def _jsonl(path, text_col, image_col, id_col, kind) -> Iterator[Row | RowError]:
    checked = False
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError as err:
                yield RowError(f"row-{n}", n, "invalid UTF-8", f"byte {err.start} of line {n} is not UTF-8")
                continue
            except json.JSONDecodeError as err:
                yield RowError(f"row-{n}", n, "malformed JSON", str(err))
                continue
            if not isinstance(obj, dict):
                yield RowError(f"row-{n}", n, "malformed row", f"expected a JSON object, got {type(obj).__name__}")
                continue
            if not checked:
                _check_columns(list(obj), text_col, image_col, path)
                checked = True
            yield Row(_row_id(obj.get(id_col), n), n, obj.get(text_col), obj.get(image_col))


def _csv(path, text_col, image_col, id_col, kind) -> Iterator[Row | RowError]:
    text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    if text.startswith("\ufeff"):
        text = text[1:]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if kind == "tsv" else ",")
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ValueError(f"{path} is empty: expected a header row") from None
    _check_columns(header, text_col, image_col, path)
    start = reader.line_num + 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            yield RowError(f"row-{reader.line_num}", reader.line_num, "malformed row", str(err))
            start = reader.line_num + 1
            continue
        line, start = start, reader.line_num + 1
        if not fields or all(not f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            yield RowError(f"row-{line}", line, "malformed row", f"{len(fields)} fields, the header has {len(header)}")
            continue
        row = dict(zip(header, fields))
        bad = [k for k, v in row.items() if any(0xDC80 <= ord(c) <= 0xDCFF for c in v)]
        rid = _row_id(row.get(id_col), line)
        if bad:
            yield RowError(rid if id_col not in bad else f"row-{line}", line, "invalid UTF-8",
                           f"column {bad[0]!r} holds bytes that are not UTF-8")
            continue
        yield Row(rid, line, row.get(text_col) or None, row.get(image_col) or None)


def _parquet(path, text_col, image_col, id_col, kind) -> Iterator[Row | RowError]:
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    names = pf.schema_arrow.names
    _check_columns(names, text_col, image_col, path)
    columns = [c for c in (id_col, text_col, image_col) if c in names]
    n = 0
    for batch in pf.iter_batches(batch_size=1024, columns=columns):
        data = batch.to_pydict()
        for i in range(batch.num_rows):
            n += 1
            yield Row(_row_id(data[id_col][i] if id_col in data else None, n), n,
                      data[text_col][i] if text_col in data else None,
                      data[image_col][i] if image_col in data else None)
