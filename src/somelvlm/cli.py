"""The ``somelvlm`` command: a thin mapping from sub-commands to typed functions.

Each command calls one function of the Python API with the same arguments, so the CLI, the API
and config files share one signature. Errors a user can fix print one line and exit with 2.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from somelvlm.registry import UnknownNameError

app = typer.Typer(help="Social-media posts through language and vision-language models.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
tasks_app = typer.Typer(help="The cognitive framework's tasks, grouped by level.", invoke_without_command=True)
data_app = typer.Typer(help="Real data: adapters and the SoMeData instruction builder.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")
app.add_typer(data_app, name="data")
train_app = typer.Typer(help="Training recipes (flat scripts behind YAML configs).", no_args_is_help=True)
app.add_typer(train_app, name="train")

console = Console()
err_console = Console(stderr=True)


def _default_data_root() -> Path:
    return Path(os.environ.get("SOMELVLM_DATA", "../shared/data"))


@tasks_app.callback()
def tasks(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    level: Annotated[list[str] | None, typer.Option(help="Only these level ids (repeatable).")] = None,
) -> None:
    """List every task grouped by cognitive level."""
    if ctx.invoked_subcommand is not None:
        return
    from somelvlm.taxonomy.registry import select_tasks
    from somelvlm.taxonomy.views import tasks_json, tasks_table

    chosen = select_tasks(levels=level or [])
    if as_json:
        print(json.dumps(tasks_json(chosen), indent=1, ensure_ascii=False))
    else:
        console.print(tasks_table(chosen))


@tasks_app.command("show")
def tasks_show(
    name: Annotated[str, typer.Argument(help="Task name, e.g. emotion.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Show one task: level, labels, metrics, sources and its prompt templates."""
    from somelvlm.taxonomy.registry import get_task
    from somelvlm.taxonomy.views import task_json, task_panel

    task = get_task(name)
    if as_json:
        print(json.dumps(task_json(task), indent=1, ensure_ascii=False))
    else:
        console.print(task_panel(task))


@data_app.command("build")
def data_build(
    out: Annotated[Path, typer.Option(help="Output folder (replaced atomically).")],
    data_root: Annotated[Path, typer.Option(help="Folder with the upstream sources [env SOMELVLM_DATA].",
                                            default_factory=_default_data_root, show_default="../shared/data")],
    tasks: Annotated[list[str] | None, typer.Option("--tasks", help="Task names (repeatable or comma-separated).")] = None,
    levels: Annotated[list[str] | None, typer.Option("--levels", help="Level ids (repeatable or comma-separated).")] = None,
    max_per_task: Annotated[int | None, typer.Option(help="At most N records per task and split.")] = None,
) -> None:
    """Build SoMeData: instruction records (JSONL + Parquet), stats.md and a build report."""
    import time

    from somelvlm.data.somedata import BuildConfig, build

    config = BuildConfig(data_root=data_root, out=out, tasks=_split_commas(tasks),
                         levels=_split_commas(levels), max_per_task=max_per_task)
    start = time.perf_counter()
    with console.status("reading sources...") as status:
        result = build(config, progress=lambda msg: (console.log(msg), status.update(msg)))
    total = sum(result.counts.values())
    problems = len(result.report.problems)
    console.print(f"[bold]{total}[/] records in {len(result.counts)} task/split groups -> {result.out} "
                  f"({time.perf_counter() - start:.1f} s)")
    console.print(f"{problems} bad inputs skipped or kept without image: see {result.out / 'report.md'}")
    console.print((result.out / "stats.md").read_text(encoding="utf-8"))


@train_app.command("heads")
def train_heads(
    config: Annotated[Path, typer.Option(help="Recipe YAML, e.g. configs/some-mini.yaml.")],
    out: Annotated[Path | None, typer.Option(help="Override the config's output folder.")] = None,
    data_root: Annotated[Path | None, typer.Option(help="Override the data root [env SOMELVLM_DATA].")] = None,
    tiny: Annotated[bool, typer.Option(help="Smoke test: a few items per task, one short epoch.")] = False,
) -> None:
    """Train the compact model's encoder (LoRA) and task heads; resumes from OUT/checkpoint.pt."""
    from somelvlm.train.heads import HeadsConfig, train

    root = data_root or (Path(os.environ["SOMELVLM_DATA"]) if "SOMELVLM_DATA" in os.environ else None)
    cfg = HeadsConfig.from_yaml(config, out=str(out) if out else None,
                                data_root=str(root) if root else None, tiny=tiny or None)
    if not Path(cfg.data_root).is_dir():
        raise FileNotFoundError(f"data root {cfg.data_root} not found: pass --data-root (or set SOMELVLM_DATA)")
    state = train(cfg, log=console.log)
    console.print(f"best validation mean {state['best']:.2f}; model in {Path(cfg.out) / 'model'}")


INT8_HELP = ("--int8: torch dynamic int8 encoder, opt-in only: its activation scale is computed per batch, so a "
             "post's answer depends on the other posts in its batch; --fp32 (default): the same answer whatever the batch.")
RUNTIME_HELP = ("Encoder runtime: auto (onnx when onnxruntime is installed, else torch), onnx (ONNX Runtime fp32, "
                "fast), torch (torch fp32), torch-int8 (= --int8, batch-dependent).")


@app.command("analyze")
def analyze_cmd(
    input: Annotated[Path, typer.Argument(help="Posts: JSONL, CSV/TSV or Parquet.")],
    out: Annotated[Path | None, typer.Option(help="JSONL or Parquet output; re-running skips ids already there.")] = None,
    tasks: Annotated[list[str] | None, typer.Option("--tasks", help="Task names (repeatable or comma-separated).")] = None,
    level: Annotated[list[str] | None, typer.Option("--level", help="Cognitive level ids (repeatable or comma-separated).")] = None,
    model: Annotated[str | None, typer.Option(help="Shipped model name or folder [some-mini].")] = None,
    text_col: Annotated[str, typer.Option(help="Column with the post text.")] = "text",
    image_col: Annotated[str, typer.Option(help="Column with an image: a path (relative to the input's folder) or, in Parquet, the bytes.")] = "image",
    id_col: Annotated[str, typer.Option(help="Column with the post id (row number when absent).")] = "id",
    batch_size: Annotated[int, typer.Option(help="Posts per model call.")] = 64,
    image_root: Annotated[Path | None, typer.Option(help="Folder relative image paths resolve against [the input's folder].")] = None,
    retry_errors: Annotated[bool, typer.Option("--retry-errors", help="Run again the rows whose earlier result was an error record.")] = False,
    fmt: Annotated[str | None, typer.Option("--format", help="Input format when the extension does not say: jsonl, csv, tsv, parquet.")] = None,
    no_ocr: Annotated[bool, typer.Option("--no-ocr", help="Do not read text off images without a caption.")] = False,
    int8: Annotated[bool, typer.Option("--int8/--fp32", help=INT8_HELP)] = False,
    runtime: Annotated[str, typer.Option(help=RUNTIME_HELP)] = "auto",
    show: Annotated[bool | None, typer.Option("--show/--no-show", help="Print a table grouped by level (default: when no --out).")] = None,
) -> None:
    """Label every post for every chosen task; streamed, resumable, bad rows become error records."""
    import tempfile

    from somelvlm.analysis import Analyzer
    from somelvlm.batch.runner import RunConfig, run

    if not input.is_file():
        raise FileNotFoundError(f"input {input} not found")
    analyzer = Analyzer(model, _split_commas(tasks), _split_commas(level), int8=int8, ocr=not no_ocr,
                        runtime=runtime)
    target = out or Path(tempfile.mkdtemp(prefix="somelvlm-")) / "analysis.jsonl"
    from somelvlm.batch.runner import ModelFailing

    try:
        summary = run(input, target, analyzer, RunConfig(batch_size=batch_size, image_root=image_root,
                                                         retry_errors=retry_errors),
                      text_col=text_col, image_col=image_col, id_col=id_col, fmt=fmt)
    except ModelFailing as err:
        err_console.print(f"[red]error:[/] {err}")
        sys.exit(1)
    err_console.print(f"{summary.written} posts written, {summary.skipped_existing} already there, "
                      f"{summary.errors} errors -> {summary.out} ({summary.seconds:.1f} s)")
    if show or (show is None and out is None):
        from somelvlm.views import analysis_tables

        for table in analysis_tables(target, analyzer.tasks):
            console.print(table)


@app.command("eval")
def eval_cmd(
    model: Annotated[str | None, typer.Option(help="Shipped model name or folder [some-mini].")] = None,
    tasks: Annotated[list[str] | None, typer.Option("--tasks", help="Task names (default: every head).")] = None,
    split: Annotated[str, typer.Option(help="test or val.")] = "test",
    data_root: Annotated[Path | None, typer.Option(help="Folder with the upstream sources [env SOMELVLM_DATA, else ../shared/data].")] = None,
    out: Annotated[Path, typer.Option(help="Writes OUT.json and OUT.md.")] = Path("out/eval/results"),
    limit: Annotated[int | None, typer.Option(help="At most N items per task (a fixed sample).")] = None,
    int8: Annotated[bool, typer.Option("--int8/--fp32", help=INT8_HELP)] = False,
    runtime: Annotated[str, typer.Option(help=RUNTIME_HELP)] = "auto",
) -> None:
    """Score a model on real test splits with each task's official metrics."""
    from somelvlm.evaluate.harness import evaluate_model, to_markdown, write_results
    from somelvlm.models import load_model

    if split not in ("test", "val"):
        raise ValueError(f"--split must be test or val, got {split!r}")
    data_root = data_root or _default_data_root()
    if not data_root.is_dir():
        raise FileNotFoundError(f"data root {data_root} not found: pass --data-root (or set SOMELVLM_DATA)")
    m = load_model(model, int8=int8, runtime=runtime)
    names = _split_commas(tasks) or m.tasks
    summary = evaluate_model(m, names, data_root, split, limit)
    summary["model"] = str(m.folder)
    json_path, md_path = write_results(summary, out, f"Evaluation of {m.folder.name}")
    console.print(to_markdown(summary))
    console.print(f"wrote {json_path} and {md_path}")


@app.command("serve")
def serve_cmd(
    host: Annotated[str, typer.Option(help="Interface to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    model: Annotated[str | None, typer.Option(help="Compact classifier: shipped name or folder [some-mini].")] = None,
    generator: Annotated[str | None, typer.Option(help="Generative model (shipped name or folder) for /v1/generate and chat.")] = None,
    token: Annotated[str | None, typer.Option(help="Bearer token required on /v1/* and /metrics [env SOMELVLM_API_TOKEN].")] = None,
    max_body_bytes: Annotated[int, typer.Option(help="Largest request body; larger ones get 413.")] = 16_000_000,
    max_image_pixels: Annotated[int, typer.Option(help="Largest image (width x height); larger ones get 413.")] = 25_000_000,
    request_timeout_s: Annotated[float, typer.Option(help="Requests still working after this get 504.")] = 30.0,
    max_concurrency: Annotated[int, typer.Option(help="Requests processed at once; more get 429.")] = 64,
    batch_wait_ms: Annotated[float, typer.Option(help="Micro-batching window in milliseconds.")] = 5.0,
    max_batch: Annotated[int, typer.Option(help="Most posts per model call.")] = 64,
    cors_origin: Annotated[list[str] | None, typer.Option("--cors-origin", help="Allow this origin (repeatable); CORS is off by default.")] = None,
    int8: Annotated[bool, typer.Option("--int8/--fp32", help="int8: ~1.8x throughput, but answers depend on batch neighbours; fp32 (default): the same answer whatever else is in flight.")] = False,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads.")] = None,
) -> None:
    """Serve the REST API, the OpenAI-compatible endpoints and the web page (needs the serve extra)."""
    from somelvlm.serve.config import ServeConfig
    from somelvlm.serve.server import serve

    serve(ServeConfig(host=host, port=port, model=model, generator=generator, token=token,
                      max_body_bytes=max_body_bytes, max_image_pixels=max_image_pixels,
                      request_timeout_s=request_timeout_s, max_concurrency=max_concurrency,
                      batch_wait_ms=batch_wait_ms, max_batch=max_batch, cors_origins=_split_commas(cors_origin),
                      int8=int8, threads=threads))


def _split_commas(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script; ``argv`` lets tests run it in-process."""
    try:
        app(args=argv, prog_name="somelvlm", standalone_mode=False)
    except UnknownNameError as err:
        err_console.print(f"[red]error:[/] {err}")
        sys.exit(2)
    except (FileNotFoundError, ValueError) as err:
        err_console.print(f"[red]error:[/] {err}")
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click's usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(130)
        raise


if __name__ == "__main__":
    main()
