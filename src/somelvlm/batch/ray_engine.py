"""``somelvlm analyze INPUT --engine ray --out OUT_DIR``: the batch runner's work spread over a Ray
cluster (``pip install 'somelvlm[ray]'``), running the same ``Pipeline`` in an actor pool.

How a run goes:

1. **Shards.** INPUT is a JSONL / CSV / TSV / Parquet file, a folder of such shards (searched
   recursively; names starting with ``.`` or ``_`` are skipped), or a URI that pyarrow's
   filesystems (``s3://``, ``gs://``, ``hdfs://``, ``file://``) or fsspec understand.
2. **Blocks.** Each shard's rows are counted (in parallel Ray tasks) and cut into blocks of
   ``RayConfig.block_rows`` rows, in file order. The plan is saved as ``OUT_DIR/_plan.json`` and
   reused by every rerun, so a block always holds the same rows. Block ids name the shard (a
   digest of its path inside INPUT) and the block's number: adding shards to a folder later
   leaves the old blocks as they were.
3. **Actors.** Ray Data runs ``BlockWorker`` with ``map_batches`` in a pool of ``workers``
   actors (``num_cpus_per_worker`` each); each actor builds the Pipeline once. An actor reads its
   block's rows with ``batch.readers`` (so malformed lines, line numbers and repeated ids come out
   exactly as in the local engine), runs ``batch.runner.process`` on batches of ``batch_size``
   posts, and writes the block's records to ``OUT_DIR/part-<block id>.parquet`` atomically, with
   the local engine's Parquet schema (``batch.output.finish_parquet``).
4. **Exactly once.** A block's shard appears whole or not at all and is named by the block, so
   a killed actor (restarted by Ray, its task retried: ``max_restarts`` / ``max_task_retries``)
   or a killed driver never loses or repeats a row; a rerun skips blocks whose shard exists.
   A block that raises (a corrupt shard, a model failing ``stop_after_model_errors`` posts in a
   row) writes nothing; it is run again ``retries`` times, then reported in ``RaySummary.failed``
   naming its shard, while the other blocks go on.

Ids are the readers' ids; for a folder of shards, the readers' ``row-N`` ids (rows without an id)
become ``SHARD:row-N`` so they stay unique. Ids given in the data must be unique across shards
(repeats within one shard become ``duplicate id`` error records, as locally).

OUT_DIR must be a folder every node can write (a local disk for a local Ray, a shared file system
on a cluster: object stores have no atomic rename). ``read_results(OUT_DIR)`` reads all shards as
one table.

>>> summary = run_ray("posts/", "out/labels", {"model": "some-mini", "tasks": ["emotion"]},
...                   RayConfig(workers=2))                                   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import socket
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from itertools import islice
from pathlib import Path
from typing import Any

from somelvlm.atomic import atomic_write_text
from somelvlm.batch import output
from somelvlm.batch.readers import FORMATS, Row, RowError, detect_format, line_id, read_rows
from somelvlm.batch.runner import Predict, RunConfig, RunSummary, _check_model, _encode, process

PLAN_FILE = "_plan.json"
PLAN_VERSION = 1
RAY_EXTRA = "the ray engine needs the ray extra: pip install 'somelvlm[ray]'"


@dataclass
class RayConfig:
    """How a Ray run spreads its work."""

    workers: int = 2
    """Actors in the pool; each loads the pipeline once."""
    address: str | None = None
    """A running cluster to join (``HOST:PORT`` of ``ray start --head``, ``ray://HOST:PORT`` or
    ``auto``); None starts a local Ray on this machine (no dashboard, loopback only)."""
    num_cpus_per_worker: float = 1.0
    """CPUs Ray reserves for each actor (also its torch / ONNX threads, at least 1)."""
    block_rows: int = 2000
    """Rows per block: the unit of scheduling, retry and resume (one output shard each). Fixed for an
    OUT_DIR by its first run."""
    num_gpus_per_worker: float = 0.0
    """GPUs per actor (vLLM or HF generation on a GPU cluster)."""
    num_cpus: int | None = None
    """CPUs of the local Ray this starts (default: enough for the workers); ignored with ``address``."""
    max_restarts: int = 3
    """How often Ray restarts an actor that died (killed, out of memory)."""
    max_task_retries: int = 3
    """How often Ray retries a block whose actor died while running it."""
    retries: int = 1
    """How often a block that raised is run again before it is reported as failed."""

    def __post_init__(self) -> None:
        for name in ("workers", "block_rows"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.num_cpus_per_worker <= 0:
            raise ValueError(f"--num-cpus-per-worker must be positive, got {self.num_cpus_per_worker}")
        if self.retries < 0 or self.num_gpus_per_worker < 0:
            raise ValueError("retries and num_gpus_per_worker must be >= 0")


@dataclass
class RaySummary:
    """What one ``run_ray`` call did."""

    blocks: int
    """Blocks in the plan."""
    skipped_blocks: int
    """Blocks whose shard was already in OUT_DIR (not run again)."""
    written: int
    """Records written by this call, error records included."""
    errors: int
    """Error records among ``written``."""
    failed: dict[str, str] = field(default_factory=dict)
    """Shards or blocks that gave no output, with why; a rerun tries them again."""
    seconds: float = 0.0
    out_dir: Path | None = None


@dataclass(frozen=True)
class Shard:
    """One input file: where it is (``uri``: a local path or a URI), its name inside INPUT, format, size."""

    uri: str
    name: str
    format: str
    size: int


# ----- input --------------------------------------------------------------------------------------

def _filesystem(uri: str):
    """``(pyarrow filesystem, path in it)`` for a local path or any URI pyarrow or fsspec knows."""
    from pyarrow import fs

    if "://" not in uri:
        return fs.LocalFileSystem(), str(Path(uri).resolve())
    try:
        return fs.FileSystem.from_uri(uri)
    except (ValueError, OSError, ImportError):
        import fsspec

        filesystem, path = fsspec.core.url_to_fs(uri)
        return fs.PyFileSystem(fs.FSSpecHandler(filesystem)), path


def _is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def list_shards(input: str | Path, fmt: str | None = None) -> list[Shard]:
    """The input files of a run, in a stable order; ``FileNotFoundError`` / ``ValueError`` naming INPUT."""
    from pyarrow import fs

    uri = str(input)
    filesystem, path = _filesystem(uri)
    info = filesystem.get_file_info(path)
    if info.type == fs.FileType.NotFound:
        raise FileNotFoundError(f"input {uri} not found")
    if info.type == fs.FileType.File:
        return [Shard(path if "://" not in uri else uri, Path(path).name, detect_format(Path(path), fmt), info.size)]
    shards = []
    prefix = uri.rstrip("/") if "://" in uri else path.rstrip("/")
    for item in filesystem.get_file_info(fs.FileSelector(path, recursive=True)):
        rel = item.path[len(path.rstrip("/")):].lstrip("/")
        if item.type != fs.FileType.File or any(part.startswith((".", "_")) for part in rel.split("/")):
            continue
        if fmt is None and Path(rel).suffix.lower() not in FORMATS:
            continue
        shards.append(Shard(f"{prefix}/{rel}", rel, detect_format(Path(rel), fmt), item.size))
    if not shards:
        raise ValueError(f"no JSONL / CSV / TSV / Parquet files under {uri} (or give --format)")
    return sorted(shards, key=lambda s: s.name)


class _LocalCopies:
    """Local paths of shards: local files as they are, remote ones copied once into a temp folder."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.copies: dict[str, Path] = {}

    def path(self, shard: Shard) -> Path:
        if _is_local(shard.uri):
            return Path(shard.uri.removeprefix("file://"))
        if shard.uri not in self.copies:
            self.folder = self.folder or Path(tempfile.mkdtemp(prefix="somelvlm-shards-"))
            filesystem, path = _filesystem(shard.uri)
            target = self.folder / f"{len(self.copies):05d}{Path(shard.name).suffix}"
            with filesystem.open_input_stream(path) as src, target.open("wb") as dst:
                while chunk := src.read(1 << 22):
                    dst.write(chunk)
            self.copies[shard.uri] = target
        return self.copies[shard.uri]


def count_rows(shard: Shard, columns: dict[str, str]) -> int:
    """Rows ``read_rows`` yields for a shard (error rows included): Parquet from its metadata, JSONL
    as its non-blank lines, CSV / TSV by reading it."""
    path = _LocalCopies().path(shard)
    if shard.format == "parquet":
        import pyarrow.parquet as pq

        read_rows(path, fmt="parquet", **columns)  # checks the columns
        return pq.ParquetFile(path).metadata.num_rows
    rows = read_rows(path, fmt=shard.format, **columns)
    if shard.format == "jsonl":
        with path.open("rb") as f:
            return sum(1 for line in f if line.strip())
    return sum(1 for _ in rows)


# ----- the plan -----------------------------------------------------------------------------------

def block_file(block: str) -> str:
    return f"part-{block}.parquet"


def _block_prefix(shard: Shard) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(shard.name).stem)[:40] or "shard"
    return f"{stem}-{hashlib.sha1(shard.name.encode('utf-8')).hexdigest()[:8]}"


def plan_blocks(shards: list[Shard], out_dir: Path, block_rows: int, counter: Callable[[list[Shard]], list]
                ) -> tuple[list[dict], dict[str, str]]:
    """``(blocks, unreadable shards with why)``. Shards already in ``OUT_DIR/_plan.json`` keep their
    blocks (a shard whose size changed is an error: its old output would mix with new rows); the
    others are counted with ``counter`` and added to the plan."""
    plan_path = out_dir / PLAN_FILE
    plan = json.loads(plan_path.read_text(encoding="utf-8")) if plan_path.is_file() else {}
    if plan and plan.get("version") != PLAN_VERSION:
        raise ValueError(f"{plan_path} was written by another somelvlm version: choose a new --out")
    known: dict[str, dict] = plan.get("shards", {})
    block_rows = plan.get("block_rows", block_rows)
    for shard in shards:
        entry = known.get(shard.name)
        if entry is not None and entry["size"] != shard.size:
            raise ValueError(f"shard {shard.name} changed since {out_dir} was written ({entry['size']} -> "
                             f"{shard.size} bytes): choose a new --out, or move the old output away")
    new = [s for s in shards if s.name not in known]
    unreadable: dict[str, str] = {}
    for shard, counted in zip(new, counter(new) if new else [], strict=True):
        if isinstance(counted, str):
            unreadable[shard.name] = counted
        else:
            known[shard.name] = {"size": shard.size, "format": shard.format, "rows": counted}
    if new and len(unreadable) < len(new):
        atomic_write_text(plan_path, json.dumps({"version": PLAN_VERSION, "block_rows": block_rows,
                                                 "shards": known}, indent=1))
    blocks = []
    for shard in shards:
        entry = known.get(shard.name)
        if entry is None:
            continue
        for k in range(math.ceil(entry["rows"] / block_rows)):
            start = k * block_rows
            blocks.append({"block": f"{_block_prefix(shard)}-{k:06d}", "uri": shard.uri, "name": shard.name,
                           "format": shard.format, "size": shard.size, "start": start,
                           "stop": min(start + block_rows, entry["rows"])})
    return blocks, unreadable


# ----- the actors ---------------------------------------------------------------------------------

def make_pipeline(pipeline_options: dict) -> Predict:
    """The default ``make_predict``: ``Pipeline(**pipeline_options)``."""
    from somelvlm.pipeline import Pipeline

    return Pipeline(**pipeline_options)


class BlockWorker:
    """A Ray Data actor: builds the pipeline once, then turns each block descriptor it is given into
    the block's output shard. Returns one summary row per block (``written``, ``errors``, ``failed``)."""

    def __init__(self, pipeline_options: dict, run_config: RunConfig, out_dir: str, columns: dict[str, str],
                 prefix_ids: bool, make_predict: Callable[[dict], Predict] | None = None) -> None:
        self.predict = (make_predict or make_pipeline)(pipeline_options)
        self.config, self.out_dir, self.columns = run_config, Path(out_dir), columns
        self.prefix_ids = prefix_ids
        self.copies = _LocalCopies()
        self.scratch = Path(tempfile.mkdtemp(prefix="somelvlm-blocks-"))

    def __call__(self, batch: dict) -> dict:
        out: dict[str, list] = {"block": [], "written": [], "errors": [], "failed": []}
        for i in range(len(batch["block"])):
            desc = {key: _plain(values[i]) for key, values in batch.items()}
            try:
                written, errors, failed = *self.run_block(desc), ""
            except Exception as err:  # noqa: BLE001 - reported per block, the other blocks go on
                failed = f"shard {desc['name']} (block {desc['block']}): {type(err).__name__}: {err}"
                written, errors = 0, 0
            for key, value in zip(out, (desc["block"], written, errors, failed), strict=True):
                out[key].append(value)
        return out

    def run_block(self, desc: dict) -> tuple[int, int]:
        """Process one block's rows and write its shard atomically; ``(records, error records)``."""
        shard = Shard(desc["uri"], desc["name"], desc["format"], int(desc["size"]))
        path = self.copies.path(shard)
        image_root = Path(self.config.image_root) if self.config.image_root else (
            path.resolve().parent if _is_local(shard.uri) else Path.cwd())
        rows = islice(read_rows(path, fmt=shard.format, **self.columns), int(desc["start"]), int(desc["stop"]))
        journal = self.scratch / f"{desc['block']}.jsonl"
        summary = RunSummary(0, 0, 0, 0.0, journal)
        streak = 0
        with journal.open("wb") as sink:
            for batch in _chunks(rows, self.config.batch_size):
                batch = [self._renamed(row, shard) for row in batch]
                records = process(batch, self.predict, self.config.limits, image_root)
                streak = _check_model(records, streak, self.config.stop_after_model_errors, summary)
                encoded = [_encode(r, row) for r, row in zip(records, batch, strict=True)]
                sink.write(b"".join(line for line, _ in encoded))
                summary.written += len(encoded)
                summary.errors += sum(failed for _, failed in encoded)
        output.finish_parquet(journal, self.out_dir / block_file(desc["block"]))
        journal.unlink()
        return summary.written, summary.errors

    def _renamed(self, row: Row | RowError, shard: Shard) -> Row | RowError:
        """Rows without an id (``line:N``) of a folder of shards become ``SHARD:line:N``."""
        if not self.prefix_ids or row.id != line_id(row.line):
            return row
        return replace(row, id=f"{shard.name}:{row.id}")


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _chunks(rows, size: int) -> Iterator[list]:
    while chunk := list(islice(rows, size)):
        yield chunk


def _count_task(shards: list[Shard], columns: dict[str, str]) -> list[int | str]:
    """Row counts, or why a shard cannot be read."""
    counts: list[int | str] = []
    for shard in shards:
        try:
            counts.append(count_rows(shard, columns))
        except Exception as err:  # noqa: BLE001 - a corrupt shard is named, the others go on
            counts.append(f"{type(err).__name__}: {err}")
    return counts


# ----- the driver ---------------------------------------------------------------------------------

def _require_ray():
    try:
        import ray
        import ray.data
    except ImportError as err:
        raise ImportError(f"{RAY_EXTRA} ({err})") from None
    return ray


def connect(config: RayConfig) -> bool:
    """Join the cluster at ``config.address``, or start a local Ray; True when this call started it
    (and should shut it down). An address nobody answers on raises ``ConnectionError`` at once."""
    import logging

    ray = _require_ray()
    if config.address and config.address != "auto":
        hostport = config.address.removeprefix("ray://")
        host, _, port = hostport.rpartition(":")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
        except (OSError, ValueError) as err:
            raise ConnectionError(f"--address {config.address}: no Ray cluster answers there ({err}); start "
                                  "one with `ray start --head` or leave --address out for a local Ray") from None
    if ray.is_initialized():
        return False
    if config.address:
        ray.init(address=config.address, logging_level=logging.WARNING, log_to_driver=False)
    else:
        cpus = config.num_cpus or max(1, math.ceil(config.workers * config.num_cpus_per_worker))
        ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False,
                 _node_ip_address="127.0.0.1")
    return True


def run_ray(input: str | Path, out_dir: str | Path, pipeline_options: dict, config: RayConfig | None = None,
            run_config: RunConfig | None = None, *, text_col: str = "text", image_col: str = "image",
            id_col: str = "id", fmt: str | None = None, progress: bool = True,
            make_predict: Callable[[dict], Predict] | None = None, fingerprint: dict | None = None) -> RaySummary:
    """Run ``Pipeline(**pipeline_options)`` over every row of ``input`` into Parquet shards in
    ``out_dir`` on Ray; see the module doc. ``run_config`` carries the local engine's limits, image
    root and model-failure stop (``retry_errors`` is not supported here). ``make_predict`` builds the
    predict function in each actor from ``pipeline_options`` (default: the Pipeline). ``fingerprint``:
    what decides the answers (``Pipeline.fingerprint()``); a rerun whose fingerprint differs from the
    one recorded beside ``out_dir`` (``OUT_DIR.run.json``) is refused before any block runs."""
    start = time.perf_counter()
    config = config or RayConfig()
    run_config = run_config or RunConfig()  # its batch_size: posts per pipeline call inside a block
    if run_config.retry_errors:
        raise ValueError("--retry-errors is not supported by the ray engine: move the shards with errors away "
                         "and rerun, or use the local engine")
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file: the ray engine writes a folder of Parquet shards")
    shards = list_shards(input, fmt)
    out_dir.mkdir(parents=True, exist_ok=True)
    if fingerprint is not None:
        from somelvlm.batch.output import check_run

        check_run(out_dir, fingerprint, resuming=any(out_dir.glob("*.parquet")))
    columns = {"text_col": text_col, "image_col": image_col, "id_col": id_col}
    ray = _require_ray()
    started = connect(config)
    try:
        _quiet_data(ray, progress)
        counter = _remote_counter(ray, columns)
        blocks, failed = plan_blocks(shards, out_dir, config.block_rows, counter)
        todo = [b for b in blocks if not (out_dir / block_file(b["block"])).is_file()]
        summary = RaySummary(len(blocks), len(blocks) - len(todo), 0, 0, dict(failed), out_dir=out_dir)
        options = {"threads": max(1, int(config.num_cpus_per_worker))} | dict(pipeline_options)
        worker_args = {"pipeline_options": options, "run_config": run_config, "out_dir": str(out_dir.resolve()),
                       "columns": columns, "prefix_ids": len(shards) > 1 or _is_folder(input),
                       "make_predict": make_predict}
        last_errors: dict[str, str] = {}
        for _attempt in range(1 + config.retries):
            if not todo:
                break
            results = _execute(ray, todo, worker_args, config)
            summary.written += sum(r["written"] for r in results)
            summary.errors += sum(r["errors"] for r in results)
            done = {r["block"] for r in results if not r["failed"]}
            last_errors = {r["block"]: r["failed"] for r in results if r["failed"]}
            todo = [b for b in todo if b["block"] not in done]
        summary.failed.update({b["block"]: last_errors.get(b["block"], "Ray returned no result for it") for b in todo})
    finally:
        if started:
            ray.shutdown()
    summary.seconds = time.perf_counter() - start
    return summary


def _is_folder(input: str | Path) -> bool:
    from pyarrow import fs

    filesystem, path = _filesystem(str(input))
    return filesystem.get_file_info(path).type == fs.FileType.Directory


def _quiet_data(ray, progress: bool) -> None:
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = progress
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = progress


def _remote_counter(ray, columns: dict[str, str]) -> Callable[[list[Shard]], list]:
    """Count rows of many shards in parallel Ray tasks (a few shards per task)."""
    def count(shards: list[Shard]) -> list:
        task = ray.remote(num_cpus=0.5)(_count_task)
        groups = [shards[i:i + 8] for i in range(0, len(shards), 8)]
        return [c for counts in ray.get([task.remote(g, columns) for g in groups]) for c in counts]
    return count


def _execute(ray, todo: list[dict], worker_args: dict, config: RayConfig) -> list[dict]:
    """Run the blocks in ``todo`` on an actor pool; one summary dict per block."""
    items = [{k: b[k] for k in ("block", "uri", "name", "format", "size", "start", "stop")} for b in todo]
    dataset = ray.data.from_items(items, override_num_blocks=len(items))
    # Ray Data has no named parameter for actor fault tolerance yet; its extra-kwargs route warns that it
    # goes in Ray 2.64 (Ray's own defaults, unbounded restarts and retries, would then apply).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
        results = dataset.map_batches(BlockWorker, fn_constructor_kwargs=worker_args, batch_size=1,
                                      concurrency=min(config.workers, len(items)), num_cpus=config.num_cpus_per_worker,
                                      num_gpus=config.num_gpus_per_worker or None, max_restarts=config.max_restarts,
                                      max_task_retries=config.max_task_retries)
    return [{k: _plain(v) for k, v in row.items()} for row in results.iter_rows()]


# ----- reading the output -------------------------------------------------------------------------

def result_files(out_dir: str | Path) -> list[Path]:
    """The output shards of a run, in block order."""
    return sorted(Path(out_dir).glob("part-*.parquet"))


def read_results(out_dir: str | Path):
    """Every shard of a Ray run as one pyarrow Table (columns unified across shards, as the local
    engine unifies them within its file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(path) for path in result_files(out_dir)]
    if not tables:
        return pa.table({"id": pa.array([], pa.string())})
    fields: dict[str, Any] = {}
    for table in tables:
        for f in table.schema:
            fields[f.name] = output._merge_type(fields[f.name], f.type) if f.name in fields else f.type
    schema = pa.schema(list(fields.items()))
    return pa.concat_tables([output._conform(t, schema) for t in tables])


