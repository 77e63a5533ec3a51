"""The batch runner: formats in and out, bad rows as error records, resume after SIGKILL with no loss
or duplicate.

``predict`` here is a stand-in for a model (the runner is what is under test); the real model runs
through the same runner in the analyze tests.
"""

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from somelvlm.batch import output
from somelvlm.batch.runner import ModelFailing, RunConfig, run
from somelvlm.posts import Limits, PostError


def length(posts):
    """A fake model: the text's length, the image's size, and a nested dict like real predictions."""
    return [{"chars": len(p.text or ""), "size": None if p.image is None else list(p.image.size),
             "emotion": {"label": "joy", "probs": {"joy": 0.75, "anger": 0.25}}} for p in posts]


def records(path):
    path = Path(path)
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def png(size=(8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((size[1], size[0], 3)) * 255).astype("uint8")).save(buf, "PNG")
    return buf.getvalue()


def write_input(path, rows):
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif path.suffix in (".csv", ".tsv"):
        import csv

        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t" if path.suffix == ".tsv" else ",")
            writer.writeheader()
            writer.writerows(rows)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def quiet(*args, **kwargs):
    return run(*args, progress=False, **kwargs)


# --- formats, columns ------------------------------------------------------------------------------

@pytest.mark.parametrize("out_name", ["out.jsonl", "out.parquet"])
@pytest.mark.parametrize("in_name", ["in.jsonl", "in.ndjson", "in.csv", "in.tsv", "in.parquet"])
def test_every_input_format_to_every_output_format(tmp_path, in_name, out_name):
    (tmp_path / "pic.png").write_bytes(png((5, 3)))
    rows = [{"id": f"p{i}", "text": f"post number {i}", "image": "pic.png" if i == 4 else ""} for i in range(10)]
    source = write_input(tmp_path / in_name, rows)
    out = tmp_path / out_name
    summary = quiet(source, out, length, RunConfig(batch_size=3))
    assert (summary.written, summary.errors, summary.skipped_existing, summary.out) == (10, 0, 0, out)
    got = records(out)
    assert [r["id"] for r in got] == [f"p{i}" for i in range(10)]
    if out_name.endswith(".jsonl"):
        assert got[4] == {"id": "p4", "chars": 13, "size": [5, 3],
                          "emotion": {"label": "joy", "probs": {"joy": 0.75, "anger": 0.25}}}
    else:  # nested dicts become dotted columns, lists JSON text
        assert got[4] == {"id": "p4", "chars": 13, "size": "[5, 3]", "emotion.label": "joy",
                          "emotion.probs.joy": 0.75, "emotion.probs.anger": 0.25}
        assert not (tmp_path / "out.parquet.partial.jsonl").exists()
        assert not list(tmp_path.glob(".*.tmp"))


def test_fmt_names_the_input_format(tmp_path):
    source = tmp_path / "posts.txt"
    source.write_text('{"id": "a", "text": "hi"}\n', encoding="utf-8")
    quiet(source, tmp_path / "out.jsonl", length, fmt="jsonl")
    assert [r["id"] for r in records(tmp_path / "out.jsonl")] == ["a"]


def test_column_flags_and_image_root(tmp_path):
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "p.png").write_bytes(png((4, 4)))
    source = write_input(tmp_path / "in.csv", [{"post_id": "a", "body": "hello", "img": "p.png"},
                                                 {"post_id": "b", "body": "world", "img": ""}])
    out = tmp_path / "o.jsonl"
    quiet(source, out, length, RunConfig(image_root=tmp_path / "pics"), text_col="body", image_col="img",
          id_col="post_id")
    assert [(r["id"], r["chars"], r["size"]) for r in records(out)] == [("a", 5, [4, 4]), ("b", 5, None)]


def test_missing_columns_fail_up_front_and_write_nothing(tmp_path):
    source = write_input(tmp_path / "in.csv", [{"post_id": "a", "body": "hello"}])
    with pytest.raises(ValueError, match="--text-col") as info:
        quiet(source, tmp_path / "o.jsonl", length)
    assert "'body'" in str(info.value)
    assert not (tmp_path / "o.jsonl").exists()


def test_bad_output_names_are_refused(tmp_path):
    source = write_input(tmp_path / "in.jsonl", [{"id": "a", "text": "hi"}])
    with pytest.raises(ValueError, match=".jsonl or .parquet"):
        quiet(source, tmp_path / "out.csv", length)
    with pytest.raises(ValueError, match="is the input"):
        quiet(source, source, length)


def test_progress_bar_goes_to_stderr(tmp_path, capsys):
    source = write_input(tmp_path / "in.jsonl", [{"id": str(i), "text": "t"} for i in range(5)])
    run(source, tmp_path / "out.jsonl", length, progress=True)
    assert capsys.readouterr().out == ""


# --- bad rows ----------------------------------------------------------------------------------

def test_bad_rows_become_error_records_and_the_rest_go_on(tmp_path):
    (tmp_path / "good.png").write_bytes(png())
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "corrupt.png").write_bytes(png((300, 300))[:-300])
    (tmp_path / "notes.png").write_text("not an image", encoding="utf-8")
    rows = [
        {"id": "ok1", "text": "fine"},
        {"id": "empty", "text": "   "},
        {"id": "huge", "text": "x" * 100_000},
        {"id": "zero", "image": "empty.png"},
        {"id": "corrupt", "image": "corrupt.png"},
        {"id": "notimg", "image": "notes.png"},
        {"id": "gone", "image": "missing.png"},
        {"id": "url", "image": "https://example.com/a.png"},
        {"id": "ok1", "text": "duplicate id"},
        {"id": "ok2", "text": "caption", "image": "good.png"},
    ]
    body = "".join(json.dumps(r) + "\n" for r in rows).encode()
    body += b'{"id": "utf", "text": "caf\xe9"}\n{broken\n{"id": "ok3", "text": "after the bad lines"}\n'
    source = tmp_path / "in.jsonl"
    source.write_bytes(body)
    out = tmp_path / "out.jsonl"
    summary = quiet(source, out, length, RunConfig(batch_size=4, limits=Limits(max_text_chars=50_000)))
    got = records(out)
    assert [r["id"] for r in got] == ["ok1", "empty", "huge", "zero", "corrupt", "notimg", "gone", "url", "line:9",
                                      "ok2", "utf", "line:12", "ok3"]  # input order, ids unique
    errors = {r["id"]: (r["line"], r["error"]["reason"]) for r in got if "error" in r}
    assert errors == {"empty": (2, "empty post"), "huge": (3, "text too long"), "zero": (4, "empty image"),
                      "corrupt": (5, "corrupt image"), "notimg": (6, "not an image"), "gone": (7, "missing image"),
                      "url": (8, "remote image"), "line:9": (9, "duplicate id"), "utf": (11, "invalid UTF-8"),
                      "line:12": (12, "malformed JSON")}
    assert all(set(r) == {"id", "line", "error"} and set(r["error"]) == {"reason", "message"} and r["error"]["message"]
               for r in got if "error" in r)
    assert "100000 characters" in got[2]["error"]["message"] and "ok1" in got[8]["error"]["message"]
    assert [r["id"] for r in got if "error" not in r] == ["ok1", "ok2", "ok3"] and got[9]["size"] == [8, 8]
    assert (summary.written, summary.errors) == (13, 10)


def test_bad_image_bytes_in_parquet(tmp_path):
    rows = [{"id": "good", "text": None, "image": png((6, 2))},
            {"id": "corrupt", "text": "t", "image": png((200, 200))[:-200]},
            {"id": "zero", "text": "t", "image": b""},
            {"id": "notimg", "text": "t", "image": b"GIF89a but not really"},
            {"id": "textonly", "text": "no image", "image": None}]
    source = write_input(tmp_path / "in.parquet", rows)
    quiet(source, tmp_path / "out.jsonl", length)
    got = {r["id"]: r.get("error", {}).get("reason", r.get("size")) for r in records(tmp_path / "out.jsonl")}
    assert got == {"good": [6, 2], "corrupt": "corrupt image", "zero": "empty image", "notimg": "not an image",
                   "textonly": None}


def test_hugging_face_image_structs_are_read(tmp_path):
    table = pa.table({"id": ["a", "b"], "image": [{"bytes": png((3, 3)), "path": None},
                                                  {"bytes": None, "path": "b.png"}]})
    (tmp_path / "b.png").write_bytes(png((2, 2)))
    pq.write_table(table, tmp_path / "in.parquet")
    quiet(tmp_path / "in.parquet", tmp_path / "out.jsonl", length)
    assert [r["size"] for r in records(tmp_path / "out.jsonl")] == [[3, 3], [2, 2]]


# --- a model that fails ------------------------------------------------------------------------

def test_a_post_that_breaks_the_model_only_errors_itself(tmp_path):
    texts = {3: "boom", 5: "no text"}
    source = write_input(tmp_path / "in.jsonl", [{"id": str(i), "text": texts.get(i, "ok")} for i in range(6)])
    calls = []

    def fragile(posts):
        calls.append(len(posts))
        if any(p.text == "boom" for p in posts):
            raise RuntimeError("model exploded")
        if any(p.text == "no text" for p in posts):
            raise PostError("no text", "OCR is off")
        return length(posts)

    out = tmp_path / "out.jsonl"
    summary = quiet(source, out, fragile, RunConfig(batch_size=6))
    got = records(out)
    assert [r["id"] for r in got] == [str(i) for i in range(6)]
    assert got[3]["error"]["reason"] == "model error" and "RuntimeError: model exploded" in got[3]["error"]["message"]
    assert got[5]["error"] == {"reason": "no text", "message": "OCR is off"}
    assert summary.errors == 2 and calls == [6, 1, 1, 1, 1, 1, 1]


def test_outputs_that_are_not_json_dicts(tmp_path):
    source = write_input(tmp_path / "in.jsonl", [{"id": str(i), "text": "t" * (i + 1)} for i in range(4)])

    def odd(posts):
        if len(posts) > 1:
            return length(posts)[:-1]  # one short: the batch is redone post by post
        n = len(posts[0].text)
        return [{1: {"id": "spoofed", "score": np.float32(0.5), "vec": np.arange(2)},
                 2: "not a dict", 3: {"x": object()}, 4: {"id": "spoofed", "ok": True}}[n]]

    out = tmp_path / "out.jsonl"
    assert quiet(source, out, odd).errors == 2
    got = records(out)
    assert got[0] == {"id": "0", "score": 0.5, "vec": [0, 1]}
    assert got[1]["error"]["reason"] == "model error" and "list of 1 dicts" in got[1]["error"]["message"]
    assert got[2]["error"]["reason"] == "bad output"
    assert got[3] == {"id": "3", "ok": True}


def test_a_broken_model_stops_the_run_resumably(tmp_path):
    source = write_input(tmp_path / "in.jsonl", [{"id": str(i), "text": "t"} for i in range(100)])
    out = tmp_path / "out.jsonl"
    state = {"broken_after": 2}

    def flaky(posts):
        if state["broken_after"] <= 0:
            raise RuntimeError("CUDA error: device lost")
        state["broken_after"] -= 1
        return length(posts)

    with pytest.raises(ModelFailing, match="device lost"):
        quiet(source, out, flaky, RunConfig(batch_size=10, stop_after_model_errors=10))
    assert [r["id"] for r in records(out)] == [str(i) for i in range(20)]  # the failing batch is not written
    summary = quiet(source, out, length, RunConfig(batch_size=10))
    assert (summary.skipped_existing, summary.written, summary.errors) == (20, 80, 0)
    assert [r["id"] for r in records(out)] == [str(i) for i in range(100)]


# --- resuming ----------------------------------------------------------------------------------

@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_rerun_on_a_complete_output_writes_nothing(tmp_path, suffix):
    source = write_input(tmp_path / "in.jsonl", [{"id": str(i), "text": "t"} for i in range(5)] + [{"id": "e"}])
    out = tmp_path / f"out{suffix}"
    quiet(source, out, length)
    before, mtime = out.read_bytes(), out.stat().st_mtime_ns
    summary = quiet(source, out, length)
    assert (summary.written, summary.skipped_existing, summary.errors) == (0, 6, 0)
    assert out.read_bytes() == before and out.stat().st_mtime_ns == mtime
    assert sorted(os.listdir(tmp_path)) == ["in.jsonl", out.name]


def test_new_rows_in_the_input_are_appended(tmp_path):
    source = write_input(tmp_path / "in.jsonl", [{"id": str(i), "text": "t"} for i in range(3)])
    for suffix in (".jsonl", ".parquet"):
        quiet(source, tmp_path / f"out{suffix}", length)
    write_input(source, [{"id": str(i), "text": "t"} for i in range(5)])
    for suffix in (".jsonl", ".parquet"):
        summary = quiet(source, tmp_path / f"out{suffix}", length)
        assert (summary.written, summary.skipped_existing) == (2, 3)
        assert [r["id"] for r in records(tmp_path / f"out{suffix}")] == ["0", "1", "2", "3", "4"]


def test_a_torn_last_line_is_cut_and_redone(tmp_path):
    source = write_input(tmp_path / "in.jsonl", [{"id": str(i), "text": "t"} for i in range(5)])
    out = tmp_path / "out.jsonl"
    quiet(source, out, length)
    data = out.read_bytes()
    out.write_bytes(data[: data.rfind(b"\n", 0, -1) + 1] + b'{"id": "4", "cha')  # killed while writing row 4
    summary = quiet(source, out, length)
    assert (summary.written, summary.skipped_existing) == (1, 4)
    assert out.read_bytes() == data


def test_a_foreign_output_file_is_not_touched(tmp_path):
    source = write_input(tmp_path / "in.jsonl", [{"id": "a", "text": "t"}])
    out = tmp_path / "out.jsonl"
    out.write_text("this is somebody's notes\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a record of a somelvlm run"):
        quiet(source, out, length)
    assert out.read_text(encoding="utf-8") == "this is somebody's notes\n"


def test_parquet_finish_twice_repeats_nothing(tmp_path):
    """A kill after OUT was renamed into place but before the journal was removed."""
    source = write_input(tmp_path / "in.jsonl", [{"id": str(i), "text": "t" * i} for i in range(6)])
    out = tmp_path / "out.parquet"
    quiet(source, out, length)
    journal = tmp_path / "out.parquet.partial.jsonl"
    journal.write_bytes(b"".join(output.to_line(r) for r in records(out)[3:]))
    summary = quiet(source, out, length)
    assert summary.written == 0 and not journal.exists()
    assert [r["id"] for r in records(out)] == ["0", "1", "2", "3", "4", "5"]


def test_parquet_columns_widen_across_runs(tmp_path):
    """Runs that add rows may return other kinds of values: ints widen to floats, clashes to text."""
    source, out = tmp_path / "in.jsonl", tmp_path / "out.parquet"
    outputs = [{"score": 1}, {"score": 0.5, "tags": ["a", "b"]}, {"score": "high", "extra": {"k": True}}]
    for n, result in enumerate(outputs, start=1):
        write_input(source, [{"id": str(i), "text": "t"} for i in range(n)])
        quiet(source, out, lambda posts, result=result: [dict(result) for _ in posts])
        assert not list(tmp_path.glob("*.partial.jsonl"))
    got = records(out)
    assert [r["id"] for r in got] == ["0", "1", "2"]
    assert [r["score"] for r in got] == ["1", "0.5", "high"] and [r["tags"] for r in got] == [None, '["a", "b"]', None]
    assert [r["extra.k"] for r in got] == [None, None, True]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_errors_are_kept_unless_retried(tmp_path, suffix):
    source = write_input(tmp_path / "in.jsonl", [{"id": "a", "text": "t"}, {"id": "b", "image": "b.png"}])
    out = tmp_path / f"out{suffix}"
    assert quiet(source, out, length).errors == 1
    (tmp_path / "b.png").write_bytes(png((2, 2)))  # the user fixes the row
    assert quiet(source, out, length).written == 0  # errors are written, so skipped
    summary = quiet(source, out, length, RunConfig(retry_errors=True))
    assert (summary.written, summary.errors, summary.skipped_existing) == (1, 0, 1)
    got = records(out)
    assert [r["id"] for r in got] == ["a", "b"]
    assert got[1]["size"] in ([2, 2], "[2, 2]") and got[1].get("error", got[1].get("error.reason")) is None


def test_two_runs_on_one_output_at_once_are_refused(tmp_path):
    source = write_input(tmp_path / "in.jsonl", [{"id": "a", "text": "t"}])
    out = tmp_path / "out.jsonl"
    handle, _ = output.open_journal(out)  # another run holds OUT
    try:
        with pytest.raises(RuntimeError, match="another run"):
            quiet(source, out, length)
    finally:
        handle.close()
    quiet(source, out, length)
    assert [r["id"] for r in records(out)] == ["a"]


# --- SIGKILL part-way, rerun: nothing lost, nothing twice -------------------------------------

JOB = """
import sys, time
from pathlib import Path
from somelvlm.batch.runner import RunConfig, run

def slow(posts):
    time.sleep(0.02)
    return [{"chars": len(p.text), "emotion": {"label": "joy", "probs": {"joy": 0.5, "sadness": 0.5}}} for p in posts]

run(Path(sys.argv[1]), Path(sys.argv[2]), slow, RunConfig(batch_size=16), progress=False)
"""


def _lines_in(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_sigkill_part_way_then_rerun_loses_and_duplicates_nothing(tmp_path, suffix):
    n = 2000
    expected = [f"id{i}" for i in range(n)]
    rows = [{"id": x, "text": "x" * (i % 50 + 1)} for i, x in enumerate(expected)]
    rows.insert(777, {"id": "bad", "image": "missing.png"})  # an error record among them
    source = write_input(tmp_path / "in.jsonl", rows)
    (tmp_path / "job.py").write_text(JOB, encoding="utf-8")
    out = tmp_path / f"out{suffix}"
    journal = out if suffix == ".jsonl" else out.with_name(out.name + ".partial.jsonl")
    cmd = [sys.executable, str(tmp_path / "job.py"), str(source), str(out)]
    for stop_at in (150, 900, 1600):  # three kills, each once the output holds that many lines
        proc = subprocess.Popen(cmd)
        deadline = time.monotonic() + 60
        while _lines_in(journal) < stop_at and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL, "the job ended before it was killed"
        assert stop_at <= _lines_in(journal) < n + 1 and not (suffix == ".parquet" and out.exists())
    subprocess.run(cmd, check=True, timeout=120)
    got = records(out)
    ids = [r["id"] for r in got]
    assert len(ids) == n + 1 and len(set(ids)) == n + 1  # none lost, none twice
    if suffix == ".jsonl":
        assert ids == [r["id"] for r in rows]  # input order, across the kills
    else:
        assert sorted(ids) == sorted(r["id"] for r in rows) and not journal.exists()
    errors = [r for r in got if (r.get("error") or r.get("error.reason"))]
    assert [r["id"] for r in errors] == ["bad"]
    assert all(r.get("chars") == len(rows[ids.index(r["id"])]["text"]) for r in got if r["id"] != "bad")


# --- issue 15: hostile inputs through the real runner -----------------------------------------

def test_rows_without_ids_never_take_a_users_id(tmp_path):
    source = write_input(tmp_path / "in.jsonl", [{"text": "no id"}, {"text": "no id either"}, {"id": "row-3", "text": "a"},
                                                 {"id": "line:9", "text": "reserved"}, {"id": "row-2", "text": "b"}])
    out = tmp_path / "out.jsonl"
    assert quiet(source, out, length).written == 5
    got = records(out)
    assert [r["id"] for r in got] == ["line:1", "line:2", "row-3", "line:4", "row-2"]
    assert got[3]["error"]["reason"] == "reserved id"
    assert quiet(source, out, length).skipped_existing == 5  # resume by the same ids


def test_hostile_values_get_error_records_that_say_what_is_wrong(tmp_path):
    (tmp_path / "folder.png").mkdir()
    rows = [{"id": "zw", "text": "\u200b\u200b"}, {"id": "zw+img", "text": "\u200b\ufeff", "image": "ok.png"},
            {"id": "dev", "image": "/dev/zero"}, {"id": "dir", "image": "folder.png"}, {"id": ["x"], "text": "list id"},
            {"id": {"a": 1}, "text": "dict id"}, {"id": "fine", "text": "\u200bhello"}]
    (tmp_path / "ok.png").write_bytes(png((4, 4)))
    source = write_input(tmp_path / "in.jsonl", rows)
    quiet(source, tmp_path / "out.jsonl", length)
    got = {r["id"]: r for r in records(tmp_path / "out.jsonl")}
    assert list(got) == ["zw", "zw+img", "dev", "dir", "line:5", "line:6", "fine"]
    assert got["zw"]["error"]["reason"] == "empty text" and "U+200B" in got["zw"]["error"]["message"]
    assert got["zw+img"]["size"] == [4, 4] and got["zw+img"]["chars"] == 0  # the image post goes on, text-less
    assert got["dev"]["error"] == {"reason": "not a regular file",
                                   "message": "/dev/zero is not a regular file (a device, pipe or socket)"}
    assert got["dir"]["error"]["reason"] == "not a regular file" and "is a directory" in got["dir"]["error"]["message"]
    for rid, kind in (("line:5", "a list"), ("line:6", "an object")):
        assert got[rid]["error"] == {"reason": "bad id", "message": f"id must be a string or number, got {kind}"}
    assert got["fine"]["chars"] == len("\u200bhello")


def test_a_directory_as_input_is_named_and_nothing_is_written(tmp_path):
    (tmp_path / "posts.jsonl").mkdir()
    with pytest.raises(ValueError, match="is a directory"):
        quiet(tmp_path / "posts.jsonl", tmp_path / "out.jsonl", length)
    assert not (tmp_path / "out.jsonl").exists()


def test_a_jsonl_whose_first_object_has_no_post_goes_on(tmp_path):
    source = write_input(tmp_path / "in.jsonl", [{"id": "header", "source": "export v2"}, {"id": "a", "text": "good"},
                                                 {"id": "b", "text": "also good"}])
    summary = quiet(source, tmp_path / "out.jsonl", length)
    got = records(tmp_path / "out.jsonl")
    assert [(r["id"], r.get("error", {}).get("reason")) for r in got] == [("header", "empty post"), ("a", None), ("b", None)]
    assert (summary.written, summary.errors) == (3, 1)


def test_an_unterminated_csv_quote_costs_one_row_only(tmp_path):
    source = tmp_path / "in.csv"
    source.write_text('id,text\na,first\nb,"oops\nc,second\nd,third\n', encoding="utf-8")
    quiet(source, tmp_path / "out.jsonl", length)
    got = records(tmp_path / "out.jsonl")
    assert [(r["id"], r.get("error", {}).get("reason")) for r in got] == [
        ("a", None), ("line:3", "malformed row"), ("c", None), ("d", None)]
    assert got[1]["line"] == 3


KILLED_WHILE_FINISHING = """
import os, signal, sys
from pathlib import Path
from somelvlm.batch import output
from somelvlm.batch.runner import run

def kill_instead(src, dst):  # SIGKILL right before the temp file is renamed over OUT
    os.kill(os.getpid(), signal.SIGKILL)

output.os.replace = kill_instead
run(Path(sys.argv[1]), Path(sys.argv[2]), lambda posts: [{"n": len(p.text)} for p in posts], progress=False)
"""


def test_a_kill_while_finishing_parquet_leaves_no_temp_file_for_good(tmp_path):
    source = write_input(tmp_path / "in.jsonl", [{"id": str(i), "text": "x" * i} for i in range(1, 30)])
    out = tmp_path / "out.parquet"
    (tmp_path / "job.py").write_text(KILLED_WHILE_FINISHING, encoding="utf-8")
    proc = subprocess.run([sys.executable, str(tmp_path / "job.py"), str(source), str(out)], timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL
    stale = list(tmp_path.glob(".out.parquet.*.tmp"))
    assert len(stale) == 1 and not out.exists()
    other = tmp_path / ".other.parquet.1.tmp"  # another output's temp is not ours to remove
    other.write_bytes(b"x")
    summary = quiet(source, out, length)
    assert not list(tmp_path.glob(".out.parquet.*.tmp")) and other.exists()
    assert summary.skipped_existing == 29 and sorted(r["id"] for r in records(out)) == sorted(str(i) for i in range(1, 30))


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_a_rerun_by_another_model_is_refused_before_writing(tmp_path, suffix):
    source = write_input(tmp_path / "in.jsonl", [{"id": str(i), "text": "t"} for i in range(3)])
    out = tmp_path / f"out{suffix}"
    first = {"tasks": ["emotion"], "classifier": {"name": "m", "files": "aaaa"}}
    quiet(source, out, length, fingerprint=first)
    assert json.loads(output.run_file(out).read_text()) == first
    write_input(source, [{"id": str(i), "text": "t"} for i in range(5)])
    before = out.read_bytes()
    with pytest.raises(ValueError, match=r"differs in: classifier\).*give a new --out"):
        quiet(source, out, length, fingerprint={**first, "classifier": {"name": "m", "files": "bbbb"}})
    assert out.read_bytes() == before
    summary = quiet(source, out, length, fingerprint=first)  # the same run resumes
    assert (summary.written, summary.skipped_existing) == (2, 3)


def test_an_output_from_before_run_files_gets_one_on_resume(tmp_path):
    import logging

    source = write_input(tmp_path / "in.jsonl", [{"id": str(i), "text": "t"} for i in range(3)])
    out = tmp_path / "out.jsonl"
    quiet(source, out, length)  # no fingerprint: as before run files
    assert not output.run_file(out).exists()
    seen, log = [], logging.getLogger("somelvlm.batch.output")  # its own handler: other tests set up logging
    handler, level = logging.Handler(logging.WARNING), log.level
    handler.emit = lambda record: seen.append(record.getMessage())
    log.addHandler(handler)
    log.setLevel(logging.WARNING)
    try:
        summary = quiet(source, out, length, fingerprint={"tasks": ["emotion"]})
    finally:
        log.removeHandler(handler)
        log.setLevel(level)
    assert summary.skipped_existing == 3 and any("written before run files" in m for m in seen)
    assert json.loads(output.run_file(out).read_text()) == {"tasks": ["emotion"]}
