"""The commands that look things up, build data, evaluate, serve and convert: each a typed function
over one config dataclass (its fields are the command's flags, see ``somelvlm.cli.args``)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from somelvlm.cli import common
from somelvlm.cli.args import DEFAULT_DATA_ROOT
from somelvlm.cli.common import Progress, console, err_console, require_data_root

Runtime = Literal["auto", "onnx", "torch", "torch-int8"]
"""SoMe-mini's encoder runtimes (``somelvlm.models.compact.RUNTIMES``)."""
RUNTIME_HELP = ("Encoder runtime: auto (onnx when onnxruntime is installed, else torch), onnx (ONNX Runtime fp32, "
                "fast), torch (torch fp32), torch-int8 (torch dynamic int8: faster, but a post's answer depends on "
                "the other posts in its batch).")
JSON = {"flags": ["--json"]}


# -- tasks -----------------------------------------------------------------------------------------
@dataclass
class TasksConfig:
    """Options of ``somelvlm tasks``."""

    as_json: bool = field(default=False, metadata=JSON)
    """Print JSON instead of a table."""
    level: list[str] = field(default_factory=list)
    """Only these cognitive level ids."""


def list_tasks(cfg: TasksConfig) -> None:
    """List every task grouped by cognitive level."""
    from somelvlm.taxonomy.registry import select_tasks
    from somelvlm.taxonomy.views import tasks_json, tasks_table

    chosen = select_tasks(levels=cfg.level)
    if cfg.as_json:
        print(json.dumps(tasks_json(chosen), indent=1, ensure_ascii=False))
    else:
        console.print(tasks_table(chosen))


@dataclass
class TaskShowConfig:
    """Options of ``somelvlm tasks show``."""

    name: str = field(metadata={"positional": True})
    """Task name, e.g. emotion."""
    as_json: bool = field(default=False, metadata=JSON)
    """Print JSON instead of text."""


def show_task(cfg: TaskShowConfig) -> None:
    """Show one task: level, labels, metrics, sources and its prompt templates."""
    from somelvlm.taxonomy.registry import get_task
    from somelvlm.taxonomy.views import task_json, task_panel

    task = get_task(cfg.name)
    if cfg.as_json:
        print(json.dumps(task_json(task), indent=1, ensure_ascii=False))
    else:
        console.print(task_panel(task))


# -- data ------------------------------------------------------------------------------------------
def data_build(cfg) -> None:  # cfg: somelvlm.data.somedata.BuildConfig
    """Build SoMeData: instruction records (JSONL + Parquet), stats.md and a build report."""
    import time

    from somelvlm.data.somedata import build

    start = time.perf_counter()
    if common.QUIET:
        result = build(cfg)
    else:
        with err_console.status("reading sources...") as status:
            result = build(cfg, progress=lambda msg: (err_console.log(msg), status.update(msg)))
    total = sum(result.counts.values())
    console.print(f"[bold]{total}[/] records in {len(result.counts)} task/split groups -> {result.out} "
                  f"({time.perf_counter() - start:.1f} s)")
    console.print(f"{len(result.report.problems)} bad inputs skipped or kept without image: "
                  f"see {result.out / 'report.md'}")
    console.print((result.out / "stats.md").read_text(encoding="utf-8"))


@dataclass
class DataExportConfig:
    """Options of ``somelvlm data export``."""

    somedata: Path = field(metadata={"positional": True})
    """A SoMeData build folder (``somelvlm data build --out``)."""
    out: Path
    """Folder to write (replaced atomically)."""
    fmt: Literal["llava-json", "llama-factory"] = field(default="llava-json", metadata={"flags": ["--format"]})
    """llava-json: one JSON array per split (LLaVA's json.load); llama-factory: sharegpt data + dataset_info.json."""
    media_dir: Path | None = None
    """The folder the records' image paths are relative to (the data root the build read)."""
    name: str = "somedata"
    """Dataset name in LLaMA-Factory's dataset_info.json."""


def data_export(cfg: DataExportConfig) -> None:
    """Export a SoMeData build for LLaVA or LLaMA-Factory training."""
    from somelvlm.data.exports import export_somedata

    result = export_somedata(cfg.somedata, cfg.out, cfg.fmt, media_dir=cfg.media_dir, name=cfg.name)
    console.print(f"{cfg.fmt} export -> {cfg.out}: {result}")


@dataclass
class TasksExportConfig:
    """Options of ``somelvlm tasks export``."""

    out: Path = field(metadata={"positional": True})
    """Folder for the task YAMLs."""
    somedata: Path
    """A SoMeData build folder whose Parquet test records the tasks read."""
    fmt: Literal["lm-eval"] = field(default="lm-eval", metadata={"flags": ["--format"]})
    """lm-eval: lm-evaluation-harness multiple-choice tasks and one group per cognitive level."""
    tasks: list[str] = field(default_factory=list)
    """Only these tasks (default: every classification task with test records)."""


def tasks_export(cfg: TasksExportConfig) -> None:
    """Write our classification tasks as lm-evaluation-harness tasks (run them with lm_eval --include_path OUT)."""
    from somelvlm.taxonomy.export_lm_eval import export_lm_eval

    written = export_lm_eval(cfg.out, cfg.somedata, cfg.tasks or None)
    console.print(f"{len(written)} files -> {cfg.out} (lm_eval --include_path {cfg.out} --tasks somelvlm)")


# -- eval ------------------------------------------------------------------------------------------
def evaluate(cfg) -> None:  # cfg: somelvlm.evaluate.report.EvalConfig
    """Score models on real test splits through the Pipeline: per task, per cognitive level, side by side."""
    from somelvlm.evaluate.report import run_eval, to_markdown, write_report

    data_root = require_data_root(cfg.data_root)
    results = run_eval(cfg, data_root, progress=not common.QUIET)
    written = write_report(results, Path(cfg.out), charts=cfg.charts)
    console.print(to_markdown(results))
    console.print("wrote " + ", ".join(str(p) for p in written))


class _Counted:
    """``target`` with one method counted on a progress bar (items = the length of its first argument)."""

    def __init__(self, target, method: str, bar: Progress, stage: str) -> None:
        self._target, self._method, self._bar, self._stage = target, method, bar, stage

    def __getattr__(self, name: str):
        value = getattr(self._target, name)
        if name != self._method:
            return value

        def counted(items, *args, **kwargs):
            result = value(items, *args, **kwargs)
            self._bar.advance(self._stage, len(items))
            return result

        return counted


# -- serve -----------------------------------------------------------------------------------------
def serve(cfg) -> None:  # cfg: somelvlm.serve.config.ServeConfig
    """Serve the REST API, the OpenAI-compatible endpoints and the web page (needs the serve extra)."""
    from somelvlm.serve.server import serve as run_server

    try:
        run_server(cfg)
    except KeyboardInterrupt:  # Ctrl-C is how a server is stopped: a normal end
        pass


# -- retrieval memories ----------------------------------------------------------------------------
@dataclass
class IndexBuildConfig:
    """Options of ``somelvlm index build``."""

    model: Path
    """A trained multimodal head folder (its embedding g is indexed)."""
    out: Path
    """Index folder to write (index.faiss, meta.parquet, stamp.json)."""
    dataset: Literal["cm_memes", "memotion", "mediaeval2016"] | None = None
    """Index a dataset's posts."""
    splits: list[str] = field(default_factory=lambda: ["train"])
    """Splits of --dataset."""
    input: Path | None = None
    """Or index a labelled file (JSONL / CSV / Parquet: id, text, image, label)."""
    label_col: str = "label"
    """Label column of --input."""
    data_root: Path = Path(DEFAULT_DATA_ROOT)
    """Folder with the upstream sources."""
    kind: Literal["flat", "hnsw"] = "flat"
    """flat (exact) or hnsw (approximate)."""


def index_build(cfg: IndexBuildConfig) -> None:
    """Build a retrieval memory, stamped with the encoder that made it."""
    from somelvlm.batch.index_build import build_index

    data_root = require_data_root(cfg.data_root) if cfg.dataset else cfg.data_root
    with Progress() as bar:
        summary = build_index(cfg.model, cfg.out, dataset=cfg.dataset, data_root=data_root, splits=cfg.splits,
                              input=cfg.input, label_col=cfg.label_col, kind=cfg.kind, progress=bar.update)
    _print_index_summary(summary)


@dataclass
class IndexAddConfig:
    """Options of ``somelvlm index add``."""

    index: Path = field(metadata={"positional": True})
    """An index folder made by `somelvlm index build`."""
    input: Path
    """Labelled posts (JSONL / CSV / Parquet: id, text, image, label)."""
    model: Path | None = None
    """The head that built the index (default: the one its stamp names)."""
    label_col: str = "label"
    """Label column of --input."""


def index_add(cfg: IndexAddConfig) -> None:
    """Add newly labelled posts to an index: RKC predictions change with no retraining."""
    from somelvlm.batch.index_build import add_to_index

    model = cfg.model
    if model is None:
        stamp = cfg.index / "stamp.json"
        if not stamp.is_file():
            raise FileNotFoundError(f"{cfg.index} is not a retrieval index (no stamp.json)")
        model = Path(json.loads(stamp.read_text(encoding="utf-8")).get("model") or "")
    _print_index_summary(add_to_index(cfg.index, model, cfg.input, label_col=cfg.label_col))


def _print_index_summary(summary) -> None:
    console.print(f"{summary.added} posts added -> {summary.index} ({summary.total} in the index)")
    for s in summary.skipped[:20]:
        err_console.print(f"skipped {s['id']} (line {s['line']}): {s['reason']}: {s['message']}", markup=False)
    if len(summary.skipped) > 20:
        err_console.print(f"... and {len(summary.skipped) - 20} more skipped")


# -- conversion ------------------------------------------------------------------------------------
@dataclass
class ConvertLavisConfig:
    """Options of ``somelvlm convert-lavis``."""

    checkpoint: Path
    """SoMeLVLM's LAVIS checkpoint.pth (Q-Former, queries, llm_proj)."""
    vicuna: Path
    """Vicuna-7b-v1.1 Hugging Face folder (safetensors)."""
    out: Path
    """Output folder for InstructBlipForConditionalGeneration."""
    vision: Path | None = None
    """LAVIS eva_vit_g.pth when the checkpoint lacks the ViT."""
    allow_pickle: bool = field(default=False, metadata={"flags": ["--allow-pickle"]})
    """Unpickle non-tensor objects (trusted files only)."""
    fp16: bool = field(default=True, metadata={"flags": ["--fp16"], "negative": "--fp32"})
    """Weights dtype of the converted model: --fp16 (default) or --fp32."""


def convert_lavis(cfg: ConvertLavisConfig) -> None:
    """Convert SoMeLVLM's published LAVIS InstructBLIP weights to a transformers model folder."""
    import torch

    from somelvlm.models.lavis_convert import convert_lavis as convert

    convert(cfg.checkpoint, cfg.vicuna, cfg.out, vision=cfg.vision, allow_pickle=cfg.allow_pickle,
            dtype=torch.float16 if cfg.fp16 else torch.float32)
    console.print(f"InstructBLIP written to {cfg.out}; load it with HFVisionGenerator({str(cfg.out)!r})")
