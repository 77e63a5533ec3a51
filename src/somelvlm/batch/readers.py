"""Read posts from a user's file, row by row, without ever stopping on a bad row.

JSONL (``.jsonl`` / ``.ndjson``), CSV / TSV (streamed line by line) and Parquet (streamed in record
batches, only the id / text / image columns). A row that cannot be read (malformed JSON, not an
object, wrong field count, invalid UTF-8, a repeated id) becomes a ``RowError`` carrying its line;
the rest go on. A file with neither the text nor the image column fails once, when ``read_rows``
is called, before any row is handed out.

Ids: the id column's value as a string; where the column (or the value) is missing, ``row-N``
with N the row's line (JSONL, CSV: the file line it starts on, so the CSV header is line 1;
Parquet: the 1-based row number). Ids of the form ``row-N`` are therefore best left to this.
A repeated id makes the later row a ``duplicate id`` error named ``row-N`` (its line), so ids
stay unique in the output.
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet",
           ".pq": "parquet"}
PARQUET_BATCH_ROWS = 256
"""Rows per Parquet record batch: small, since image bytes may sit in the rows."""
JSONL_HEADER_LINES = 1000
"""How far into a JSONL file to look for the first object, whose keys stand in for a header."""
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class Row:
    """One input row before validation: raw values as read."""

    id: str
    line: int
    """1-based line (JSONL, CSV: the line the row starts on) or row number (Parquet)."""
    text: object | None
    image: object | None


@dataclass(frozen=True)
class RowError:
    """A row that could not be read; the runner writes it as an error record."""

    id: str
    line: int
    reason: str
    message: str


def detect_format(path: Path, fmt: str | None = None) -> str:
    """``jsonl``, ``csv``, ``tsv`` or ``parquet``: ``fmt`` when given, else from the extension."""
    kinds = sorted(set(FORMATS.values()))
    if fmt:
        if fmt.lower().lstrip(".") not in kinds:
            raise ValueError(f"unknown input format {fmt!r}: use one of {kinds}")
        return fmt.lower().lstrip(".")
    try:
        return FORMATS[Path(path).suffix.lower()]
    except KeyError:
        raise ValueError(f"cannot tell the format of {path} from its extension: name it .jsonl, .ndjson, "
                         f".csv, .tsv or .parquet, or give the format ({kinds})") from None


def read_rows(path: Path, *, text_col: str = "text", image_col: str = "image", id_col: str = "id",
              fmt: str | None = None) -> Iterator[Row | RowError]:
    """Every row of ``path`` as a ``Row`` or a ``RowError``, in file order, with unique ids.

    Raises ``ValueError`` here, not while iterating, when the file has neither ``text_col`` nor
    ``image_col`` (or the format is unknown).
    """
    path = Path(path)
    kind = detect_format(path, fmt)
    columns = {"jsonl": _jsonl_columns, "csv": _csv_columns, "tsv": _csv_columns,
               "parquet": _parquet_columns}[kind](path, kind)
    if columns is not None and text_col not in columns and image_col not in columns:
        raise ValueError(f"{path} has neither a {text_col!r} nor an {image_col!r} column; its columns are "
                         f"{', '.join(map(repr, columns[:30])) or 'none'}: "
                         "pass --text-col and/or --image-col")
    reader = {"jsonl": _jsonl, "csv": _csv, "tsv": _csv, "parquet": _parquet}[kind]
    return _unique(reader(path, kind, text_col, image_col, id_col))


def _unique(items: Iterator[Row | RowError]) -> Iterator[Row | RowError]:
    seen: dict[str, int] = {}
    for item in items:
        if item.id in seen:
            first = seen[item.id]
            item = RowError(f"row-{item.line}", item.line, "duplicate id",
                            f"id {item.id!r} was already used on line {first}; this row was not run")
        seen.setdefault(item.id, item.line)
        yield item


def _row_id(value: object, line: int) -> str | RowError:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return f"row-{line}"
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return RowError(f"row-{line}", line, "invalid UTF-8", "the id is not valid UTF-8")
    text = str(value).strip()
    if _has_surrogates(text):
        return RowError(f"row-{line}", line, "invalid UTF-8", "the id is not valid UTF-8")
    return text or f"row-{line}"


def _has_surrogates(text: str) -> bool:
    """Lone surrogates: bytes that were not UTF-8 (``surrogateescape``) or ``\\ud800``-style escapes."""
    return _SURROGATE.search(text) is not None


def _make_row(get, line: int, text_col: str, image_col: str, id_col: str) -> Row | RowError:
    """A ``Row`` from a column getter; undecodable bytes (lone surrogates) make it a ``RowError``."""
    rid = _row_id(get(id_col), line)
    if isinstance(rid, RowError):
        return rid
    text, image = get(text_col), get(image_col)
    for col, value in ((text_col, text), (image_col, image)):
        if isinstance(value, str) and _has_surrogates(value):
            return RowError(rid, line, "invalid UTF-8", f"column {col!r} holds bytes that are not UTF-8")
    return Row(rid, line, text, image)


# --- JSONL -------------------------------------------------------------------------------------

def _parse_json_line(raw: bytes, n: int) -> dict | RowError:
    """One JSONL line as a dict; bytes that are not UTF-8 survive as lone surrogates (found later)."""
    if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        obj = json.loads(raw.decode("utf-8", errors="surrogateescape"))
    except json.JSONDecodeError as err:
        return RowError(f"row-{n}", n, "malformed JSON", f"line {n}: {err}")
    if not isinstance(obj, dict):
        kind = type(obj).__name__
        return RowError(f"row-{n}", n, "malformed row", f"line {n} is a JSON {kind}, not an object")
    return obj


def _jsonl_columns(path: Path, kind: str) -> list[str] | None:
    """The keys of the first JSON object (JSONL has no header); None when none is found early."""
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            if n > JSONL_HEADER_LINES:
                break
            if raw.strip():
                obj = _parse_json_line(raw, n)
                if isinstance(obj, dict):
                    return list(obj)
    return None


def _jsonl(path: Path, kind: str, text_col: str, image_col: str, id_col: str) -> Iterator[Row | RowError]:
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            obj = _parse_json_line(raw, n)
            if isinstance(obj, RowError):
                yield obj
                continue
            yield _make_row(obj.get, n, text_col, image_col, id_col)


# --- CSV / TSV ---------------------------------------------------------------------------------

def _open_csv(path: Path, kind: str):
    f = path.open(encoding="utf-8-sig", errors="surrogateescape", newline="")
    return f, csv.reader(f, delimiter="\t" if kind == "tsv" else ",")


def _csv_columns(path: Path, kind: str) -> list[str]:
    f, reader = _open_csv(path, kind)
    with f:
        try:
            return [h.strip() for h in next(reader)]
        except StopIteration:
            raise ValueError(f"{path} is empty: expected a header row naming the columns") from None


def _csv(path: Path, kind: str, text_col: str, image_col: str, id_col: str) -> Iterator[Row | RowError]:
    f, reader = _open_csv(path, kind)
    with f:
        header = [h.strip() for h in next(reader)]
        start = reader.line_num + 1
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                yield RowError(f"row-{start}", start, "malformed row", f"line {start}: {err}")
                start = reader.line_num + 1
                continue
            line, start = start, reader.line_num + 1
            if not fields or all(not x.strip() for x in fields):
                continue
            if len(fields) != len(header):
                yield RowError(f"row-{line}", line, "malformed row",
                               f"line {line} has {len(fields)} fields, the header has {len(header)}")
                continue
            row = {k: (v if v != "" else None) for k, v in zip(header, fields, strict=True)}
            yield _make_row(row.get, line, text_col, image_col, id_col)


# --- Parquet -----------------------------------------------------------------------------------

def _parquet_columns(path: Path, kind: str) -> list[str]:
    import pyarrow.parquet as pq

    return list(pq.ParquetFile(path).schema_arrow.names)


def _parquet(path: Path, kind: str, text_col: str, image_col: str, id_col: str) -> Iterator[Row | RowError]:
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as pf:
        names = pf.schema_arrow.names
        columns = [c for c in dict.fromkeys((id_col, text_col, image_col)) if c in names]
        n = 0
        for batch in pf.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=columns):
            data = batch.to_pydict()
            for i in range(batch.num_rows):
                n += 1
                row = {c: values[i] for c, values in data.items()}
                yield _make_row(row.get, n, text_col, image_col, id_col)
