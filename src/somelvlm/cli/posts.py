"""The commands that run models over posts: ``analyze`` (files of posts, resumable) and ``generate``.

``-`` as the input reads posts (JSONL) from stdin; ``analyze --out -`` writes JSONL to stdout.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from somelvlm.batch.ray_engine import RayConfig
from somelvlm.batch.runner import RunConfig
from somelvlm.cli import common
from somelvlm.cli.commands import JSON, RUNTIME_HELP, Runtime, _Counted
from somelvlm.cli.common import (
    Progress,
    Stopped,
    Terminated,
    check_out,
    console,
    copy_to_stdout,
    err_console,
    stdin_file,
    stop_code,
)


@dataclass
class AnalyzeConfig:
    """Options of ``somelvlm analyze``."""

    input: str = field(metadata={"positional": True})
    """Posts: JSONL, CSV/TSV or Parquet; - reads JSONL posts from stdin."""
    out: str | None = None
    """JSONL or Parquet output, re-running skips the ids already there; - writes JSONL to stdout (default: none, a table per post is printed)."""
    tasks: list[str] = field(default_factory=list)
    """Task names (default: every head of the model)."""
    level: list[str] = field(default_factory=list, metadata={"flags": ["--level", "--levels"]})
    """Cognitive level ids."""
    model: str | None = None
    """Shipped model name or folder (default some-mini)."""
    text_col: str = "text"
    """Column with the post text."""
    image_col: str = "image"
    """Column with an image: a path (relative to the input's folder) or, in Parquet, the bytes."""
    id_col: str = "id"
    """Column with the post id (row number when absent)."""
    fmt: Literal["jsonl", "csv", "tsv", "parquet"] | None = field(default=None, metadata={"flags": ["--format"]})
    """Input format when the extension does not say."""
    ocr: bool = True
    """Read text off images that have no caption (--no-ocr: do not)."""
    multimodal: bool = True
    """Use the shipped image+text heads on posts with an image (where their image helps)."""
    withheld: bool = False
    """Also run the heads the model withholds by default (no better than trivial baselines on validation)."""
    runtime: Runtime = field(default="auto", metadata={"help": RUNTIME_HELP})
    show: bool | None = None
    """Print a table grouped by level (default: when there is no --out)."""
    rkc: Path | None = None
    """A retrieval index (somelvlm index build): adds a kNN (RKC) prediction per post."""
    generator: str | None = None
    """Generative model for generation tasks (detoxify, hashtags, ...) (default some-lvlm)."""
    run: RunConfig = field(default_factory=RunConfig)
    """How posts are batched, limited and retried."""
    engine: Literal["local", "ray"] = "local"
    """local: this process, --out a JSONL or Parquet file; ray: a Ray Data actor pool running the same
    pipeline (INPUT a file, a folder of shards or a URI; --out a folder of Parquet shards; rerun resumes)."""
    ray: RayConfig = field(default_factory=RayConfig)
    """The ray engine's actor pool (--ray.workers, --ray.address to join a cluster, ...)."""


def analyze(cfg: AnalyzeConfig) -> None:
    """Label every post for every chosen task; streamed, resumable, bad rows become error records."""
    from somelvlm.batch.runner import ModelFailing, run
    from somelvlm.pipeline import Pipeline

    if cfg.engine == "ray":
        return analyze_on_ray(cfg)

    with posts_input(cfg.input, cfg.fmt, cfg.run) as (source, run_config), analysis_output(cfg) as target:
        analyzer = Pipeline(cfg.model, cfg.tasks, cfg.level, ocr=cfg.ocr, multimodal=cfg.multimodal, rkc=cfg.rkc,
                            generator=cfg.generator, runtime=cfg.runtime, withheld=cfg.withheld)
        try:
            summary = run(source, target.path, analyzer, run_config, text_col=cfg.text_col,
                          image_col=cfg.image_col, id_col=cfg.id_col, fmt=cfg.fmt, progress=not common.QUIET,
                          fingerprint=analyzer.fingerprint())
        except (KeyboardInterrupt, Terminated) as stop:
            raise Stopped(stop_code(stop), target.interrupted()) from None
        except ModelFailing as err:
            raise Stopped(1, f"error: {err}") from None
        if not common.QUIET:
            err_console.print(f"{summary.written} posts written, {summary.skipped_existing} already there, "
                              f"{summary.errors} errors -> {target.name} ({summary.seconds:.1f} s)", markup=False)
        if cfg.show or (cfg.show is None and cfg.out is None):
            from somelvlm.views import analysis_tables

            for table in analysis_tables(target.path, analyzer.tasks):
                console.print(table)


def analyze_on_ray(cfg: AnalyzeConfig) -> None:
    """``analyze --engine ray``: the Pipeline in a Ray Data actor pool, Parquet shards in ``--out``."""
    from somelvlm.batch.ray_engine import run_ray

    if not cfg.out or cfg.out == "-":
        raise ValueError("--engine ray needs --out OUT_DIR (a folder for the Parquet shards)")
    options = {"model": cfg.model, "tasks": cfg.tasks or None, "levels": cfg.level or None, "generator": cfg.generator,
               "runtime": cfg.runtime, "ocr": cfg.ocr, "multimodal": cfg.multimodal, "withheld": cfg.withheld,
               "rkc": str(cfg.rkc) if cfg.rkc else None}
    from somelvlm.pipeline import Pipeline

    fingerprint = Pipeline(**options).fingerprint()  # what the actors will load, checked against OUT's run file
    try:
        summary = run_ray(cfg.input, cfg.out, options, cfg.ray, cfg.run, text_col=cfg.text_col,
                          image_col=cfg.image_col, id_col=cfg.id_col, fmt=cfg.fmt, progress=not common.QUIET,
                          fingerprint=fingerprint)
    except ConnectionError as err:
        raise ValueError(str(err)) from None
    if not common.QUIET:
        err_console.print(f"{summary.written} posts written in {summary.blocks - summary.skipped_blocks} blocks "
                          f"({summary.skipped_blocks} already done), {summary.errors} errors -> {cfg.out} "
                          f"({summary.seconds:.1f} s)", markup=False)
    if summary.failed:
        for name, why in summary.failed.items():
            err_console.print(f"failed: {name}: {why}", markup=False)
        raise Stopped(1, f"{len(summary.failed)} blocks gave no output; rerun the same command to retry them")


@contextlib.contextmanager
def posts_input(name: str, fmt: str | None, run: RunConfig) -> Iterator[tuple[Path, RunConfig]]:
    """The input file (``-``: a temporary copy of stdin, its image paths relative to the working
    folder) and the run config to read it with. A missing input or a folder fails before any model loads."""
    if name != "-":
        path = Path(name)
        if path.is_dir():
            raise IsADirectoryError(f"input {path}: is a directory; give a JSONL, CSV/TSV or Parquet file")
        if not path.is_file():
            raise FileNotFoundError(f"input {path} not found")
    with stdin_file(name, "." + (fmt or "jsonl")) as (path, from_stdin):
        if from_stdin and run.image_root is None:
            run = dataclasses.replace(run, image_root=Path.cwd())
        yield path, run


@dataclass
class _Target:
    """Where ``analyze`` writes: a file (``name``), or a temporary file for stdout / the tables."""

    path: Path
    name: str
    kind: Literal["file", "stdout", "none"]

    def records(self) -> int:
        """Records in the output so far (a Parquet output: its rows plus its journal's)."""
        count = 0
        for path in (self.path, self.path.with_name(self.path.name + ".partial.jsonl")):
            if not path.is_file():
                continue
            if path.suffix == ".parquet":
                import pyarrow.parquet as pq

                count += pq.ParquetFile(path).metadata.num_rows
            else:
                with path.open("rb") as f:
                    count += sum(1 for line in f if line.strip())
        return count

    def interrupted(self) -> str:
        n = self.records()
        if self.kind == "file":
            return f"interrupted: {n} posts written to {self.name}; rerun the same command to resume"
        if self.kind == "stdout":
            return f"interrupted: {n} posts written to stdout; to resume a run, give --out FILE"
        return f"interrupted after {n} posts; nothing was kept: give --out FILE to keep results and resume"


@contextlib.contextmanager
def analysis_output(cfg: AnalyzeConfig) -> Iterator[_Target]:
    """The output of ``analyze``: ``--out FILE`` (checked before the model loads), ``-`` (JSONL on
    stdout, also when interrupted) or none (a temporary file for the tables, removed after)."""
    if cfg.out not in (None, "-"):
        yield _Target(check_out(Path(cfg.out)), cfg.out, "file")
        return
    if cfg.out == "-" and cfg.show:
        raise ValueError("--show prints tables on stdout, which --out - uses for JSONL: drop one of them")
    with tempfile.TemporaryDirectory(prefix="somelvlm-") as folder:
        target = _Target(Path(folder) / "analysis.jsonl", "stdout" if cfg.out else "(no --out)",
                         "stdout" if cfg.out else "none")
        try:
            yield target
        finally:
            if target.kind == "stdout":
                copy_to_stdout(target.path)


# -- generate --------------------------------------------------------------------------------------
@dataclass
class GenerateConfig:
    """Options of ``somelvlm generate``."""

    task: str = field(metadata={"positional": True})
    """A generation or classification task, e.g. detoxify, hashtags."""
    text: list[str] = field(default_factory=list, metadata={"commas": False})
    """A post."""
    input: str | None = None
    """Posts file (JSONL with 'text' and optional 'image' and 'id'); - reads it from stdin."""
    image: list[Path] = field(default_factory=list, metadata={"commas": False})
    """An image going with each --text."""
    model: str = "some-lvlm"
    """Generative model: shipped name or folder."""
    prompt_index: int = 0
    """Which of the task's prompt templates."""
    max_new_tokens: int = 64
    """Upper bound on tokens per answer."""
    batch_size: int = 8
    """Prompts per model call."""
    as_json: bool = field(default=False, metadata=JSON)
    """Print JSONL (id, the input post's text, the answer, label / value) instead of a table."""


def generate(cfg: GenerateConfig) -> None:
    """Run one task by generation over posts: rewrites, explanations, hashtags or parsed labels."""
    from somelvlm.batch.runner import read_posts
    from somelvlm.generate import generate_task
    from somelvlm.models import load_generator
    from somelvlm.taxonomy.registry import get_task

    with stdin_file(cfg.input, ".jsonl", image_base=Path.cwd()) if cfg.input else contextlib.nullcontext(
            (None, False)) as (path, _):
        posts, errors = read_posts(cfg.text, cfg.image, path)
    for e in errors:  # bad rows: one line each; the other posts go on
        err_console.print(f"skipped {e['id']} (line {e['line']}): {e['error']['reason']}: {e['error']['message']}",
                          markup=False)
    get_task(cfg.task)  # an unknown task fails before the model loads
    generator = load_generator(cfg.model)
    with Progress(len(posts) > cfg.batch_size) as bar:
        bar.update(f"generate {cfg.task}", 0, len(posts))
        rows = generate_task(cfg.task, posts, model=_Counted(generator, "generate", bar, f"generate {cfg.task}"),
                             prompt_index=cfg.prompt_index, max_new_tokens=cfg.max_new_tokens,
                             batch_size=cfg.batch_size)
    if cfg.as_json:
        for row in rows + errors:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        return
    from rich.table import Table

    table = Table(title=f"{cfg.task} by {cfg.model}")
    for col in ("id", "text", "answer", "label"):
        table.add_column(col)
    for row in rows:
        table.add_row(str(row["id"]), row["text"][:80], row["answer"], str(row.get("label", row.get("value", ""))))
    console.print(table)
