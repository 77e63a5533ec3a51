"""Options of the instruction recipe (``somelvlm train instruct``) and the records it trains on.

Shared by ``instruct`` (our LVLM) and ``instruct_vlm`` (a Hugging Face VLM), so neither imports
the other for them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from somelvlm.models.connector import ConnectorConfig

QUANTIZE = ("auto", "none", "nf4")


@dataclass
class InstructConfig:
    """Options of ``somelvlm train instruct`` (YAML keys have the same names)."""

    stage: int
    """1: LoRA on the LM with text instructions; 2: the connector with multimodal ones: ``--stage``."""
    data: str
    """SoMeData folder (``somelvlm data build`` output) holding train.jsonl: ``data``."""
    out: str
    """Run folder: checkpoints, train_log.jsonl and model/: ``out``."""
    data_root: str = "../shared/data"
    """Folder image paths of records are relative to (stage 2, and stage 1 on a VLM): ``data_root``."""
    base: str = "smollm2-135m-instruct"
    """Base: a packaged short name, a local Hugging Face folder, or a pretrained VLM (folder or cached
    hub id; then ``instruct_vlm`` runs the recipe on it): ``base``."""
    init: str | None = None
    """Stage 2: the stage-1 model folder whose adapter is loaded and frozen: ``init``."""
    name: str = "some-lvlm"
    """Name written into the saved model's config.json."""
    tasks: list[str] = field(default_factory=list)
    """Only records of these tasks (empty: all): ``tasks``."""
    max_per_task: int | None = None
    """At most N records per task, a fixed hash-ordered sample: ``max_per_task``."""
    max_per_task_overrides: dict[str, int] = field(default_factory=dict)
    """Per-task caps that replace ``max_per_task`` (e.g. more detox pairs): ``max_per_task_overrides``."""
    max_len: int = 256
    """Tokens per training sequence (prompt + answer); longer prompts lose their middle."""
    max_answer_tokens: int = 64
    """Answers are cut to this many tokens."""
    batch_size: int = 8
    grad_accum: int = 1
    """Batches per optimizer step."""
    lr: float = 2e-4
    weight_decay: float = 0.0
    epochs: int = 1
    max_steps: int | None = None
    """Stop after this many optimizer steps (overrides epochs when smaller)."""
    warmup_steps: int = 10
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    """Linear layers of the LM that get LoRA: ``lora_targets``."""
    lora_layers: int | None = None
    """LoRA only in the top N decoder layers (backward stops there: cheaper on CPU); None: all."""
    quantize: str = "auto"
    """Stage 1 base weights: ``nf4`` (QLoRA, needs CUDA + bitsandbytes), ``none``, or ``auto`` (nf4 on CUDA)."""
    connector: str = "mlp"
    """Stage 2 connector: ``mlp`` or ``qformer``."""
    image_pool: int = 2
    """mlp connector: the 7x7 grid pooled to image_pool x image_pool tokens."""
    num_queries: int = 8
    """qformer connector: learned queries = image tokens."""
    connector_hidden: int = 512
    """Hidden width of the connector (mlp: projector; qformer: query transformer)."""
    checkpoint_every: int = 50
    log_every: int = 5
    num_threads: int = 2
    """torch CPU threads."""
    seed: int = 0
    max_prompt_tokens: int = 768
    """Saved into the model: prompts at generation time are cut to this many tokens."""
    stage1_images: bool = True
    """VLM base only: stage 1 also trains on records with an image (text-only ones always): ``stage1_images``."""
    sharding: str | None = None
    """Several processes, our LVLM only: ``ddp`` (a whole model per process) or ``fsdp`` (the model sharded
    per decoder layer, FSDP2); None: ``$SOMELVLM_SHARDING``, else fsdp under accelerate's FSDP config, else ddp."""

    def __post_init__(self) -> None:
        if self.stage not in (1, 2):
            raise ValueError(f"--stage must be 1 or 2, got {self.stage}")
        if self.quantize not in QUANTIZE:
            raise ValueError(f"quantize must be one of {QUANTIZE}, got {self.quantize!r}")
        if self.stage == 2 and not self.init:
            raise ValueError("stage 2 needs init: the stage-1 model folder (e.g. runs/some-lvlm-s1/model)")
        if self.max_answer_tokens >= self.max_len - 16:
            raise ValueError(f"max_answer_tokens {self.max_answer_tokens} leaves no room in max_len {self.max_len}")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ValueError("batch_size and grad_accum must be at least 1")
        if self.sharding is not None and self.sharding not in ("ddp", "fsdp"):
            raise ValueError(f"sharding must be ddp, fsdp or unset, got {self.sharding!r}")
        ConnectorConfig(kind=self.connector, pool=self.image_pool, num_queries=self.num_queries)

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> InstructConfig:
        from somelvlm.train.config import config_from_yaml

        return config_from_yaml(cls, path, **overrides)


def load_records(config: InstructConfig, both: bool = False) -> list[dict]:
    """Train records of the stage's modality (text only for 1, with image for 2; any with ``both``),
    fixed sample."""
    path = Path(config.data) / "train.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: build SoMeData first (somelvlm data build --out {config.data})")
    by_task: dict[str, list[dict]] = {}
    with path.open(encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if not both and (config.stage == 2) != ("image" in r):
                continue
            if config.tasks and r["task"] not in config.tasks:
                continue
            by_task.setdefault(r["task"], []).append(r)
    if not by_task:
        kind = "with an image" if config.stage == 2 else "text-only"
        raise ValueError(f"no {kind} records of tasks {config.tasks or 'any'} in {path}")
    out = []
    for task in sorted(by_task):
        rows = sorted(by_task[task], key=lambda r: hashlib.sha1(r["id"].encode()).digest())
        cap = config.max_per_task_overrides.get(task, config.max_per_task)
        out += rows[:cap] if cap else rows
    return out


def training_record(config: InstructConfig, records: list[dict], out: Path) -> dict:
    """Exactly what was used: records per task, options and the last logged loss."""
    per_task: dict[str, int] = {}
    for r in records:
        per_task[r["task"]] = per_task.get(r["task"], 0) + 1
    last = None
    log_path = out / "train_log.jsonl"
    if log_path.is_file():
        lines = log_path.read_text(encoding="utf-8").strip().splitlines()
        last = json.loads(lines[-1]) if lines else None
    keep = ("max_len", "max_answer_tokens", "batch_size", "grad_accum", "lr", "epochs", "max_steps",
            "lora_r", "lora_alpha", "lora_dropout", "lora_targets", "lora_layers", "quantize", "connector", "image_pool", "connector_hidden",
            "num_queries", "seed", "max_per_task", "max_per_task_overrides", "data")
    return {"records": len(records), "per_task": per_task, "last_log": last,
            "options": {k: getattr(config, k) for k in keep}}
