"""Read posts from a user's file, row by row, without ever stopping on a bad row.

JSONL (``.jsonl`` / ``.ndjson``), CSV / TSV (streamed line by line) and Parquet (streamed in record
batches, only the id / text / image columns). A row that cannot be read (malformed JSON, not an
object, wrong field count, invalid UTF-8, an id that is a list or a dict, a repeated id) becomes a
``RowError`` carrying its line; the rest go on. A file with neither the text nor the image column
fails once, when ``read_rows`` is called, before any row is handed out (JSONL: when none of its
first ``JSONL_HEADER_LINES`` objects has either key; one object without them is only that row's
error).

CSV: a quoted field may span lines, but a record that spans lines and does not parse strictly to
the header's field count (an unterminated quote) is an error for its first line only, and reading
goes on at the next line, so a stray quote never swallows the rows after it. TSV (``tsv``) has no
quoting at all, as the IANA ``text/tab-separated-values`` format: one line is one row, and a post
may start with ``"``; ``tsv-quoted`` reads tab-separated files with CSV quoting (Excel's export).

Ids: the id column's value as a string; where the column (or the value) is missing, ``line:N``
with N the row's line (JSONL, CSV: the file line it starts on, so the CSV header is line 1;
Parquet: the 1-based row number). The form ``line:N`` is reserved for this: a row whose own id
has that form is a ``reserved id`` error, so generated ids never collide with a user's. A
repeated id makes the later row a ``duplicate id`` error named ``line:N`` (its line), so ids stay
unique in the output.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet",
           ".pq": "parquet"}
EXTRA_FORMATS = ("tsv-quoted",)
"""Formats only named explicitly (``fmt``): tab-separated with CSV quoting."""
PARQUET_BATCH_ROWS = 256
"""Rows per Parquet record batch: small, since image bytes may sit in the rows."""
JSONL_HEADER_LINES = 1000
"""How far into a JSONL file to look for the first object, whose keys stand in for a header."""
_SURROGATE = re.compile("[\ud800-\udfff]")
_GENERATED_ID = re.compile(r"line:\d+")


def line_id(line: int) -> str:
    """The id given to a row without one (and to a row that cannot be read): ``line:N``."""
    return f"line:{line}"


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
    kinds = sorted(set(FORMATS.values())) + list(EXTRA_FORMATS)
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
    check_input_file(path)
    columns = {"jsonl": _jsonl_columns, "csv": _csv_columns, "tsv": _csv_columns, "tsv-quoted": _csv_columns,
               "parquet": _parquet_columns}[kind](path, kind)
    if columns is not None and text_col not in columns and image_col not in columns:
        raise ValueError(f"{path} has neither a {text_col!r} nor an {image_col!r} column; its columns are "
                         f"{', '.join(map(repr, columns[:30])) or 'none'}: "
                         "pass --text-col and/or --image-col")
    reader = {"jsonl": _jsonl, "csv": _csv, "tsv": _csv, "tsv-quoted": _csv, "parquet": _parquet}[kind]
    return _unique(reader(path, kind, text_col, image_col, id_col))


def check_input_file(path: Path) -> None:
    """Raise ``ValueError`` naming the problem when ``path`` cannot be read as an input file:
    missing, a directory, or not a regular file (a device; a FIFO or pipe is fine, it streams)."""
    import stat

    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ValueError(f"input {path} does not exist") from None
    except OSError as err:
        raise ValueError(f"input {path} cannot be read: {err.strerror or err}") from None
    if stat.S_ISDIR(mode):
        raise ValueError(f"input {path} is a directory: give the file of posts inside it")
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        raise ValueError(f"input {path} is not a regular file (a device or socket): give a file of posts")


def _unique(items: Iterator[Row | RowError]) -> Iterator[Row | RowError]:
    seen: dict[str, int] = {}
    for item in items:
        if item.id in seen:
            first = seen[item.id]
            item = RowError(line_id(item.line), item.line, "duplicate id",
                            f"id {item.id!r} was already used on line {first}; this row was not run")
        seen.setdefault(item.id, item.line)
        yield item


def _row_id(value: object, line: int) -> str | RowError:
    """The row's id as a string, ``line:N`` when it has none, or a ``RowError`` for an unusable one."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return line_id(line)
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            return RowError(line_id(line), line, "invalid UTF-8", "the id is not valid UTF-8")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        kind = {"list": "a list", "dict": "an object", "bool": "a boolean"}.get(type(value).__name__,
                                                                               type(value).__name__)
        return RowError(line_id(line), line, "bad id", f"id must be a string or number, got {kind}")
    text = str(value).strip()
    if _has_surrogates(text):
        return RowError(line_id(line), line, "invalid UTF-8", "the id is not valid UTF-8")
    if _GENERATED_ID.fullmatch(text):
        return RowError(line_id(line), line, "reserved id",
                        f"id {text!r} has the form line:N, which names rows without an id; rename it")
    return text or line_id(line)


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
        return RowError(line_id(n), n, "malformed JSON", f"line {n}: {err}")
    except RecursionError:
        return RowError(line_id(n), n, "malformed JSON", f"line {n}: nested too deeply")
    if not isinstance(obj, dict):
        kind = type(obj).__name__
        return RowError(line_id(n), n, "malformed row", f"line {n} is a JSON {kind}, not an object")
    return obj


def _jsonl_columns(path: Path, kind: str) -> list[str] | None:
    """The keys of the first ``JSONL_HEADER_LINES`` lines' objects (JSONL has no header: one object
    without text or image is that row's error, not the file's); None when no object is found."""
    keys: dict[str, None] = {}
    found = False
    with path.open("rb") as f:
        for n, raw in enumerate(f, start=1):
            if n > JSONL_HEADER_LINES:
                break
            if raw.strip():
                obj = _parse_json_line(raw, n)
                if isinstance(obj, dict):
                    found = True
                    keys.update(dict.fromkeys(obj))
    return list(keys) if found else None


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

def _dialect(kind: str) -> dict:
    if kind == "tsv":
        return {"delimiter": "\t", "quoting": csv.QUOTE_NONE}
    return {"delimiter": "\t" if kind == "tsv-quoted" else ","}


class _Lines:
    """The physical lines of a text file, numbered from 1, as the ``csv`` reader pulls them; the
    lines of the current record are kept so that all but the first can be given back."""

    def __init__(self, f) -> None:
        self.f = f
        self.number = 0
        self.returned: deque[tuple[int, str]] = deque()
        self.taken: list[tuple[int, str]] = []

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        if self.returned:
            item = self.returned.popleft()
        else:
            text = self.f.readline()
            if not text:
                raise StopIteration
            self.number += 1
            item = (self.number, text)
        self.taken.append(item)
        return item[1]

    def give_back_all_but_first(self) -> None:
        self.returned.extendleft(reversed(self.taken[1:]))


def _records(f, kind: str) -> Iterator[tuple[int, list[str] | str]]:
    """``(line, fields)`` per CSV record, or ``(line, message)`` for one that cannot be read.

    A record spanning several lines must parse strictly (no unterminated quote, nothing after a
    closing quote) to the first record's field count (the header's); otherwise its first line is
    an error and parsing resumes at its second line.
    """
    lines = _Lines(f)
    dialect = _dialect(kind)
    reader = csv.reader(lines, **dialect)
    width = None
    while True:
        lines.taken = []
        try:
            fields = next(reader)
            problem = None
        except StopIteration:
            return
        except csv.Error as err:
            fields, problem = None, str(err)
        taken = lines.taken
        if not taken:
            return
        start = taken[0][0]
        if len(taken) > 1 and problem is None and width is not None:
            problem = _strict_problem("".join(text for _, text in taken), dialect, width)
        if problem is not None:
            if len(taken) > 1:
                lines.give_back_all_but_first()
                problem = (f"a quoted field opened here does not close properly ({problem}); this line was "
                           "skipped and reading went on at the next line")
            yield start, f"line {start}: {problem}"
            continue
        if width is None:
            width = len(fields)
        yield start, fields


def _strict_problem(text: str, dialect: dict, width: int) -> str | None:
    """Why a multi-line record is not a proper quoted record of ``width`` fields (None if it is)."""
    try:
        fields = next(csv.reader(io.StringIO(text, newline=""), strict=True, **dialect))
    except csv.Error as err:
        return str(err)
    if len(fields) != width:
        return f"it spans lines and has {len(fields)} fields, the header has {width}"
    return None


def _open_csv(path: Path):
    return path.open(encoding="utf-8-sig", errors="surrogateescape", newline="")


def _csv_columns(path: Path, kind: str) -> list[str]:
    with _open_csv(path) as f:
        for _, fields in _records(f, kind):
            if isinstance(fields, str):
                raise ValueError(f"{path}: the header row cannot be read: {fields}")
            return [h.strip() for h in fields]
    raise ValueError(f"{path} is empty: expected a header row naming the columns")


def _csv(path: Path, kind: str, text_col: str, image_col: str, id_col: str) -> Iterator[Row | RowError]:
    with _open_csv(path) as f:
        records = _records(f, kind)
        _, header = next(records)
        header = [h.strip() for h in header]
        for line, fields in records:
            if isinstance(fields, str):
                yield RowError(line_id(line), line, "malformed row", fields)
                continue
            if not fields or all(not x.strip() for x in fields):
                continue
            if len(fields) != len(header):
                yield RowError(line_id(line), line, "malformed row",
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
