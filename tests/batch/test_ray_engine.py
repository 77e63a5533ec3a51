"""The Ray engine on a real local Ray (one per module, 2 CPUs): real tweets through a tiny compact model
give the local engine's records; a SIGKILLed actor loses and repeats nothing; a rerun does no work; a
folder of JSONL / CSV / Parquet shards with a corrupt one names it and finishes the others."""

from __future__ import annotations

import csv
import functools
import json
import os
import signal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'somelvlm[ray]')")
pytest.importorskip("peft")

from somelvlm.batch.ray_engine import RayConfig, connect, read_results, result_files, run_ray
from somelvlm.batch.runner import RunConfig, run

TASKS = ["emotion", "irony", "hate"]


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray for the module (2 CPUs, no dashboard, loopback); shut down at the end."""
    started = connect(RayConfig(workers=2, num_cpus=2))
    ray.cloudpickle.register_pickle_by_value(__import__(__name__))
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def tiny_compact(tiny_encoder, tmp_path_factory):
    """A compact model folder: tiny random encoder + LoRA + heads for TASKS."""
    from peft import LoraConfig, get_peft_model

    from somelvlm.models.compact import save_compact
    from somelvlm.models.encoder import encoder_digest, load_encoder
    from somelvlm.models.heads import MultiTaskNet
    from somelvlm.taxonomy.heads import head_spec

    lora = {"r": 4, "alpha": 8, "targets": ["query", "value"]}
    _, base = load_encoder(str(tiny_encoder))
    specs = [head_spec(t) for t in TASKS]
    net = MultiTaskNet(get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=lora["targets"])), specs)
    folder = tmp_path_factory.mktemp("tiny-compact") / "tiny-mini"
    save_compact(net.eval(), specs, folder, encoder=str(tiny_encoder), encoder_digest=encoder_digest(str(tiny_encoder)),
                 lora=lora, max_length=64)
    return folder


@pytest.fixture(scope="module")
def tweets(data_root) -> list[str]:
    path = data_root / "tweeteval" / "datasets" / "emotion" / "test_text.txt"
    return path.read_text(encoding="utf-8").splitlines()[:60]


def options(model) -> dict:
    return {"model": str(model), "tasks": TASKS, "ocr": False, "multimodal": False, "runtime": "torch", "threads": 1}


def write_posts(path: Path, tweets: list[str]) -> Path:
    """Real tweets as JSONL, with the bad rows the local engine turns into error records."""
    lines = [json.dumps({"id": f"t-{i}", "text": t}) for i, t in enumerate(tweets)]
    lines[5] = "{not json"                                    # malformed JSON -> line:6
    lines[9] = json.dumps({"id": "t-9", "text": ""})          # no text
    lines[12] = json.dumps({"id": "t-3", "text": "again"})    # repeated id -> line:13
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def by_id(rows: list[dict]) -> dict[str, dict]:
    return {r["id"]: {k: v for k, v in r.items() if v is not None} for r in rows}


def assert_same(local: dict[str, dict], distributed: dict[str, dict]) -> None:
    assert local.keys() == distributed.keys()
    for key, row in local.items():
        other = distributed[key]
        assert row.keys() == other.keys(), key
        for col, value in row.items():
            if isinstance(value, float):
                assert other[col] == pytest.approx(value, abs=1e-6), (key, col)
            else:
                assert other[col] == value, (key, col)


def local_records(tmp_path: Path, source: Path, model) -> dict[str, dict]:
    from somelvlm.pipeline import Pipeline

    out = tmp_path / "local.parquet"
    run(source, out, Pipeline(**options(model)), RunConfig(batch_size=8), progress=False)
    return by_id(pq.read_table(out).to_pylist())


def kill_once(pipeline_options: dict, marker: str, victim: str):
    """The real pipeline, in an actor that SIGKILLs itself the first time it meets post ``victim``."""
    from somelvlm.pipeline import Pipeline

    pipe = Pipeline(**pipeline_options)

    def predict(posts):
        if any(p.id == victim for p in posts) and not os.path.exists(marker):
            Path(marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return pipe(posts)

    return predict


def test_same_records_as_local_engine_after_a_worker_is_killed(local_ray, tiny_compact, tweets, tmp_path):
    source = write_posts(tmp_path / "posts.jsonl", tweets)
    out = tmp_path / "ray-out"
    marker = tmp_path / "killed.pid"
    summary = run_ray(source, out, options(tiny_compact), RayConfig(workers=2, block_rows=16), RunConfig(batch_size=8),
                      progress=False, make_predict=functools.partial(kill_once, marker=str(marker), victim="t-40"))
    assert marker.is_file(), "the actor was not killed"
    assert summary.failed == {}
    assert summary.blocks == 4 and summary.written == len(tweets)
    table = read_results(out)
    ids = table["id"].to_pylist()
    assert len(ids) == len(set(ids)) == len(tweets)          # every row exactly once
    got = by_id(table.to_pylist())
    assert got["line:6"]["error.reason"] == "malformed JSON" and got["line:6"]["line"] == 6
    assert got["t-9"]["error.reason"] == "empty post"
    assert got["line:13"]["error.reason"] == "duplicate id"
    assert got["t-0"]["emotion.label"] in {"anger", "joy", "optimism", "sadness"}
    assert_same(local_records(tmp_path, source, tiny_compact), got)

    # a rerun on the finished OUT_DIR does no work; after losing a block (a killed driver) only that one runs
    again = run_ray(source, out, options(tiny_compact), RayConfig(workers=2, block_rows=99), RunConfig(batch_size=8),
                    progress=False)
    assert (again.skipped_blocks, again.written) == (4, 0)
    result_files(out)[1].unlink()
    rest = run_ray(source, out, options(tiny_compact), RayConfig(workers=1), RunConfig(batch_size=8), progress=False)
    assert (rest.skipped_blocks, rest.written) == (3, 16)
    assert sorted(read_results(out)["id"].to_pylist()) == sorted(ids)


def test_folder_of_shards_with_a_corrupt_one(local_ray, tiny_compact, tweets, tmp_path):
    folder = tmp_path / "shards"
    (folder / "more").mkdir(parents=True)
    (folder / "a.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in tweets[:10]), encoding="utf-8")
    pq.write_table(pa.table({"id": [f"p-{i}" for i in range(10)], "text": tweets[10:20]}), folder / "more" / "b.parquet")
    with (folder / "c.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([["text"], *([t] for t in tweets[20:25])])
    (folder / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    (folder / "_SUCCESS").write_text("")
    out = tmp_path / "out"
    summary = run_ray(folder, out, options(tiny_compact), RayConfig(workers=2, block_rows=8), RunConfig(batch_size=4),
                      progress=False)
    assert list(summary.failed) == ["broken.parquet"] and "broken.parquet" in str(summary.failed)
    ids = read_results(out)["id"].to_pylist()
    assert len(ids) == len(set(ids)) == 25
    assert {"a.jsonl:line:1", "a.jsonl:line:10", "p-0", "p-9", "c.csv:line:2", "c.csv:line:6"} <= set(ids)


def test_unreachable_address_is_one_clear_error():
    with pytest.raises(ConnectionError, match="--address 127.0.0.1:9: no Ray cluster answers"):
        connect(RayConfig(address="127.0.0.1:9"))


def test_out_must_be_a_folder(tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"")
    with pytest.raises(ValueError, match="is a file"):
        run_ray(tmp_path / "in.jsonl", tmp_path / "x.parquet", {})


@pytest.fixture(scope="module")
def tiny_lvlm(tmp_path_factory):
    """A tiny generator folder (random 2-layer Llama + LoRA) that the lvlm backend loads in any process."""
    from gen_helpers import make_tiny_lm
    from peft import LoraConfig, get_peft_model

    from somelvlm.models.lvlm import LVLM, base_record, load_lm, save_lvlm

    root = tmp_path_factory.mktemp("ray-gen")
    lm, tok = load_lm(make_tiny_lm(root / "lm"))
    base = base_record(lm, str(root / "lm"))
    lm = get_peft_model(lm, LoraConfig(r=2, target_modules=["q_proj"]))
    return save_lvlm(root / "tiny-lvlm", LVLM(lm), tok, {"name": "tiny-lvlm", "base": base})


def test_generation_tasks_run_the_same_way(local_ray, tiny_compact, tiny_lvlm, tweets, tmp_path):
    from somelvlm.pipeline import Pipeline

    source = tmp_path / "posts.jsonl"
    source.write_text("".join(json.dumps({"id": f"g-{i}", "text": t}) + "\n" for i, t in enumerate(tweets[:12])),
                      encoding="utf-8")
    opts = options(tiny_compact) | {"tasks": ["emotion", "hashtags"], "generator": str(tiny_lvlm), "batch_size": 4}
    summary = run_ray(source, tmp_path / "out", opts, RayConfig(workers=2, block_rows=4), RunConfig(batch_size=4), progress=False)
    assert summary.failed == {} and summary.written == 12
    got = by_id(read_results(tmp_path / "out").to_pylist())
    assert sorted(got) == sorted(f"g-{i}" for i in range(12))
    assert all("hashtags.answer" in r and "emotion.label" in r for r in got.values())
    run(source, tmp_path / "local.parquet", Pipeline(**opts), RunConfig(batch_size=4), progress=False)
    assert_same(by_id(pq.read_table(tmp_path / "local.parquet").to_pylist()), got)


def test_shards_of_a_folder_by_uri(tmp_path):
    from somelvlm.batch.ray_engine import list_shards

    (tmp_path / "sub").mkdir()
    for name in ("b.jsonl", "sub/a.parquet", "notes.txt", ".hidden.jsonl", "_plan.json"):
        (tmp_path / name).write_text("x")
    shards = list_shards(f"file://{tmp_path}")
    assert [(s.name, s.format) for s in shards] == [("b.jsonl", "jsonl"), ("sub/a.parquet", "parquet")]
    assert shards[0].uri == f"file://{tmp_path}/b.jsonl"
    with pytest.raises(FileNotFoundError, match="not found"):
        list_shards(tmp_path / "missing")


def test_missing_ray_names_the_extra(monkeypatch):
    import sys

    from somelvlm.batch import ray_engine

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ImportError, match=r"pip install 'somelvlm\[ray\]'"):
        ray_engine._require_ray()


def test_analyze_engine_ray_on_the_command_line(local_ray, tiny_compact, tweets, tmp_path):
    """``somelvlm analyze INPUT --engine ray --out DIR`` runs the same pipeline as the local engine."""
    from somelvlm.cli import main

    src = write_posts(tmp_path / "posts.jsonl", tweets[:16])
    local = tmp_path / "local.jsonl"
    main(["analyze", str(src), "--out", str(local), "--model", str(tiny_compact), "--tasks", "emotion,irony",
          "--no-multimodal", "--no-show", "-q"])
    main(["analyze", str(src), "--out", str(tmp_path / "shards"), "--engine", "ray", "--workers", "1",
          "--model", str(tiny_compact), "--tasks", "emotion,irony", "--no-multimodal", "-q"])
    rows = by_id(read_results(tmp_path / "shards").to_pylist())
    assert json.loads((tmp_path / "shards.run.json").read_text())["tasks"] == ["emotion", "irony"]
    with pytest.raises(SystemExit):  # other tasks on the same --out: refused, nothing run
        main(["analyze", str(src), "--out", str(tmp_path / "shards"), "--engine", "ray", "--workers", "1",
              "--model", str(tiny_compact), "--tasks", "emotion", "--no-multimodal", "-q"])
    want = {r["id"]: r for r in map(json.loads, local.read_text(encoding="utf-8").splitlines())}
    assert set(rows) == set(want)
    for rid, row in want.items():  # the same labels, and the same error records for the bad rows
        if "error" in row:
            assert rows[rid]["error.reason"] == row["error"]["reason"]
        else:
            assert rows[rid]["emotion.label"] == row["emotion"]["label"]
