"""The batch runner: formats, bad rows as error records, resume after SIGKILL with no loss or duplicate.

The predict function here is a stand-in for a model (the runner is what is under test); the real
model runs through the same runner in tests/test_analyze.py.
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

from somelvlm.batch.readers import read_rows
from somelvlm.batch.runner import RunConfig, run
from somelvlm.posts import Limits


def length(posts):
    return [{"chars": len(p.text or ""), "image": None if p.image is None else list(p.image.size)} for p in posts]


def lines(path):
    return [json.loads(x) for x in Path(path).read_text(encoding="utf-8").splitlines()]


def png(size=(8, 8)) -> bytes:
    buf = io.BytesIO()
    Image.fromarray((np.random.default_rng(0).random((*size, 3)) * 255).astype("uint8")).save(buf, "PNG")
    return buf.getvalue()


def test_jsonl_csv_parquet_in_and_out(tmp_path):
    rows = [{"id": f"p{i}", "text": f"post number {i}"} for i in range(10)]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (tmp_path / "in.csv").write_text("id,text\n" + "".join(f"{r['id']},{r['text']}\n" for r in rows), encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in.parquet")
    for name in ("in.jsonl", "in.csv", "in.parquet"):
        out = tmp_path / f"{name}.out.jsonl"
        summary = run(tmp_path / name, out, length, RunConfig(batch_size=3), progress=False)
        assert summary.written == 10 and summary.errors == 0
        assert [r["id"] for r in lines(out)] == [f"p{i}" for i in range(10)]
    out = tmp_path / "out.parquet"
    run(tmp_path / "in.jsonl", out, length, progress=False)
    table = pq.read_table(out).to_pylist()
    assert [r["id"] for r in table] == [f"p{i}" for i in range(10)] and "chars" in table[0]
    assert not (tmp_path / "out.parquet.partial.jsonl").exists()


def test_column_flags_and_missing_columns(tmp_path):
    (tmp_path / "in.csv").write_text("post_id,body\na,hello\nb,world\n", encoding="utf-8")
    out = tmp_path / "o.jsonl"
    run(tmp_path / "in.csv", out, length, text_col="body", id_col="post_id", progress=False)
    assert [r["id"] for r in lines(out)] == ["a", "b"]
    with pytest.raises(ValueError, match="--text-col"):
        run(tmp_path / "in.csv", tmp_path / "o2.jsonl", length, progress=False)


def test_bad_rows_become_error_records_and_the_rest_go_on(tmp_path):
    (tmp_path / "good.png").write_bytes(png())
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "corrupt.png").write_bytes(png((300, 300))[:-30])
    (tmp_path / "notes.txt").write_text("not an image", encoding="utf-8")
    good = [{"id": "ok1", "text": "fine"}, {"id": "ok2", "image": "good.png"}]
    bad = [
        {"id": "empty", "text": "   "},
        {"id": "huge", "text": "x" * 100_000},
        {"id": "zero", "image": "empty.png"},
        {"id": "corrupt", "image": "corrupt.png"},
        {"id": "notimg", "image": "notes.txt"},
        {"id": "gone", "image": "missing.png"},
        {"id": "ok1", "text": "duplicate id"},
    ]
    body = "".join(json.dumps(r) + "\n" for r in good + bad).encode() + b'{"id": "utf", "text": "caf\xe9"}\n{broken\n'
    (tmp_path / "in.jsonl").write_bytes(body)
    out = tmp_path / "out.jsonl"
    summary = run(tmp_path / "in.jsonl", out, length, RunConfig(limits=Limits(max_text_chars=50_000)), progress=False)
    records = lines(out)
    reasons = {r["id"]: r["error"]["reason"] for r in records if "error" in r}
    assert reasons == {"empty": "empty post", "huge": "text too long", "zero": "empty image", "corrupt": "corrupt image",
                       "notimg": "not an image", "gone": "missing image", "ok1": "duplicate id",
                       "row-10": "invalid UTF-8", "row-11": "malformed JSON"}
    assert [r["id"] for r in records if "error" not in r] == ["ok1", "ok2"]
    assert records[1]["image"] == [8, 8]
    assert summary.errors == len(reasons) and summary.written == len(records)


def test_a_post_that_breaks_the_model_only_errors_itself(tmp_path):
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"id": str(i), "text": "boom" if i == 3 else "ok"}) + "\n"
                                               for i in range(6)), encoding="utf-8")

    def fragile(posts):
        if any(p.text == "boom" for p in posts):
            raise RuntimeError("model exploded")
        return length(posts)

    out = tmp_path / "out.jsonl"
    run(tmp_path / "in.jsonl", out, fragile, progress=False)
    records = lines(out)
    assert [r["id"] for r in records] == [str(i) for i in range(6)]
    assert records[3]["error"]["reason"] == "model error" and "exploded" in records[3]["error"]["message"]


def test_rerun_on_complete_output_writes_nothing(tmp_path):
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"id": str(i), "text": "t"}) + "\n" for i in range(5)),
                                       encoding="utf-8")
    out = tmp_path / "out.jsonl"
    run(tmp_path / "in.jsonl", out, length, progress=False)
    before = out.read_bytes()
    summary = run(tmp_path / "in.jsonl", out, length, progress=False)
    assert summary.written == 0 and summary.skipped_existing == 5 and out.read_bytes() == before


def test_readers_report_csv_problems_by_line(tmp_path):
    (tmp_path / "in.csv").write_bytes(b'id,text\na,fine\nb,"two",fields\nc,bad \xff\nd,"multi\nline"\n')
    items = list(read_rows(tmp_path / "in.csv"))
    assert [(i.id, i.line, getattr(i, "reason", None)) for i in items] == [
        ("a", 2, None), ("row-3", 3, "malformed row"), ("c", 4, "invalid UTF-8"), ("d", 5, None)]


SCRIPT = """
import sys, time
from pathlib import Path
from somelvlm.batch.runner import RunConfig, run

def slow(posts):
    time.sleep(0.02)
    return [{"chars": len(p.text)} for p in posts]

run(Path(sys.argv[1]), Path(sys.argv[2]), slow, RunConfig(batch_size=16), progress=False)
"""


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_sigkill_part_way_then_rerun_loses_and_duplicates_nothing(tmp_path, suffix):
    n = 2000
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"id": f"id{i}", "text": "x" * (i % 50 + 1)}) + "\n"
                                               for i in range(n)), encoding="utf-8")
    (tmp_path / "job.py").write_text(SCRIPT, encoding="utf-8")
    out = tmp_path / f"out{suffix}"
    progress_file = out if suffix == ".jsonl" else out.with_name(out.name + ".partial.jsonl")
    cmd = [sys.executable, str(tmp_path / "job.py"), str(tmp_path / "in.jsonl"), str(out)]
    proc = subprocess.Popen(cmd, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        if progress_file.exists() and progress_file.stat().st_size > 4000:
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(progress_file.read_text(encoding="utf-8").splitlines())
    assert 0 < done_before < n, "killed part-way"
    subprocess.run(cmd, check=True, timeout=120)
    ids = [r["id"] for r in (lines(out) if suffix == ".jsonl" else pq.read_table(out).to_pylist())]
    assert len(ids) == n and set(ids) == {f"id{i}" for i in range(n)}
