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
    assert [i.id for i in read_rows(path)] == [f"line:{first_line}", f"line:{first_line + 1}", "7"]
    path = write(tmp_path / ("no-id" + path.suffix), [{"text": "one"}, {"text": "two"}])
    assert [i.id for i in read_rows(path)] == [f"line:{first_line}", f"line:{first_line + 1}"]


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
        ("line:4", 4, "malformed JSON"), ("line:5", 5, "malformed row"), ("line:6", 6, "malformed row"),
        ("utf", 7, "invalid UTF-8"), ("line:8", 8, "invalid UTF-8"), ("end", 9, "still read", None)]


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
        ("a", 2, "fine", None), ("line:3", 3, "malformed row"), ("c", 4, "invalid UTF-8"),
        ("d", 5, "multi\nline", "d.png"), ("line:7", 7, "malformed row"), ("f", 9, "last", None)]


def test_empty_csv_says_it_needs_a_header(tmp_path):
    (tmp_path / "in.csv").write_bytes(b"")
    with pytest.raises(ValueError, match="header"):
        read_rows(tmp_path / "in.csv")


def test_repeated_ids_make_the_later_rows_errors(tmp_path):
    path = write(tmp_path / "in.jsonl", [{"id": "a", "text": "1"}, {"id": "b", "text": "2"}, {"id": "a", "text": "3"},
                                         {"id": "a", "text": "4"}])
    items = list(read_rows(path))
    assert summary(items) == [("a", 1, "1", None), ("b", 2, "2", None), ("line:3", 3, "duplicate id"),
                              ("line:4", 4, "duplicate id")]
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


# --- issue 15: rows a hostile file holds ---------------------------------------------------------

def test_an_unterminated_csv_quote_does_not_swallow_the_next_rows(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text('id,text\na,fine\nb,"never closed\nc,next good row\nd,"quoted, fine"\ne,"two\nlines"\n'
                    'f,"closed" then junk\ng,"opens again\nh,last\n', encoding="utf-8")
    items = list(read_rows(path))
    assert summary(items) == [
        ("a", 2, "fine", None), ("line:3", 3, "malformed row"), ("c", 4, "next good row", None),
        ("d", 5, "quoted, fine", None), ("e", 6, "two\nlines", None), ("f", 8, "closed then junk", None),
        ("line:9", 9, "malformed row"), ("h", 10, "last", None)]
    assert "line 3" in items[1].message and "quoted field" in items[1].message


def test_tsv_posts_that_start_with_a_quote_are_one_row_each(tmp_path):
    path = tmp_path / "in.tsv"
    path.write_text('id\ttext\n1\t"Stay safe" says the mayor\n2\tplain\n3\t"unbalanced quote\n4\tend "\n',
                    encoding="utf-8")
    assert summary(read_rows(path)) == [("1", 2, '"Stay safe" says the mayor', None), ("2", 3, "plain", None),
                                        ("3", 4, '"unbalanced quote', None), ("4", 5, 'end "', None)]
    quoted = tmp_path / "quoted.tsv"
    quoted.write_text('id\ttext\n1\t"two\nlines"\n', encoding="utf-8")
    assert summary(read_rows(quoted, fmt="tsv-quoted")) == [("1", 2, "two\nlines", None)]


def test_mediaeval_2016_posts_starting_with_quotes_read_one_record_per_post(data_root, tmp_path):
    """The real MediaEval 2016 TSV: every line one post. Its copy here writes quotes as ``\\"``, so a
    second file takes its first 2,228 posts with the quotes as the tweets had them: 52 posts then
    start with ``"`` (the case that merged posts silently under CSV quoting)."""
    import csv

    source = data_root / "mediaeval2016/mediaeval2016/devset/posts.txt"
    if not source.is_file():
        pytest.skip(f"{source} not found")
    raw = source.read_text(encoding="utf-8").splitlines()
    items = list(read_rows(source, fmt="tsv", text_col="post_text", id_col="post_id"))
    assert len(items) == len(raw) - 1 and all(isinstance(i, Row) for i in items)
    posts = [line.split("\t") for line in raw[1:2229]]
    for fields in posts:
        fields[1] = fields[1].replace('\\"', '"')
    assert sum(f[1].startswith('"') for f in posts) == 52
    path = tmp_path / "mediaeval.tsv"
    path.write_text("\n".join([raw[0]] + ["\t".join(f) for f in posts]) + "\n", encoding="utf-8")
    with path.open(newline="", encoding="utf-8") as f:  # what CSV quoting makes of it: posts merged
        assert len(list(csv.reader(f, delimiter="\t"))) - 1 < len(posts)
    items = list(read_rows(path, text_col="post_text", id_col="post_id"))
    assert len(items) == 2228 and all(isinstance(i, Row) for i in items)
    assert [(i.id, i.text) for i in items] == [(f[0], f[1]) for f in posts]


def test_generated_ids_cannot_collide_with_user_ids(tmp_path):
    path = write(tmp_path / "in.jsonl", [{"text": "no id"}, {"id": "row-1", "text": "a user id like the old form"},
                                         {"id": "line:1", "text": "the reserved form"}, {"id": "x", "text": "ok"}])
    items = list(read_rows(path))
    assert summary(items) == [("line:1", 1, "no id", None), ("row-1", 2, "a user id like the old form", None),
                              ("line:3", 3, "reserved id"), ("x", 4, "ok", None)]
    assert "line:N" in items[2].message and len({i.id for i in items}) == 4


def test_list_and_dict_ids_are_errors_not_reprs(tmp_path):
    path = write(tmp_path / "in.jsonl", [{"id": ["a", "b"], "text": "x"}, {"id": {"k": 1}, "text": "y"},
                                         {"id": 12, "text": "number ids are fine"}])
    items = list(read_rows(path))
    assert summary(items) == [("line:1", 1, "bad id"), ("line:2", 2, "bad id"), ("12", 3, "number ids are fine", None)]
    assert items[0].message == "id must be a string or number, got a list"
    assert items[1].message == "id must be a string or number, got an object"


def test_a_first_jsonl_object_without_text_or_image_is_only_that_rows_problem(tmp_path):
    path = write(tmp_path / "in.jsonl", [{"id": "meta", "note": "no post here"}, {"id": "a", "text": "good"}])
    assert summary(read_rows(path)) == [("meta", 1, None, None), ("a", 2, "good", None)]


def test_a_directory_or_a_device_as_input_says_so(tmp_path):
    folder = tmp_path / "posts.jsonl"
    folder.mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        read_rows(folder)
    with pytest.raises(ValueError, match="does not exist"):
        read_rows(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="not a regular file"):
        read_rows("/dev/zero", fmt="jsonl")
