"""What every training recipe's loop shares: the optimizer step, learning-rate schedules,
checkpoints and resume, the epoch kept by validation, and the instruct recipes' step loop.

- ``apply_step``: clip (optional), optimizer step, schedule step (optional), gradients to None.
- ``warmup_linear``: a ``LambdaLR`` with linear warmup and a linear decay to zero.
- ``save_step_checkpoint`` / ``latest_step_checkpoint`` / ``resume_step_checkpoint``: a folder per
  step (``checkpoints/step-000050``: trainable weights as safetensors, optimizer, schedule and
  recipe state), written atomically, the two newest kept.
- ``save_file_checkpoint`` / ``load_file_checkpoint``: one atomic ``checkpoint.pt`` (heads recipe).
- ``BestEpoch``: remembers the best epoch's row and weights by a validation metric.
- ``optimizer_and_resume`` + ``run_steps``: the instruct recipes' AdamW, warmup, resume from the
  newest step checkpoint, and length-grouped steps with gradient accumulation, logging and
  checkpoints (``instruct`` on our LVLM and ``instruct_vlm`` on a Hugging Face VLM).

Under torchrun / accelerate both take a ``Dist`` (``train/distributed.py``): a global batch is
``batch_size * world`` items in one seeded order, each rank trains on its slice, the loss is
scaled so DDP's gradient average equals one process on the whole batch, and rank 0 alone writes
the log and the checkpoints, which every rank resumes from. Under FSDP (``Dist.sharding``) the
weights and optimizer state are gathered to rank 0 for each checkpoint and scattered back on
resume; the files are the same as one process writes.

torch is imported inside the functions, so recipe configs load without it.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import random
import shutil
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from somelvlm.atomic import atomic_dir, atomic_path


# -- one optimizer step and the schedules ------------------------------------------------------------
def apply_step(optimizer, params: Iterable | None = None, schedule=None, clip: float | None = None) -> None:
    """After ``loss.backward()``: clip the gradients of ``params`` to norm ``clip`` (when given),
    step the optimizer and the schedule (when given), then set the gradients to None."""
    if clip is not None:
        import torch

        torch.nn.utils.clip_grad_norm_(params, clip)
    optimizer.step()
    if schedule is not None:
        schedule.step()
    optimizer.zero_grad(set_to_none=True)


def warmup_linear(optimizer, warmup: int, total: int, decay: str = "run"):
    """A ``LambdaLR``: the lr factor rises as ``(s + 1) / warmup`` to 1, times a linear decay to 0
    at ``total`` steps: ``1 - s / total`` over the whole run (``decay="run"``, instruct) or
    ``(total - s) / (total - warmup)`` after the warmup (``decay="after_warmup"``, heads)."""
    import torch

    if decay == "run":
        factor = lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 1 - s / max(1, total))  # noqa: E731
    elif decay == "after_warmup":
        factor = lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (total - s) / max(1, total - warmup))  # noqa: E731
    else:
        raise ValueError(f"decay must be 'run' or 'after_warmup', got {decay!r}")
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# -- checkpoints -------------------------------------------------------------------------------------
def save_step_checkpoint(root: Path, step: int, trainable: dict, optimizer, schedule, keep: int = 2) -> Path:
    """``root/step-NNNNNN`` holding ``trainable.safetensors``, ``optimizer.pt`` and
    ``schedule.json`` (step + schedule state), written atomically; only the ``keep`` newest stay.
    ``optimizer``: the optimizer, or its ``state_dict()`` (gathered by ``Dist.trainable_state``)."""
    import torch
    from safetensors.torch import save_file

    final = Path(root) / f"step-{step:06d}"
    with atomic_dir(final) as tmp:
        save_file({n: p.detach().cpu().contiguous() for n, p in trainable.items()}, str(tmp / "trainable.safetensors"))
        torch.save(optimizer if isinstance(optimizer, dict) else optimizer.state_dict(), tmp / "optimizer.pt")
        (tmp / "schedule.json").write_text(json.dumps({"step": step, "schedule": schedule.state_dict()}))
    for old in sorted(Path(root).glob("step-*"))[:-keep]:
        shutil.rmtree(old)
    return final


def latest_step_checkpoint(root: Path) -> Path | None:
    """The newest ``step-*`` folder under ``root``, or None."""
    found = sorted(Path(root).glob("step-*")) if Path(root).is_dir() else []
    return found[-1] if found else None


def resume_step_checkpoint(folder: Path, trainable: dict, optimizer, schedule, dist=None) -> int:
    """Load a step checkpoint into ``trainable`` (in place), the optimizer and the schedule (into
    this rank's shards under FSDP, ``dist``); returns its step. A checkpoint of other weights
    raises a ValueError naming what is missing."""
    import torch
    from safetensors.torch import load_file

    from somelvlm.train.distributed import Dist

    state = load_file(str(folder / "trainable.safetensors"))
    missing = set(trainable) - set(state)
    if missing:
        raise ValueError(f"checkpoint {folder} does not match this config (missing {sorted(missing)[:3]})")
    (dist or Dist()).load_state(trainable, optimizer, state, torch.load(folder / "optimizer.pt", weights_only=True))
    saved = json.loads((folder / "schedule.json").read_text())
    schedule.load_state_dict(saved["schedule"])
    return saved["step"]


def save_file_checkpoint(path: Path, tensors: dict, optimizer, schedule, state: dict) -> None:
    """One file, written atomically: ``{"net": tensors, "opt", "sched", "state": json text}``."""
    import torch

    with atomic_path(path) as tmp:
        torch.save({"net": tensors, "opt": optimizer.state_dict(), "sched": schedule.state_dict(),
                    "state": json.dumps(state)}, tmp)


def load_file_checkpoint(path: Path, module, optimizer, schedule) -> dict:
    """Restore a ``save_file_checkpoint`` file (weights into ``module``, non-strict); returns its state."""
    import torch

    saved = torch.load(path, weights_only=True)
    module.load_state_dict(saved["net"], strict=False)
    optimizer.load_state_dict(saved["opt"])
    schedule.load_state_dict(saved["sched"])
    return json.loads(saved["state"])


# -- the epoch kept by validation --------------------------------------------------------------------
class BestEpoch:
    """The best epoch so far by ``key`` of its row (higher is better), with a copy of its weights."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.row: dict | None = None
        self.state: dict | None = None

    def update(self, row: dict, model) -> bool:
        """Keep ``row`` and ``model``'s weights if it beats the best so far; True when it did."""
        if self.row is not None and not row[self.key] > self.row[self.key]:
            return False
        self.row, self.state = row, copy.deepcopy(model.state_dict())
        return True

    def restore(self, model) -> None:
        """Load the best epoch's weights into ``model``."""
        model.load_state_dict(self.state)


def format_row(row: dict) -> str:
    """An epoch's row as one log line: ``name=value`` with floats to 4 decimals."""
    return " ".join(f"{n}={v:.4f}" if isinstance(v, float) else f"{n}={v}" for n, v in row.items())


# -- the instruct recipes' steps ---------------------------------------------------------------------
def log_setup(log: Callable[[str], None], config: Any, trainable: dict, dist: Any) -> None:
    """One line of trainable weights and, under DDP, one of the processes and the global batch."""
    log(f"trainable weights: {sum(p.numel() for p in trainable.values()):,}")
    if dist.fsdp:
        log(f"{dist.world} processes ({dist.device.split(':')[0]}, FSDP over {dist.units} units): global batch "
            f"{config.batch_size * dist.world * config.grad_accum} per step")
    elif dist.enabled:
        log(f"{dist.world} processes ({dist.device.split(':')[0]}): global batch "
            f"{config.batch_size * dist.world * config.grad_accum} per step")


def optimizer_and_resume(config: Any, out: Path, trainable: dict, n_items: int, log: Callable[[str], None],
                         world: int = 1, groups: list[dict] | None = None, dist=None):
    """AdamW with linear warmup and decay over the run, restored from the newest checkpoint under
    ``out`` when there is one (every rank reads it). ``world`` processes (``dist.world`` when
    ``dist`` is given; under FSDP the model is sharded before this) each take ``batch_size`` items
    of a step's batches; ``groups``: AdamW parameter groups (default: all of ``trainable`` at
    ``config.lr``). Returns (optimizer, schedule, steps per epoch, total steps, step)."""
    import torch

    if dist is not None:
        world = dist.world

    optimizer = torch.optim.AdamW(groups or [{"params": list(trainable.values())}], lr=config.lr,
                                  weight_decay=config.weight_decay)
    per_epoch = math.ceil(n_items / (config.batch_size * world) / config.grad_accum)
    total = min(config.max_steps or per_epoch * config.epochs, per_epoch * config.epochs)
    schedule = warmup_linear(optimizer, config.warmup_steps, total, decay="run")
    step = 0
    latest = latest_step_checkpoint(out / "checkpoints")
    if latest is not None:
        step = resume_step_checkpoint(latest, trainable, optimizer, schedule, dist)
        log(f"resumed from {latest} at step {step}")
    return optimizer, schedule, per_epoch, total, step


def run_steps(config: Any, out: Path, items: list[dict], trainable: dict, optimizer, schedule, per_epoch: int,
              total: int, step: int, batch_loss: Callable[[list[int]], Any], dist=None) -> None:
    """The optimizer steps from ``step`` to ``total``: length-grouped batches (the same order for a
    resumed run), gradient accumulation, clipping, a progress bar, loss log lines and checkpoints.
    ``batch_loss(indices)`` is the mean next-token loss of one batch of ``items`` (through the
    DDP-wrapped or FSDP-sharded model under ``dist``). With ``dist`` of several ranks each global batch of
    ``batch_size * world`` items is sharded by rank, each rank's loss weighted by its answer tokens,
    the logged loss is the global batch's, and rank 0 alone writes the log and checkpoints."""
    from tqdm import tqdm

    from somelvlm.train.distributed import Dist

    dist = dist or Dist()
    bar = tqdm(total=total, initial=step, desc=f"stage {config.stage}", unit="step", disable=not dist.is_main)
    t0 = time.perf_counter()
    with (out / "train_log.jsonl").open("a", encoding="utf-8") if dist.is_main else contextlib.nullcontext() as logf:
        while step < total:
            epoch, within = divmod(step, per_epoch)
            batches = length_grouped_batches(items, config.batch_size * dist.world, config.seed + epoch)
            for s in range(within, per_epoch):
                if step >= total:
                    break
                loss_sum = 0.0
                micro = batches[s * config.grad_accum:(s + 1) * config.grad_accum]
                for k, b in enumerate(micro):
                    local, padding = dist.shard(b)
                    with dist.no_sync(last=k == len(micro) - 1):
                        loss = batch_loss(local)
                        if dist.enabled:
                            loss = dist.scale(loss, 0 if padding else answer_tokens(items, local),
                                              answer_tokens(items, b))
                        loss = loss / config.grad_accum
                        loss.backward()
                    loss_sum += float(loss.detach())
                loss_sum = dist.all_reduce_mean(loss_sum)
                apply_step(optimizer, trainable.values(), schedule, clip=1.0)
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum:.3f}")
                if logf is not None and (step % config.log_every == 0 or step == total):
                    logf.write(json.dumps({"step": step, "epoch": epoch, "lm": round(loss_sum, 4),
                                           "lr": schedule.get_last_lr()[0],
                                           "sec": round(time.perf_counter() - t0, 1)}) + "\n")
                    logf.flush()
                if step % config.checkpoint_every == 0 or step == total:
                    weights, opt_state = dist.trainable_state(trainable, optimizer)  # gathered under FSDP
                    if dist.is_main:
                        save_step_checkpoint(out / "checkpoints", step, weights, opt_state, schedule)
    bar.close()
    dist.barrier()  # the last checkpoint is on disk before any rank goes on


def answer_tokens(items: list[dict], indices: list[int]) -> int:
    """Positions a next-token loss is taken over in these items: labels after the first that are
    not -100 (the denominator of the mean loss of their batch)."""
    return sum(sum(1 for t in items[i]["labels"][1:] if t != -100) for i in indices)


def length_grouped_batches(items: list[dict], size: int, seed: int) -> list[list[int]]:
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


def stage1_steps(config, out: Path, items: list[dict], trainable: dict, optimizer, schedule,
                 per_epoch: int, total: int, step: int, batch_terms: Callable[[list[dict]], dict],
                 log: Callable[[str], None]) -> None:
    """LMM-RGCL stage 1's's steps from ``step`` to ``total``: length-grouped seeded batches, ``batch_terms(items)``
    (named loss terms, ``loss`` among them) per micro-batch, logs to ``out/train_log.jsonl`` and
    checkpoints under ``out/checkpoints`` (a rerun resumes exactly)."""
    t0 = time.perf_counter()
    with (out / "train_log.jsonl").open("a", encoding="utf-8") as logf:
        while step < total:
            epoch, within = divmod(step, per_epoch)
            batches = length_grouped_batches(items, config.batch_size, config.seed + epoch)
            for s in range(within, per_epoch):
                if step >= total:
                    break
                sums: dict[str, float] = {}
                for b in batches[s * config.grad_accum:(s + 1) * config.grad_accum]:
                    terms = batch_terms([items[i] for i in b])
                    (terms["loss"] / config.grad_accum).backward()
                    for n, v in terms.items():
                        sums[n] = sums.get(n, 0.0) + float(v.detach()) / config.grad_accum
                apply_step(optimizer, list(trainable.values()), schedule, clip=1.0)
                step += 1
                if step % config.log_every == 0 or step == total:
                    row = {"step": step, "epoch": epoch, **{n: round(v, 4) for n, v in sums.items()},
                           "lr": schedule.get_last_lr()[0], "sec": round(time.perf_counter() - t0, 1)}
                    logf.write(json.dumps(row) + "\n")
                    logf.flush()
                    log(json.dumps(row))
                if step % config.checkpoint_every == 0 or step == total:
                    save_step_checkpoint(out / "checkpoints", step, trainable, optimizer, schedule)
