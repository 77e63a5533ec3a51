"""SoMeLVLM's two-step instruction tuning as one flat recipe.

Stage 1: LoRA (peft) on the language model with SoMeData's text instructions; QLoRA when CUDA is
present and ``quantize`` is ``auto`` or ``nf4`` (the same recipe, the base loaded in 4-bit NF4 by
bitsandbytes). Stage 2: the connector alone is trained on multimodal instructions (records with an
image), the language model (with its stage-1 adapter) frozen.

    somelvlm train instruct --stage 1 --config configs/some-lvlm-stage1.yaml
    somelvlm train instruct --stage 2 --config configs/some-lvlm-stage2.yaml

Checkpoints (trainable weights as safetensors, optimizer, step) every ``checkpoint_every`` steps
under ``OUT/checkpoints``; a rerun resumes from the newest. Loss per step goes to
``OUT/train_log.jsonl``; the finished model to ``OUT/model``.

When ``base`` is a pretrained Hugging Face VLM (LLaVA, Qwen2-VL, InstructBLIP: a local folder or a
cached hub id whose config has a vision part), the same recipe runs on it: see ``instruct_vlm``.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

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


def tokenize_record(tokenizer, record: dict, num_image_tokens: int, config: InstructConfig) -> dict:
    """ids, labels (-100 on the prompt) and image mask of one record in the chat format."""
    from somelvlm.models.lvlm import encode_prompt

    human, answer = record["conversations"][0]["value"], record["conversations"][1]["value"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"][: config.max_answer_tokens]
    answer_ids = answer_ids + [tokenizer.eos_token_id]
    prompt = encode_prompt(tokenizer, human, num_image_tokens, "image" in record, config.max_len - len(answer_ids))
    return {"ids": prompt.ids + answer_ids, "labels": [-100] * len(prompt.ids) + answer_ids,
            "image_mask": prompt.image_mask + [False] * len(answer_ids), "truncated": prompt.truncated}


def collate(items: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded (batch, longest) ids / attention mask / labels / image mask."""
    n = max(len(it["ids"]) for it in items)
    batch = {
        "input_ids": torch.full((len(items), n), pad_id, dtype=torch.long),
        "attention_mask": torch.zeros((len(items), n), dtype=torch.long),
        "labels": torch.full((len(items), n), -100, dtype=torch.long),
        "image_mask": torch.zeros((len(items), n), dtype=torch.bool),
    }
    for row, it in enumerate(items):
        k = len(it["ids"])
        batch["input_ids"][row, :k] = torch.tensor(it["ids"])
        batch["attention_mask"][row, :k] = 1
        batch["labels"][row, :k] = torch.tensor(it["labels"])
        batch["image_mask"][row, :k] = torch.tensor(it["image_mask"])
    if "feats" in items[0]:
        batch["image_feats"] = torch.stack([it["feats"] for it in items])       # (batch, cells, dim)
    return batch


def lm_loss(model, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Named loss terms: ``lm``, next-token cross-entropy over answer tokens only."""
    loss = model(batch["input_ids"], batch["attention_mask"], labels=batch["labels"],
                 image_mask=batch["image_mask"], image_feats=batch.get("image_feats"))
    return {"lm": loss}


def build_model(config: InstructConfig):
    """(LVLM, tokenizer, base record) for the stage: LoRA on the LM, or a new connector on a frozen LM."""
    from somelvlm.models.connector import build_connector
    from somelvlm.models.lvlm import LVLM, base_record, load_lm, load_lvlm

    if config.stage == 2:
        model, tokenizer, meta = load_lvlm(config.init, merge=False)
        for p in model.parameters():
            p.requires_grad_(False)
        dim = model.lm.get_input_embeddings().embedding_dim
        model.connector = build_connector(ConnectorConfig(lm_dim=dim, kind=config.connector, pool=config.image_pool,
                                                          num_queries=config.num_queries,
                                                          hidden=config.connector_hidden))
        return model, tokenizer, meta["base"]
    from peft import LoraConfig, get_peft_model

    quantize = config.quantize == "nf4" or (config.quantize == "auto" and torch.cuda.is_available())
    if quantize:
        lm, tokenizer = load_quantized_lm(config.base)
        base = {"name": config.base, "digest": None, "quantized": "nf4"}
    else:
        lm, tokenizer = load_lm(config.base)
        base = base_record(lm, config.base)
    layers = None
    if config.lora_layers:
        n = lm.config.num_hidden_layers
        layers = list(range(max(0, n - config.lora_layers), n))
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.lora_targets), layers_to_transform=layers, task_type="CAUSAL_LM")
    return LVLM(get_peft_model(lm, lora)), tokenizer, base


def load_quantized_lm(base: str):
    """QLoRA's base: the LM in 4-bit NF4 (double quantisation, bf16 compute), ready for k-bit training."""
    if not torch.cuda.is_available():
        raise RuntimeError("quantize: nf4 needs a CUDA GPU; use quantize: none on CPU")
    try:
        from peft import prepare_model_for_kbit_training
        from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    except ImportError as e:
        raise ImportError("QLoRA needs the qlora extra: pip install 'somelvlm[qlora]'") from e
    from somelvlm.models.base_lm import resolve_base

    folder = resolve_base(base)
    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                             bnb_4bit_compute_dtype=torch.bfloat16)
    lm = AutoModelForCausalLM.from_pretrained(folder, quantization_config=bnb, device_map={"": 0},
                                              use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return prepare_model_for_kbit_training(lm), tokenizer


def train(config: InstructConfig, log: Callable[[str], None] = print) -> Path:
    """Run one stage to the end (resuming from the newest checkpoint); returns the model folder."""
    from somelvlm.models.lvlm import image_features, save_lvlm
    from somelvlm.train.instruct_vlm import is_hf_vlm, train_vlm

    if is_hf_vlm(config.base if config.stage == 1 else config.init):
        return train_vlm(config, log)
    torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(config), indent=1) + "\n", encoding="utf-8")
    records = load_records(config)
    model, tokenizer, base = build_model(config)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model.to(device)
    items = [tokenize_record(tokenizer, r, model.num_image_tokens, config) for r in records]
    if config.stage == 2:
        feats = image_features([Path(config.data_root) / r["image"] for r in records])
        for it, f in zip(items, feats):
            it["feats"] = f
    cut = sum(bool(it["truncated"]) for it in items)
    log(f"stage {config.stage}: {len(items)} records ({cut} prompts truncated to fit {config.max_len} tokens)")
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    log(f"trainable weights: {sum(p.numel() for p in trainable.values()):,}")
    optimizer, schedule, per_epoch, total, step = optimizer_and_resume(config, out, trainable, len(items), log)
    model.train()
    if config.stage == 2:
        model.lm.eval()  # the frozen LM runs as at inference (no LoRA dropout); only the connector trains

    def batch_loss(indices: list[int]) -> torch.Tensor:
        batch = {k: v.to(device) for k, v in collate([items[i] for i in indices], tokenizer.pad_token_id).items()}
        return sum(lm_loss(model, batch).values())

    run_steps(config, out, items, trainable, optimizer, schedule, per_epoch, total, step, batch_loss)
    meta = {"name": config.name, "base": base, "max_prompt_tokens": config.max_prompt_tokens,
            "training": _training_record(config, records, out)}
    if config.stage == 2:
        prev = json.loads((Path(config.init) / "config.json").read_text(encoding="utf-8"))
        meta["training"] = {"stage1": prev.get("training", {}).get("stage1", prev.get("training")),
                            "stage2": meta["training"]}
    else:
        meta["training"] = {"stage1": meta["training"]}
    model.to("cpu")
    return save_lvlm(out / "model", model, tokenizer, meta)


def optimizer_and_resume(config: InstructConfig, out: Path, trainable: dict[str, torch.nn.Parameter],
                         n_items: int, log: Callable[[str], None]):
    """AdamW with linear warmup and decay over the run, restored from the newest checkpoint under
    ``out`` when there is one. Returns (optimizer, schedule, steps per epoch, total steps, step)."""
    from safetensors.torch import load_file

    optimizer = torch.optim.AdamW(trainable.values(), lr=config.lr, weight_decay=config.weight_decay)
    per_epoch = math.ceil(n_items / config.batch_size / config.grad_accum)
    total = min(config.max_steps or per_epoch * config.epochs, per_epoch * config.epochs)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / config.warmup_steps)
                                                 * max(0.0, 1 - s / max(1, total)))
    step = 0
    latest = _latest_checkpoint(out)
    if latest is not None:
        state = load_file(str(latest / "trainable.safetensors"))
        missing = set(trainable) - set(state)
        if missing:
            raise ValueError(f"checkpoint {latest} does not match this config (missing {sorted(missing)[:3]})")
        for n, p in trainable.items():
            p.data.copy_(state[n])
        optimizer.load_state_dict(torch.load(latest / "optimizer.pt", weights_only=True))
        saved = json.loads((latest / "schedule.json").read_text())
        schedule.load_state_dict(saved["schedule"])
        step = saved["step"]
        log(f"resumed from {latest} at step {step}")
    return optimizer, schedule, per_epoch, total, step


def run_steps(config: InstructConfig, out: Path, items: list[dict], trainable: dict[str, torch.nn.Parameter],
              optimizer, schedule, per_epoch: int, total: int, step: int,
              batch_loss: Callable[[list[int]], torch.Tensor]) -> None:
    """The optimizer steps from ``step`` to ``total``: length-grouped batches (the same order for a
    resumed run), gradient accumulation, clipping, a progress bar, loss log lines and checkpoints.
    ``batch_loss(indices)`` is the mean next-token loss of one batch of ``items``."""
    from safetensors.torch import save_file
    from tqdm import tqdm

    bar = tqdm(total=total, initial=step, desc=f"stage {config.stage}", unit="step")
    t0 = time.perf_counter()
    with (out / "train_log.jsonl").open("a", encoding="utf-8") as logf:
        while step < total:
            epoch, within = divmod(step, per_epoch)
            batches = _length_grouped_batches(items, config.batch_size, config.seed + epoch)
            for s in range(within, per_epoch):
                if step >= total:
                    break
                loss_sum = 0.0
                for b in batches[s * config.grad_accum:(s + 1) * config.grad_accum]:
                    loss = batch_loss(b) / config.grad_accum
                    loss.backward()
                    loss_sum += float(loss.detach())
                torch.nn.utils.clip_grad_norm_(trainable.values(), 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum:.3f}")
                if step % config.log_every == 0 or step == total:
                    logf.write(json.dumps({"step": step, "epoch": epoch, "lm": round(loss_sum, 4),
                                           "lr": schedule.get_last_lr()[0],
                                           "sec": round(time.perf_counter() - t0, 1)}) + "\n")
                    logf.flush()
                if step % config.checkpoint_every == 0 or step == total:
                    _save_checkpoint(out, step, trainable, optimizer, schedule, save_file)
    bar.close()


def _length_grouped_batches(items: list[dict], size: int, seed: int) -> list[list[int]]:
    """A seeded shuffle, sorted by length within windows of 16 batches (less padding), batches
    shuffled again: the same order for the same seed, so a resumed run continues exactly."""
    rng = random.Random(seed)
    order = list(range(len(items)))
    rng.shuffle(order)
    window = size * 16
    grouped = []
    for i in range(0, len(order), window):
        grouped += sorted(order[i:i + window], key=lambda j: len(items[j]["ids"]))
    batches = [grouped[i:i + size] for i in range(0, len(grouped), size)]
    rng.shuffle(batches)
    return batches


def _training_record(config: InstructConfig, records: list[dict], out: Path) -> dict:
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


def _save_checkpoint(out: Path, step: int, trainable: dict, optimizer, schedule, save_file) -> None:
    """Atomic: written to a temporary folder, renamed; keeps the two newest."""
    root = out / "checkpoints"
    tmp = root / f".step-{step:06d}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    save_file({n: p.detach().cpu().contiguous() for n, p in trainable.items()}, str(tmp / "trainable.safetensors"))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    (tmp / "schedule.json").write_text(json.dumps({"step": step, "schedule": schedule.state_dict()}))
    final = root / f"step-{step:06d}"
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    for old in sorted(root.glob("step-*"))[:-2]:
        shutil.rmtree(old)


def _latest_checkpoint(out: Path) -> Path | None:
    found = sorted((out / "checkpoints").glob("step-*")) if (out / "checkpoints").is_dir() else []
    return found[-1] if found else None
