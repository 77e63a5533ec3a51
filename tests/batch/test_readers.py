"""Input readers: every format, column checks up front, bad rows as RowErrors with their line, unique ids."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from somelvlm.batch.readers import Row, RowError, read_rows

ROWS = [{"id": "a", "text": "first post", "image": "a.png"},
        {"id": "b", "text": "second, with a comma", "image": None},
        {"id": "c", "text": None, "image": "c.png"}]


def write(path, rows, sep=","):
    """``rows`` (dicts) as the format ``path``'s extension names."""
    if path.suffix in (".jsonl", ".ndjson"):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        import csv

        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter=sep)
            writer.writeheader()
            writer.writerows(rows)
    return path


def summary(items):
    return [(i.id, i.line, i.reason) if isinstance(i, RowError) else (i.id, i.line, i.text, i.image) for i in items]


@pytest.mark.parametrize("name, first_line", [("in.jsonl", 1), ("in.ndjson", 1), ("in.csv", 2), ("in.tsv", 2),
                                              ("in.parquet", 1)])
def test_each_format_gives_the_same_rows(tmp_path, name, first_line):
    path = write(tmp_path / name, ROWS, sep="\t" if name.endswith(".tsv") else ",")
    items = list(read_rows(path))
    assert all(isinstance(i, Row) for i in items)
    assert summary(items) == [(r["id"], first_line + n, r["text"], r["image"]) for n, r in enumerate(ROWS)]


def test_fmt_overrides_the_extension(tmp_path):
    path = tmp_path / "posts.txt"
    path.write_text('{"id": "x", "text": "hi"}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="cannot tell the format"):
        read_rows(path)
    assert summary(read_rows(path, fmt="jsonl")) == [("x", 1, "hi", None)]
    with pytest.raises(ValueError, match="unknown input format"):
        read_rows(path, fmt="xml")


def test_column_flags_pick_the_columns(tmp_path):
    path = write(tmp_path / "in.csv", [{"post_id": "p1", "body": "hello", "img": "p1.jpg", "text": "not this"}])
    items = read_rows(path, text_col="body", image_col="img", id_col="post_id")
    assert summary(items) == [("p1", 2, "hello", "p1.jpg")]


@pytest.mark.parametrize("name, first_line", [("in.jsonl", 1), ("in.csv", 2), ("in.parquet", 1)])
def test_missing_id_column_or_value_gives_row_numbers(tmp_path, name, first_line):
    seven = "7" if name.endswith(".parquet") else 7  # JSONL: a number id becomes its string
    path = write(tmp_path / name, [{"text": "one", "id": None}, {"text": "two", "id": "  "}, {"text": "3", "id": seven}])
    assert [i.id for i in read_rows(path)] == [f"row-{first_line}", f"row-{first_line + 1}", "7"]
    path = write(tmp_path / ("no-id" + path.suffix), [{"text": "one"}, {"text": "two"}])
    assert [i.id for i in read_rows(path)] == [f"row-{first_line}", f"row-{first_line + 1}"]


@pytest.mark.parametrize("name", ["in.jsonl", "in.csv", "in.tsv", "in.parquet"])
def test_no_text_and_no_image_column_fails_before_any_row(tmp_path, name):
    path = write(tmp_path / name, [{"id": "a", "body": "hello", "picture": "x.png"}], sep="\t" if "tsv" in name else ",")
    with pytest.raises(ValueError) as info:
        read_rows(path)  # raised on the call, not while iterating
    message = str(info.value)
    assert "'body'" in message and "'picture'" in message and "--text-col" in message and "--image-col" in message
    assert len(list(read_rows(path, text_col="body"))) == 1
    assert len(list(read_rows(path, image_col="picture"))) == 1


def test_image_only_file_is_fine(tmp_path):
    path = write(tmp_path / "in.jsonl", [{"id": "a", "image": "a.png"}])
    assert summary(read_rows(path)) == [("a", 1, None, "a.png")]


def test_bad_jsonl_lines_become_row_errors_and_the_rest_go_on(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"id": "bom", "text": "first line carries a BOM"}\n'
                     b'{"id": "ok", "text": "fine"}\n'
                     b"\n"
                     b"{broken\n"
                     b'["an", "array"]\n'
                     b"42\n"
                     b'{"id": "utf", "text": "caf\xe9"}\n'
                     b'{"id": "bad\xff", "text": "id is not UTF-8"}\n'
                     b'{"id": "end", "text": "still read"}')
    assert summary(read_rows(path)) == [
        ("bom", 1, "first line carries a BOM", None), ("ok", 2, "fine", None),
        ("row-4", 4, "malformed JSON"), ("row-5", 5, "malformed row"), ("row-6", 6, "malformed row"),
        ("utf", 7, "invalid UTF-8"), ("row-8", 8, "invalid UTF-8"), ("end", 9, "still read", None)]


def test_bad_csv_rows_become_row_errors_by_line(tmp_path):
    path = tmp_path / "in.csv"
    path.write_bytes(b'\xef\xbb\xbfid,text,image\n'
                     b"a,fine,\n"
                     b'b,"two",fields,too many\n'
                     b"c,bad \xff byte,\n"
                     b'd,"multi\nline",d.png\n'
                     b"e,short\n"
                     b",,\n"
                     b"f,last,\n")
    assert summary(read_rows(path)) == [
        ("a", 2, "fine", None), ("row-3", 3, "malformed row"), ("c", 4, "invalid UTF-8"),
        ("d", 5, "multi\nline", "d.png"), ("row-7", 7, "malformed row"), ("f", 9, "last", None)]


def test_empty_csv_says_it_needs_a_header(tmp_path):
    (tmp_path / "in.csv").write_bytes(b"")
    with pytest.raises(ValueError, match="header"):
        read_rows(tmp_path / "in.csv")


def test_repeated_ids_make_the_later_rows_errors(tmp_path):
    path = write(tmp_path / "in.jsonl", [{"id": "a", "text": "1"}, {"id": "b", "text": "2"}, {"id": "a", "text": "3"},
                                         {"id": "a", "text": "4"}])
    items = list(read_rows(path))
    assert summary(items) == [("a", 1, "1", None), ("b", 2, "2", None), ("row-3", 3, "duplicate id"),
                              ("row-4", 4, "duplicate id")]
    assert "'a'" in items[2].message and "line 1" in items[2].message
    assert len({i.id for i in items}) == len(items)


def test_parquet_is_streamed_in_batches_with_image_bytes(tmp_path, monkeypatch):
    n = 1500
    rows = [{"id": f"p{i}", "text": f"post {i}", "image": b"\x89PNG fake" if i % 2 else None, "extra": "x" * 100}
            for i in range(n)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet", row_group_size=200)
    whole_file = pytest.fail  # reading the whole file at once is what streaming must avoid
    monkeypatch.setattr(pq, "read_table", lambda *a, **k: whole_file("read_table called"))
    monkeypatch.setattr(pq.ParquetFile, "read", lambda *a, **k: whole_file("ParquetFile.read called"))
    items = list(read_rows(tmp_path / "in.parquet"))
    assert [i.id for i in items] == [f"p{i}" for i in range(n)] and [i.line for i in items] == list(range(1, n + 1))
    assert items[1].image == b"\x89PNG fake" and items[0].image is None


def test_parquet_image_structs_and_binary_text_pass_through(tmp_path):
    table = pa.table({"id": ["a"], "text": pa.array([b"caf\xc3\xa9"], pa.binary()),
                      "image": [{"bytes": b"raw", "path": "a.png"}]})
    pq.write_table(table, tmp_path / "in.parquet")
    (item,) = read_rows(tmp_path / "in.parquet")
    assert item.text == b"caf\xc3\xa9" and item.image == {"bytes": b"raw", "path": "a.png"}
