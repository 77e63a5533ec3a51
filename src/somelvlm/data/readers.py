"""Careful readers for upstream files: every bad line is reported with file and line, then skipped.

Adapters use these instead of ``open()`` so that invalid UTF-8, malformed rows and missing fields
never crash a build and never pass silently.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from somelvlm.data.example import SPLITS
from somelvlm.data.report import DataReport

_SURROGATE = re.compile("[\udc80-\udcff]")
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class SourceFile:
    """One upstream file of one source: knows how to name itself in a report.

    ``encoding``: the file's own encoding when it is not UTF-8 (e.g. ``"latin-1"``).
    ``legacy_encoding``: for a UTF-8 file with a few stray single-byte characters, the encoding those
    bytes are read in (each repaired line is reported, "repaired encoding") instead of dropping the line.
    ``member``: the file is a zip archive and the text is this member of it.
    """

    def __init__(self, root: Path, relpath: str, source: str, report: DataReport, encoding: str = "utf-8",
                 legacy_encoding: str | None = None, member: str | None = None) -> None:
        self.root = Path(root)
        self.relpath = relpath
        self.path = self.root / relpath
        self.source = source
        self.report = report
        self.encoding = encoding
        self.legacy_encoding = legacy_encoding
        self.member = member

    def problem(self, line: int | None, reason: str, detail: str = "") -> None:
        self.report.problem(self.source, self.relpath, line, reason, detail)

    def exists(self) -> bool:
        if self.path.is_file():
            return True
        self.problem(None, "missing file", f"expected {self.path}")
        return False

    def _text(self) -> str | None:
        if not self.exists():
            return None
        data = self.path.read_bytes()
        if self.member is not None:
            import zipfile

            try:
                with zipfile.ZipFile(io.BytesIO(data)) as archive:
                    data = archive.read(self.member)
            except (zipfile.BadZipFile, KeyError) as err:
                self.problem(None, "unreadable archive", f"{self.member}: {err}")
                return None
        if self.encoding.replace("-", "").lower() != "utf8":
            return data.decode(self.encoding, errors="surrogateescape")
        text = data.decode("utf-8", errors="surrogateescape")
        if self.legacy_encoding and _SURROGATE.search(text):
            legacy = self.legacy_encoding
            for n, line in enumerate(text.split("\n"), start=1):
                if _SURROGATE.search(line):
                    self.problem(n, "repaired encoding", f"bytes read as {legacy}: {_escaped(line)}")
            text = _SURROGATE.sub(lambda m: bytes([ord(m.group()) - 0xDC00]).decode(legacy), text)
        return text

    def lines(self, skip_blank: bool = False) -> Iterator[tuple[int, str]]:
        """``(line number, line without newline)``; lines with invalid UTF-8 are reported, skipped."""
        text = self._text()
        if text is None:
            return
        if text.startswith("\ufeff"):
            text = text[1:]
        # split on "\n" only: str.splitlines would also break on \u2028, \x85 ... inside a tweet and
        # shift every later line out of step with a parallel labels file
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        for n, line in enumerate((ln[:-1] if ln.endswith("\r") else ln for ln in lines), start=1):
            if _SURROGATE.search(line):
                self.problem(n, "invalid UTF-8", _escaped(line))
                continue
            if skip_blank and not line.strip():
                continue
            yield n, line

    def csv_rows(
        self, required: tuple[str, ...] = (), delimiter: str = ",", fieldnames: list[str] | None = None,
        quoting: int = csv.QUOTE_MINIMAL,
    ) -> Iterator[tuple[int, dict[str, str]]]:
        """``(line number of the row's first line, row)`` for a CSV/TSV with a header.

        Rows with invalid UTF-8, the wrong number of fields, or an empty required field are
        reported and skipped.
        """
        text = self._text()
        if text is None:
            return
        if text.startswith("\ufeff"):
            text = text[1:]
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quoting=quoting)
        header = fieldnames
        start = 1
        if header is None:
            try:
                header = [h.strip() for h in next(reader)]
            except StopIteration:
                self.problem(None, "empty file")
                return
            start = reader.line_num + 1
        missing = [c for c in required if c not in header]
        if missing:
            self.problem(1, "missing columns", f"{missing}; header is {header}")
            return
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as err:
                self.problem(reader.line_num, "malformed row", str(err))
                continue
            line, start = start, reader.line_num + 1
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            joined = "\x1f".join(fields)
            if _SURROGATE.search(joined):
                self.problem(line, "invalid UTF-8", _escaped(joined))
                continue
            if len(fields) != len(header):
                self.problem(line, "malformed row", f"{len(fields)} fields, header has {len(header)}")
                continue
            row = dict(zip(header, fields))
            empty = [c for c in required if not row[c].strip()]
            if empty:
                self.problem(line, "missing field", ", ".join(empty))
                continue
            yield line, row

    def jsonl_records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(line number, object)`` for JSON Lines; bad lines are reported and skipped."""
        for n, line in self.lines(skip_blank=True):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                self.problem(n, "malformed JSON", str(err))
                continue
            if not isinstance(obj, dict):
                self.problem(n, "malformed JSON", f"expected an object, got {type(obj).__name__}")
                continue
            yield n, obj

    def json_records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(1-based index, object)`` for a file holding one JSON array of objects (or JSON Lines)."""
        text = self._text()
        if text is None:
            return
        if _SURROGATE.search(text):
            self.problem(None, "invalid UTF-8")
            text = _SURROGATE.sub("\ufffd", text)
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            yield from self.jsonl_records()
            return
        if not isinstance(data, list):
            self.problem(None, "malformed JSON", f"expected an array, got {type(data).__name__}")
            return
        for i, obj in enumerate(data, start=1):
            if not isinstance(obj, dict):
                self.problem(i, "malformed JSON", f"expected an object, got {type(obj).__name__}")
                continue
            yield i, obj

    def image(self, relpath: str, line: int | None) -> str | None:
        """The image path relative to the data root if the file exists, else report and None."""
        if (self.root / relpath).is_file():
            return relpath
        self.problem(line, "missing image", relpath)
        return None


def _escaped(text: str) -> str:
    return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="backslashreplace")[:120]


def hash_split(key: str, val: float = 0.1, test: float = 0.1, salt: str = "somelvlm-split-v1") -> str:
    """A deterministic split for upstreams that have none: a stable hash of ``key`` (an id or text).

    ``val`` and ``test`` are the fractions; the rest is train. The same key always lands in the same
    split on every machine and Python version.
    """
    digest = hashlib.sha1(f"{salt}:{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if u < test:
        return SPLITS[2]
    if u < test + val:
        return SPLITS[1]
    return SPLITS[0]
