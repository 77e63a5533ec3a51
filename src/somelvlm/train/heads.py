"""Recipe: train SoMe-mini's shared encoder (LoRA) and its task heads on real data.

    somelvlm train heads --config configs/some-mini.yaml

A flat loop: every epoch takes up to ``max_per_task`` training items of each task, cuts them into
task-homogeneous, length-bucketed batches, shuffles the batches and steps through them (so tasks
are sampled in proportion to their capped size). Classification uses class-weighted cross-entropy
(square-root balanced), ratings a mean squared error. After each epoch every task is scored on
its validation split; the best epoch (mean primary metric) is written to ``out``. A checkpoint
every ``checkpoint_every`` steps lets an interrupted run resume where it stopped. The loss of
every step goes to ``out/train_log.jsonl``.

On several processes (``torchrun --nproc_per_node N -m somelvlm.cli train heads ...``) the net
trains under DDP: ``batch_size`` per process (a global batch of ``batch_size * N`` items of one
task, sharded by rank), validation, checkpoints and the model on rank 0 (``train/distributed.py``).
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class HeadsConfig:
    """Options of ``somelvlm train heads`` (the YAML config holds the same keys)."""

    tasks: list[str]
    """Tasks to give a head (classification or regression)."""
    out: str = "runs/some-mini"
    """Folder for the trained model (config.json, model.safetensors, README.md) and checkpoints."""
    data_root: str = "../shared/data"
    """Folder holding the upstream sources; also $SOMELVLM_DATA."""
    encoder: str = "minilm"
    """Base encoder: a packaged short name, a local folder or a hub id."""
    max_length: int = 64
    """Tokens per post; tweets fit in 64."""
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    head_dropout: float = 0.1
    """Dropout before each task head."""
    lora_targets: list[str] = field(default_factory=lambda: ["query", "key", "value", "dense"])
    epochs: int = 3
    batch_size: int = 32
    """Items per batch and process (under torchrun a step's global batch is batch_size x processes)."""
    lr_encoder: float = 5e-4
    """Learning rate of the LoRA weights."""
    lr_heads: float = 2e-3
    weight_decay: float = 0.01
    warmup: float = 0.05
    """Share of steps with a linear warm-up; then a linear decay to zero."""
    max_per_task: int | None = 6000
    """At most this many training items per task and epoch (a new random subset each epoch)."""
    max_per_task_overrides: dict[str, int] = field(default_factory=dict)
    """Per-task exceptions to ``max_per_task`` (e.g. more for the TweetEval benchmark tasks)."""
    max_val_per_task: int | None = 2000
    class_weight_power: float = 0.5
    """0: plain CE; 1: fully balanced class weights; 0.5 in between."""
    seed: int = 13
    threads: int | None = None
    checkpoint_every: int = 400
    tiny: bool = False
    """Smoke test: 64 items per task, one short epoch (tests and CI)."""

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("config needs `tasks`: the tasks to train heads for")
        from somelvlm.taxonomy.heads import head_spec

        for t in self.tasks:
            head_spec(t)  # unknown or generative tasks fail here, naming the task
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("`epochs` and `batch_size` must be at least 1")

    @classmethod
    def from_yaml(cls, path: Path, **overrides) -> HeadsConfig:
        from somelvlm.train.config import config_from_yaml

        return config_from_yaml(cls, path, **overrides)


def train(config: HeadsConfig, log=print) -> dict:
    """Run the recipe; returns the validation metrics of the best epoch. Under torchrun /
    accelerate every rank trains its shard of each batch and rank 0 writes."""
    from somelvlm.train.distributed import distributed_run

    with distributed_run(supported=("ddp",)) as dist:  # a small encoder: nothing worth sharding
        state = _train(config, dist.main_only(log), dist)
        dist.barrier()  # the model folder is written before any rank returns
        return state


def _train(config: HeadsConfig, log, dist) -> dict:
    """``train``'s body on one rank of ``dist``."""
    import torch
    from peft import LoraConfig, get_peft_model

    from somelvlm.atomic import atomic_write_text
    from somelvlm.data.head_items import cap, load_items
    from somelvlm.data.report import DataReport
    from somelvlm.models.card import write_card
    from somelvlm.models.compact import save_compact
    from somelvlm.models.encoder import encoder_digest, load_encoder
    from somelvlm.models.heads import MultiTaskNet
    from somelvlm.taxonomy.heads import head_spec
    from somelvlm.train.loop import apply_step, load_file_checkpoint, save_file_checkpoint, warmup_linear

    started = time.time()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    device = dist.device if dist.enabled else "cpu"  # one process trains on the CPU, as it always has
    report = DataReport()
    data = load_items(Path(config.data_root), config.tasks, report)
    missing = [t for t in config.tasks if not data[t].get("train")]
    if missing:
        raise ValueError(f"no training items for {missing}: is --data-root right ({config.data_root})?")
    per_task = config.max_per_task if not config.tiny else 64
    counts = {t: {s: len(v) for s, v in d.items()} for t, d in data.items()}
    log(f"data: {json.dumps(counts)}")

    specs = [head_spec(t) for t in config.tasks]
    tokenizer, base = load_encoder(config.encoder)
    lora = {"r": config.lora_r, "alpha": config.lora_alpha, "targets": list(config.lora_targets)}
    encoder = get_peft_model(base, LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                                              lora_dropout=config.lora_dropout,
                                              target_modules=list(config.lora_targets)))
    net = MultiTaskNet(encoder, specs, dropout=config.head_dropout).to(device)
    weights = {s.task: _class_weights(data[s.task]["train"], s, config.class_weight_power) for s in specs}
    weights = {t: w.to(device) if w is not None else None for t, w in weights.items()}
    global_batch = config.batch_size * dist.world

    def epoch_batches(epoch: int) -> list[tuple[str, list]]:
        rng = random.Random(config.seed * 1000 + epoch)
        batches = []
        for spec in specs:
            limit = per_task if config.tiny else config.max_per_task_overrides.get(spec.task, per_task)
            items = cap(data[spec.task]["train"], limit, seed=rng.randrange(1 << 30))
            items.sort(key=lambda it: len(it.text))  # length bucketing
            chunks = [items[i:i + global_batch] for i in range(0, len(items), global_batch)]
            batches += [(spec.task, c) for c in chunks]
        rng.shuffle(batches)
        return batches[:8] if config.tiny else batches

    epochs = 1 if config.tiny else config.epochs
    steps_per_epoch = len(epoch_batches(0))
    total = steps_per_epoch * epochs
    params = [
        {"params": [p for p in net.encoder.parameters() if p.requires_grad], "lr": config.lr_encoder},
        {"params": list(net.heads.parameters()), "lr": config.lr_heads},
    ]
    opt = torch.optim.AdamW(params, weight_decay=config.weight_decay)
    sched = warmup_linear(opt, max(1, int(config.warmup * total)), total, decay="after_warmup")

    state = {"epoch": 0, "step": 0, "best": -math.inf, "history": []}
    ckpt = out / "checkpoint.pt"
    if ckpt.is_file():  # resume (every rank reads rank 0's checkpoint)
        state = load_file_checkpoint(ckpt, net, opt, sched)
        log(f"resumed at epoch {state['epoch']} step {state['step']}")
    forward = dist.wrap(net, find_unused=True)  # one task's head per batch: the others get no gradient

    def checkpoint() -> None:
        if not dist.is_main:
            return
        trainable = {k: v for k, v in net.state_dict().items() if "lora_" in k or k.startswith("heads.")}
        save_file_checkpoint(ckpt, trainable, opt, sched, state)

    log_path = out / "train_log.jsonl"
    for epoch in range(state["epoch"], epochs):
        batches = epoch_batches(epoch)
        net.train()
        t0, seen, running = time.time(), 0, {}
        for step in range(state["step"], len(batches)):
            task, everyone = batches[step]
            items, padding = dist.shard(everyone)
            enc = tokenizer([it.text for it in items], padding=True, truncation=True,
                            max_length=config.max_length, return_tensors="pt").to(device)
            _, outs = forward(enc["input_ids"], enc["attention_mask"], [task])
            loss = _loss(net.specs[task], outs[task], items, weights[task])
            if dist.enabled:
                spec = net.specs[task]
                loss = dist.scale(loss, 0 if padding else _loss_weight(spec, items, weights[task]),
                                  _loss_weight(spec, everyone, weights[task]))
            loss.backward()
            apply_step(opt, net.parameters(), sched, clip=1.0)
            value = dist.all_reduce_mean(loss.item())  # the global batch's loss
            seen += len(everyone)
            running[task] = 0.9 * running.get(task, value) + 0.1 * value
            state["step"] = step + 1
            if dist.is_main:
                with log_path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps({"epoch": epoch + 1, "step": step + 1, "task": task, "loss": round(value, 6)}) + "\n")
            if (step + 1) % 50 == 0:
                log(f"epoch {epoch + 1}/{epochs} step {step + 1}/{len(batches)} "
                    f"{seen / (time.time() - t0):.0f} items/s loss {np.mean(list(running.values())):.3f}")
            if (step + 1) % config.checkpoint_every == 0:
                checkpoint()
        metrics = None
        if dist.is_main:
            metrics = evaluate_split(net, tokenizer, specs, data, "val", config.max_length,
                                     config.max_val_per_task if not config.tiny else 64)
        metrics = dist.broadcast(metrics)  # every rank keeps the same history and best
        mean = float(np.nanmean([m["primary"] for m in metrics.values()]))
        state["history"].append({"epoch": epoch + 1, "val_mean": mean, "val": metrics,
                                 "seconds": time.time() - t0})
        log(f"epoch {epoch + 1}: val mean primary {mean:.2f} " +
            " ".join(f"{t}={m['primary']:.1f}" for t, m in metrics.items()))
        if mean > state["best"]:
            state["best"] = mean
            if dist.is_main:
                save_compact(net, specs, out / "model", encoder=config.encoder,
                             encoder_digest=encoder_digest(config.encoder), lora=lora,
                             max_length=config.max_length,
                             extra={"trained": {"config": asdict(config), "epoch": epoch + 1, "val": metrics,
                                                "data": counts, "seconds": round(time.time() - started),
                                                "world": dist.world}})
                write_card(out / "model")
            log(f"saved best model to {out / 'model'}")
        state["epoch"], state["step"] = epoch + 1, 0
        checkpoint()
    state["seconds"] = time.time() - started
    if dist.is_main:
        atomic_write_text(out / "history.json", json.dumps(state, indent=1) + "\n")
        atomic_write_text(out / "data_report.md", report.to_markdown())
    return state


def _class_weights(items, spec, power: float):
    import torch

    if spec.kind != "classification":
        return None
    counts = np.bincount([it.target for it in items], minlength=len(spec.labels)).astype(float)
    w = (counts.sum() / (len(spec.labels) * np.maximum(counts, 1))) ** power
    return torch.tensor(w / w.mean(), dtype=torch.float32)


def _loss_weight(spec, items, weight) -> float:
    """The denominator of ``_loss``'s mean over ``items``: the items' class weights summed
    (classification, as weighted cross-entropy divides), else their number."""
    if weight is None:
        return float(len(items))
    return float(sum(float(weight[int(it.target)]) for it in items))


def _loss(spec, out, items, weight):
    import torch
    import torch.nn.functional as F

    if spec.kind == "regression":
        target = torch.tensor([float(it.target) for it in items], device=out.device)
        return F.mse_loss(out, target)
    target = torch.tensor([int(it.target) for it in items], device=out.device)
    if spec.groups:  # pick each item's target topic: (batch, groups, labels) -> (batch, labels)
        group = torch.tensor([it.group for it in items], device=out.device)
        out = out[torch.arange(len(items), device=out.device), group]
    return F.cross_entropy(out, target, weight=weight)


def evaluate_split(net, tokenizer, specs, data, split: str, max_length: int, limit: int | None) -> dict:
    """Score every head on ``split`` with its task's metrics; ``primary`` is the first metric."""
    import torch

    from somelvlm.data.head_items import cap
    from somelvlm.evaluate.metrics import head_metrics, selection_value

    device = next(net.parameters()).device
    net.eval()
    results = {}
    with torch.inference_mode():
        for spec in specs:
            items = cap(data[spec.task].get(split, []), limit, seed=0)
            if not items:
                continue
            order = sorted(range(len(items)), key=lambda i: len(items[i].text))
            preds: list = [None] * len(items)
            for s in range(0, len(order), 128):
                idx = order[s:s + 128]
                enc = tokenizer([items[i].text for i in idx], padding=True, truncation=True,
                                max_length=max_length, return_tensors="pt").to(device)
                out = net.head(spec.task, net.embed(enc["input_ids"], enc["attention_mask"]))
                if spec.groups:
                    out = out[torch.arange(len(idx), device=device), torch.tensor([items[i].group for i in idx], device=device)]
                for j, i in enumerate(idx):
                    preds[i] = out[j]
            if spec.kind == "regression":
                outs, targets = [float(o) for o in preds], [it.target for it in items]
            else:
                outs, targets = torch.stack(preds).softmax(-1).cpu().numpy(), [it.target for it in items]
            row = head_metrics(spec.task, spec, targets, outs)
            primary = selection_value(spec.task, row)
            row["primary"] = primary
            row["n"] = len(items)
            results[spec.task] = row
    net.train()
    return results
