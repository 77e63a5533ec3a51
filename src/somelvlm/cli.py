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
    rkc: Annotated[Path | None, typer.Option(help="A retrieval index (somelvlm index build): adds a kNN (RKC) prediction per post.")] = None,
    generator: Annotated[str | None, typer.Option(help="Generative model for generation tasks (detoxify, hashtags, ...) [some-lvlm].")] = None,
) -> None:
    """Label every post for every chosen task; streamed, resumable, bad rows become error records."""
    import tempfile

    from somelvlm.analysis import Analyzer
    from somelvlm.batch.runner import RunConfig, run

    if not input.is_file():
        raise FileNotFoundError(f"input {input} not found")
    analyzer = Analyzer(model, _split_commas(tasks), _split_commas(level), int8=int8, ocr=not no_ocr, rkc=rkc,
                        generator=generator, runtime=runtime)
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
    model: Annotated[list[str] | None, typer.Option("--model", help="Model to score (repeatable): shipped name, folder or server URL [some-mini].")] = None,
    tasks: Annotated[list[str] | None, typer.Option("--tasks", help="Task names (default: every head).")] = None,
    level: Annotated[list[str] | None, typer.Option("--level", help="Cognitive level ids (repeatable or comma-separated).")] = None,
    split: Annotated[str, typer.Option(help="test or val.")] = "test",
    data_root: Annotated[Path | None, typer.Option(help="Folder with the upstream sources [env SOMELVLM_DATA, else ../shared/data].")] = None,
    out: Annotated[Path, typer.Option(help="Writes OUT.json, OUT.md, OUT.html and two PNG charts.")] = Path("out/eval/results"),
    limit: Annotated[int | None, typer.Option(help="At most N items per task (a fixed sample).")] = None,
    prompt_index: Annotated[str, typer.Option(help="Prompt of generative answers: 0-4, or 'mean' over the five.")] = "0",
    runtime: Annotated[str, typer.Option(help=RUNTIME_HELP)] = "auto",
    charts: Annotated[bool, typer.Option("--charts/--no-charts", help="Draw the charts and the HTML report.")] = True,
) -> None:
    """Score models on real test splits: each task's metrics, per cognitive level, side by side."""
    from somelvlm.evaluate.report import EvalConfig, run_eval, to_markdown, write_report

    cfg = EvalConfig(model=_split_commas(model) or ["some-mini"], tasks=_split_commas(tasks), level=_split_commas(level),
                     split=split, out=str(out), limit=limit, prompt_index=prompt_index, runtime=runtime, charts=charts)
    data_root = data_root or _default_data_root()
    if not data_root.is_dir():
        raise FileNotFoundError(f"data root {data_root} not found: pass --data-root (or set SOMELVLM_DATA)")
    results = run_eval(cfg, data_root)
    written = write_report(results, out, charts=charts)
    console.print(to_markdown(results))
    console.print("wrote " + ", ".join(str(p) for p in written))


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


@train_app.command("instruct")
def train_instruct(
    stage: Annotated[int, typer.Option(help="1: LoRA/QLoRA on the LM (text); 2: the connector (multimodal).")],
    config: Annotated[Path, typer.Option(help="Recipe YAML, e.g. configs/some-lvlm-stage1.yaml.")],
    out: Annotated[Path | None, typer.Option(help="Override the config's run folder.")] = None,
    data: Annotated[Path | None, typer.Option(help="Override the config's SoMeData folder.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after N optimizer steps.")] = None,
) -> None:
    """SoMeLVLM's two-step instruction tuning; resumes from OUT/checkpoints, logs OUT/train_log.jsonl."""
    from somelvlm.train.instruct import InstructConfig, train

    cfg = InstructConfig.from_yaml(config, stage=stage, out=str(out) if out else None,
                                   data=str(data) if data else None, max_steps=max_steps)
    folder = train(cfg, log=console.log)
    console.print(f"model in {folder}")


@app.command("generate")
def generate_cmd(
    task: Annotated[str, typer.Argument(help="A generation or classification task, e.g. detoxify, hashtags.")],
    text: Annotated[list[str] | None, typer.Option("--text", help="A post (repeatable).")] = None,
    input: Annotated[Path | None, typer.Option(help="Posts file (JSONL with 'text' and optional 'image').")] = None,
    image: Annotated[list[Path] | None, typer.Option("--image", help="An image going with each --text (repeatable).")] = None,
    model: Annotated[str, typer.Option(help="Generative model: shipped name or folder.")] = "some-lvlm",
    prompt_index: Annotated[int, typer.Option(help="Which of the task's prompt templates.")] = 0,
    max_new_tokens: Annotated[int, typer.Option(help="Upper bound on tokens per answer.")] = 64,
    batch_size: Annotated[int, typer.Option(help="Prompts per model call.")] = 8,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSONL instead of a table.")] = False,
) -> None:
    """Run one task by generation over posts: rewrites, explanations, hashtags or parsed labels."""
    from somelvlm.batch.runner import read_posts
    from somelvlm.generate import generate_task

    posts, errors = read_posts(text or [], image or [], input)
    for e in errors:
        err_console.print(f"skipped {e['id']} (line {e['line']}): {e['error']['reason']}: {e['error']['message']}")
    rows = generate_task(task, posts, model=model, prompt_index=prompt_index,
                         max_new_tokens=max_new_tokens, batch_size=batch_size) if posts else []
    if as_json:
        for row in rows + errors:
            print(json.dumps(row, ensure_ascii=False))
        return
    from rich.table import Table

    table = Table(title=f"{task} by {model}")
    for col in ("id", "text", "answer", "label"):
        table.add_column(col)
    for row in rows:
        table.add_row(str(row["id"]), row["text"][:80], row["answer"], str(row.get("label", "")))
    console.print(table)


@app.command("convert-lavis")
def convert_lavis_cmd(
    checkpoint: Annotated[Path, typer.Option(help="SoMeLVLM's LAVIS checkpoint.pth (Q-Former, queries, llm_proj).")],
    vicuna: Annotated[Path, typer.Option(help="Vicuna-7b-v1.1 Hugging Face folder (safetensors).")],
    out: Annotated[Path, typer.Option(help="Output folder for InstructBlipForConditionalGeneration.")],
    vision: Annotated[Path | None, typer.Option(help="LAVIS eva_vit_g.pth when the checkpoint lacks the ViT.")] = None,
    allow_pickle: Annotated[bool, typer.Option("--allow-pickle", help="Unpickle non-tensor objects (trusted files only).")] = False,
    fp16: Annotated[bool, typer.Option("--fp16/--fp32", help="Weights dtype of the converted model.")] = True,
) -> None:
    """Convert SoMeLVLM's published LAVIS InstructBLIP weights to a transformers model folder."""
    import torch

    from somelvlm.models.lavis_convert import convert_lavis

    convert_lavis(checkpoint, vicuna, out, vision=vision, allow_pickle=allow_pickle,
                  dtype=torch.float16 if fp16 else torch.float32)
    console.print(f"InstructBLIP written to {out}; load it with HFVisionGenerator({str(out)!r})")


def _split_commas(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


# -- multimodal recipes and retrieval memory (issue #4) -------------------------------------------
index_app = typer.Typer(help="Retrieval memories (FAISS + Parquet + encoder stamp) for RKC.", no_args_is_help=True)
app.add_typer(index_app, name="index")


def _mm_overrides(out: Path | None, data_root: Path | None, seed: int | None, epochs: int | None) -> dict:
    root = data_root or (Path(os.environ["SOMELVLM_DATA"]) if "SOMELVLM_DATA" in os.environ else None)
    return {"out": str(out) if out else None, "data_root": str(root) if root else None, "seed": seed,
            "epochs": epochs}


def _print_recipe_result(result: dict) -> None:
    console.print(f"best epoch {result['best_epoch']}: val {json.dumps({k: round(v, 2) for k, v in result['val'].items()})}")
    for key in ("test", "val_rkc", "test_rkc"):
        if result.get(key):
            console.print(f"{key}: {json.dumps({k: round(v, 2) for k, v in result[key].items()})}")


@train_app.command("multimodal")
def train_multimodal(
    config: Annotated[Path, typer.Option(help="Recipe YAML, e.g. configs/mm-cm_memes.yaml.")],
    out: Annotated[Path | None, typer.Option(help="Override the config's output folder.")] = None,
    data_root: Annotated[Path | None, typer.Option(help="Override the data root [env SOMELVLM_DATA].")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the seed.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Override the number of epochs.")] = None,
) -> None:
    """Train an image+text classifier on frozen features with the ITC / ITM auxiliary losses."""
    from somelvlm.train.multimodal import MultimodalConfig, train

    cfg = MultimodalConfig.from_yaml(config, **_mm_overrides(out, data_root, seed, epochs))
    if not Path(cfg.data_root).is_dir():
        raise FileNotFoundError(f"data root {cfg.data_root} not found: pass --data-root (or set SOMELVLM_DATA)")
    _print_recipe_result(train(cfg, log=console.log))


@train_app.command("rgcl")
def train_rgcl(
    config: Annotated[Path, typer.Option(help="Recipe YAML, e.g. configs/rgcl-cm_memes.yaml.")],
    out: Annotated[Path | None, typer.Option(help="Override the config's output folder.")] = None,
    data_root: Annotated[Path | None, typer.Option(help="Override the data root [env SOMELVLM_DATA].")] = None,
    seed: Annotated[int | None, typer.Option(help="Override the seed.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Override the number of epochs.")] = None,
) -> None:
    """Retrieval-guided contrastive learning (FAISS hard negatives each epoch); also scores RKC."""
    from somelvlm.train.rgcl import RGCLConfig, train

    cfg = RGCLConfig.from_yaml(config, **_mm_overrides(out, data_root, seed, epochs))
    if not Path(cfg.data_root).is_dir():
        raise FileNotFoundError(f"data root {cfg.data_root} not found: pass --data-root (or set SOMELVLM_DATA)")
    _print_recipe_result(train(cfg, log=console.log))


@index_app.command("build")
def index_build(
    model: Annotated[Path, typer.Option(help="A trained multimodal head folder (its embedding g is indexed).")],
    out: Annotated[Path, typer.Option(help="Index folder to write (index.faiss, meta.parquet, stamp.json).")],
    dataset: Annotated[str | None, typer.Option(help="Index a dataset's posts: cm_memes, memotion or mediaeval2016.")] = None,
    splits: Annotated[list[str] | None, typer.Option("--splits", help="Splits of --dataset [train].")] = None,
    input: Annotated[Path | None, typer.Option(help="Or index a labelled file (JSONL / CSV / Parquet: id, text, image, label).")] = None,
    label_col: Annotated[str, typer.Option(help="Label column of --input.")] = "label",
    data_root: Annotated[Path | None, typer.Option(help="Folder with the upstream sources [env SOMELVLM_DATA, else ../shared/data].")] = None,
    kind: Annotated[str, typer.Option(help="flat (exact) or hnsw (approximate).")] = "flat",
) -> None:
    """Build a retrieval memory, stamped with the encoder that made it."""
    from somelvlm.batch.index_build import build_index

    summary = build_index(model, out, dataset=dataset, data_root=data_root or _default_data_root(),
                          splits=_split_commas(splits) or None, input=input, label_col=label_col, kind=kind)
    _print_index_summary(summary)


@index_app.command("add")
def index_add(
    index: Annotated[Path, typer.Argument(help="An index folder made by `somelvlm index build`.")],
    input: Annotated[Path, typer.Option(help="Labelled posts (JSONL / CSV / Parquet: id, text, image, label).")],
    model: Annotated[Path | None, typer.Option(help="The head that built the index [the one its stamp names].")] = None,
    label_col: Annotated[str, typer.Option(help="Label column of --input.")] = "label",
) -> None:
    """Add newly labelled posts to an index: RKC predictions change with no retraining."""
    from somelvlm.batch.index_build import add_to_index

    if model is None:
        stamp = index / "stamp.json"
        if not stamp.is_file():
            raise FileNotFoundError(f"{index} is not a retrieval index (no stamp.json)")
        model = Path(json.loads(stamp.read_text(encoding="utf-8")).get("model") or "")
    _print_index_summary(add_to_index(index, model, input, label_col=label_col))


def _print_index_summary(summary) -> None:
    console.print(f"{summary.added} posts added -> {summary.index} ({summary.total} in the index)")
    for s in summary.skipped[:20]:
        err_console.print(f"skipped {s['id']} (line {s['line']}): {s['reason']}: {s['message']}")
    if len(summary.skipped) > 20:
        err_console.print(f"... and {len(summary.skipped) - 20} more skipped")


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
