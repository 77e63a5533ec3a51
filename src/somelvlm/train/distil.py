"""Recipe: distil a teacher's per-task probabilities into a compact model's own encoder and heads.

The student is a compact model folder (SoMe-mini): its LoRA keeps training from where it was, and the
heads of ``tasks`` learn the teacher's soft labels (cross-entropy to the teacher's probabilities, the
gradient of KL) on a transfer set of posts, most of them unlabelled for those tasks. The other heads
are not trained here; an embedding-preservation term, ``||e - e_old||^2 / mean ||e_old||^2`` on posts of
the other tasks (their embeddings by the starting model, given), keeps their inputs where they were.

    from somelvlm.train.distil import DistilConfig, train
    train(DistilConfig(student="src/somelvlm/assets/some-mini", out="runs/distil", tasks=[...]),
          texts, {task: probs}, keep_texts, keep_emb)

``benchmarks/distil.py`` builds the teacher (SoMe-mini + all-mpnet-base-v2 probes) and the transfer set.
Every epoch writes a model folder (``out/epoch-N``; the last also ``out/model``): the caller chooses
among them on validation. A checkpoint every ``checkpoint_every`` steps lets a run resume.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


@dataclass
class DistilConfig:
    """Options of the distillation recipe."""

    student: str
    """Compact model folder to start from (its LoRA, heads, encoder and max length)."""
    tasks: list[str]
    """Heads trained on the teacher's probabilities."""
    out: str = "runs/distil"
    epochs: int = 2
    batch_size: int = 32
    """Transfer posts per step."""
    keep_batch_size: int = 16
    """Embedding-preservation posts per step (0: no preservation term)."""
    lr_encoder: float = 2e-4
    lr_heads: float = 1e-3
    weight_decay: float = 0.01
    warmup: float = 0.05
    lora_dropout: float = 0.1
    preserve_weight: float = 1.0
    seed: int = 13
    threads: int | None = None
    checkpoint_every: int = 200

    def __post_init__(self) -> None:
        if not self.tasks:
            raise ValueError("DistilConfig needs `tasks`: the heads to train on the teacher's probabilities")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("`epochs` and `batch_size` must be at least 1")


def soft_cross_entropy(logits, target):
    """Mean over posts (and per-target rows) of ``-sum p_teacher log softmax(logits)``: logits and
    target (batch, labels) or (batch, groups, labels)."""
    return -(target * logits.log_softmax(-1)).sum(-1).mean()


def train(config: DistilConfig, texts: list[str], targets: dict[str, np.ndarray], keep_texts: list[str],
          keep_emb: np.ndarray, log=print) -> Path:
    """Train and write ``out/model``; returns its path. ``targets[task]``: the teacher's probabilities,
    (len(texts), labels) or (len(texts), groups, labels); ``keep_emb``: (len(keep_texts), dim), the
    starting model's embeddings of ``keep_texts``."""
    import torch

    from somelvlm.atomic import atomic_write_text
    from somelvlm.models.card import write_card
    from somelvlm.models.compact import load_net, save_compact
    from somelvlm.train.loop import apply_step, load_file_checkpoint, save_file_checkpoint, warmup_linear

    started = time.time()
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    missing = [t for t in config.tasks if t not in targets or len(targets[t]) != len(texts)]
    if missing:
        raise ValueError(f"no teacher probabilities (one row per transfer post) for {missing}")
    tokenizer, net, student = load_net(Path(config.student), merge=False, lora_dropout=config.lora_dropout)
    net.train()
    max_length = student["max_length"]
    for p in net.heads.parameters():
        p.requires_grad_(False)
    for t in config.tasks:
        net.heads[t].requires_grad_(True)
    soft = {t: torch.from_numpy(np.asarray(targets[t], dtype=np.float32)) for t in config.tasks}
    keep = torch.from_numpy(np.asarray(keep_emb, dtype=np.float32))
    keep_scale = float((keep ** 2).sum(-1).mean()) if len(keep) else 1.0

    def epoch_batches(epoch: int) -> list[list[int]]:
        rng = random.Random(config.seed * 1000 + epoch)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # length bucketing
        batches = [order[i:i + config.batch_size] for i in range(0, len(order), config.batch_size)]
        rng.shuffle(batches)
        return batches

    per_epoch = len(epoch_batches(0))
    total = per_epoch * config.epochs
    groups = [{"params": [p for p in net.encoder.parameters() if p.requires_grad], "lr": config.lr_encoder},
              {"params": [p for t in config.tasks for p in net.heads[t].parameters()], "lr": config.lr_heads}]
    opt = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    sched = warmup_linear(opt, max(1, int(config.warmup * total)), total, decay="after_warmup")
    state = {"epoch": 0, "step": 0}
    ckpt = out / "checkpoint.pt"
    if ckpt.is_file():
        state = load_file_checkpoint(ckpt, net, opt, sched)
        log(f"resumed at epoch {state['epoch']} step {state['step']}")
    log(f"distil: {len(texts)} transfer posts, {len(keep_texts)} preservation posts, {per_epoch} steps an epoch, "
        f"{config.epochs} epochs; tasks {config.tasks}")

    def checkpoint() -> None:
        trainable = {k: v for k, v in net.state_dict().items() if "lora_" in k or k.startswith("heads.")}
        save_file_checkpoint(ckpt, trainable, opt, sched, state)

    def encode(batch_texts: list[str]):
        enc = tokenizer(batch_texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        return net.embed(enc["input_ids"], enc["attention_mask"])  # (batch, dim)

    log_path = out / "train_log.jsonl"
    specs = list(net.specs.values())
    for epoch in range(state["epoch"], config.epochs):
        batches = epoch_batches(epoch)
        rng = np.random.default_rng(config.seed * 1000 + epoch)
        keep_rows = [rng.choice(len(keep_texts), size=config.keep_batch_size, replace=False) if config.keep_batch_size
                     and len(keep_texts) else [] for _ in batches]
        t0, running, first = time.time(), None, state["step"]
        for step in range(state["step"], len(batches)):
            idx = torch.tensor(batches[step])
            emb = encode([texts[i] for i in batches[step]])
            parts = {t: soft_cross_entropy(net.head(t, emb), soft[t][idx]) for t in config.tasks}
            loss = sum(parts.values())
            if len(keep_rows[step]):
                rows = keep_rows[step]
                e = encode([keep_texts[i] for i in rows])
                parts["preserve"] = ((e - keep[torch.from_numpy(rows)]) ** 2).sum(-1).mean() / keep_scale
                loss = loss + config.preserve_weight * parts["preserve"]
            loss.backward()
            apply_step(opt, net.parameters(), sched, clip=1.0)
            value = float(loss.detach())
            running = value if running is None else 0.95 * running + 0.05 * value
            state["step"] = step + 1
            with log_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps({"epoch": epoch + 1, "step": step + 1, "loss": round(value, 5),
                                    **{k: round(float(v.detach()), 5) for k, v in parts.items()}}) + "\n")
            if (step + 1) % 25 == 0:
                log(f"epoch {epoch + 1}/{config.epochs} step {step + 1}/{len(batches)} "
                    f"{(step + 1 - first) / (time.time() - t0):.2f} steps/s loss {running:.4f}")
            if (step + 1) % config.checkpoint_every == 0:
                checkpoint()
        folder = out / f"epoch-{epoch + 1}"
        trained = dict(student.get("trained", {}))
        trained["distil"] = {"config": asdict(config), "epoch": epoch + 1, "from": str(config.student),
                             "transfer_posts": len(texts), "preservation_posts": len(keep_texts),
                             "seconds": round(time.time() - started)}
        lora = student["lora"]
        save_compact(net, specs, folder, encoder=student["encoder"], encoder_digest=student["encoder_digest"],
                     lora=lora, max_length=max_length, extra={"trained": trained})
        write_card(folder)
        log(f"epoch {epoch + 1} written to {folder}")
        state["epoch"], state["step"] = epoch + 1, 0
        checkpoint()
    last = out / f"epoch-{config.epochs}"
    shutil.copytree(last, out / "model", dirs_exist_ok=True)
    atomic_write_text(out / "history.json", json.dumps({"distil_seconds": time.time() - started, **state}) + "\n")
    return out / "model"
