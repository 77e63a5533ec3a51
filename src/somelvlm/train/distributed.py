"""Training on several processes: the one place every recipe gets its distributed setup from.

``torchrun --nproc_per_node N`` and ``accelerate launch`` start one process per device and set
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` (and ``MASTER_ADDR`` / ``MASTER_PORT``); ``init_from_env``
reads them, joins the process group (gloo on CPU, NCCL on GPU) and returns a ``Dist`` that the
recipes ask for everything else: the device, whether this process writes files (``is_main``), the
model wrapped in ``DistributedDataParallel``, this rank's share of a global batch, barriers.

The batch rule that makes N processes equal one: ``batch_size`` is per process, so a global batch
holds ``batch_size * world`` items in the same seeded order a single process would draw with that
batch size; rank r takes the r-th contiguous slice (``shard``). A recipe's loss is a mean over
its slice (answer tokens, or class-weighted items); ``Dist.scale`` turns it into the rank's share
of the mean over the whole global batch, so that DDP's gradient average equals the gradient of
one process on the whole batch:

    loss_r * (w_r * world / W),   W = sum_r w_r   (w_r: the denominator of rank r's mean)
    => (1 / world) * sum_r grad(loss_r * w_r * world / W) = grad(sum_r loss_r * w_r / W)

Without ``WORLD_SIZE`` (or with 1) nothing changes: no process group, the model unwrapped, the
loss unscaled, every file written as before.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Dist:
    """Where this process stands in the run: ``rank`` of ``world`` processes, ``local_rank`` on its
    machine, the torch ``device`` it trains on. ``world == 1`` is the plain single-process run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"
    owns_group: bool = False
    """True when ``init_from_env`` created the process group (``close`` then destroys it)."""
    wrapped: Any = field(default=None, repr=False)
    """The DDP-wrapped model from ``wrap`` (for ``no_sync``)."""

    @property
    def enabled(self) -> bool:
        """True when more than one process trains."""
        return self.world > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes checkpoints, logs and the model folder."""
        return self.rank == 0

    # -- the model -----------------------------------------------------------------------------------
    def wrap(self, model, find_unused: bool = False):
        """``model`` in ``DistributedDataParallel`` (gradients all-reduced and averaged over ranks in
        ``backward``); the model itself in a single process. ``find_unused``: some trainable
        weights get no gradient in a step (the heads recipe: one task's head per batch)."""
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.local_rank] if self.device.startswith("cuda") else None
        self.wrapped = DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused)
        return self.wrapped

    def no_sync(self, last: bool):
        """Context for one micro-batch's backward under gradient accumulation: gradients stay local
        until the ``last`` micro-batch of the step, whose backward all-reduces them once."""
        if self.wrapped is None or last:
            return contextlib.nullcontext()
        return self.wrapped.no_sync()

    # -- the data ------------------------------------------------------------------------------------
    def shard(self, batch: Sequence) -> tuple[list, bool]:
        """This rank's contiguous slice of one global ``batch`` (slice sizes differ by at most one),
        and whether it is padding: a rank left without items gets the batch's first item to run
        forward and backward on (DDP needs every rank in each all-reduce); its loss counts zero."""
        if not self.enabled:
            return list(batch), False
        base, extra = divmod(len(batch), self.world)
        start = self.rank * base + min(self.rank, extra)
        part = list(batch[start:start + base + (self.rank < extra)])
        if not part:
            return list(batch[:1]), True
        return part, False

    def scale(self, loss, local_weight: float, global_weight: float):
        """``loss`` (a mean over this rank's slice, ``local_weight`` its denominator) as this rank's
        share of the mean over the global batch (denominator ``global_weight``), pre-multiplied by
        ``world`` because DDP averages gradients. The loss itself in a single process."""
        if not self.enabled:
            return loss
        return loss * (local_weight * self.world / max(global_weight, 1e-12))

    # -- communication -------------------------------------------------------------------------------
    def all_reduce_mean(self, value: float) -> float:
        """The mean of a float over ranks (the global batch's loss from the ranks' scaled shares)."""
        if not self.enabled:
            return value
        import torch
        import torch.distributed as dist

        t = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item()) / self.world

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (picklable; validation metrics, not weights)."""
        if not self.enabled:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        """Wait until every rank is here (after rank 0 wrote what the others will read)."""
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def main_only(self, log: Callable[[str], None]) -> Callable[[str], None]:
        """``log`` on rank 0, silence elsewhere (one copy of each line)."""
        return log if self.is_main else (lambda _msg: None)

    def close(self) -> None:
        """Leave the process group if this ``Dist`` created it."""
        if self.owns_group:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()
            self.owns_group = False


def env_int(name: str, default: int) -> int:
    """An integer launcher variable; a malformed one fails naming it."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer (set by torchrun / accelerate)") from None


ENGINES_NOT_IN_THE_LOOP = {"ACCELERATE_USE_FSDP": "FSDP", "ACCELERATE_USE_DEEPSPEED": "DeepSpeed"}
"""Variables ``accelerate launch --config_file`` sets for sharding engines our hand-written loop does not drive."""


def check_engine() -> None:
    """Refuse a launch that asked for FSDP or DeepSpeed: the recipes' loop shards data with DDP and
    would silently keep a full copy of the model on every device instead."""
    for name, engine in ENGINES_NOT_IN_THE_LOOP.items():
        if os.environ.get(name, "").lower() in ("1", "true"):
            raise RuntimeError(
                f"accelerate launched this run with {engine} ({name}=true), but somelvlm's training loop runs "
                f"DDP only (a full model copy per process): launch with configs/accelerate/ddp-lora-7b.yaml or "
                f"torchrun; see docs/distributed-training.md for the {engine} status")


def local_rank() -> int:
    """``LOCAL_RANK`` as torchrun and accelerate set it (0 without a launcher): the GPU index this
    process owns (QLoRA places its 4-bit base there)."""
    return env_int("LOCAL_RANK", 0)


def init_from_env(timeout_minutes: int = 30) -> Dist:
    """A ``Dist`` from the launcher's variables, joining the process group when ``WORLD_SIZE > 1``
    (NCCL when CUDA is available, else gloo; ``env://`` rendezvous through ``MASTER_ADDR`` /
    ``MASTER_PORT``). Single process: rank 0 of 1 on ``cuda`` when available, else ``cpu``, as
    the recipes always ran."""
    import torch

    check_engine()
    world = env_int("WORLD_SIZE", 1)
    if world <= 1:
        return Dist(device="cuda" if torch.cuda.is_available() else "cpu")
    rank, local = env_int("RANK", 0), local_rank()
    if not 0 <= rank < world:
        raise ValueError(f"RANK={rank} is outside WORLD_SIZE={world}")
    import datetime

    import torch.distributed as dist

    cuda = torch.cuda.is_available()
    if cuda:
        if local >= torch.cuda.device_count():
            raise RuntimeError(f"LOCAL_RANK={local} but only {torch.cuda.device_count()} GPUs are visible: "
                               f"start at most that many processes per machine (--nproc_per_node)")
        torch.cuda.set_device(local)
    owns = False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(minutes=timeout_minutes))
        owns = True
    return Dist(rank=rank, world=world, local_rank=local, device=f"cuda:{local}" if cuda else "cpu", owns_group=owns)


@contextlib.contextmanager
def distributed_run():
    """``init_from_env`` for the length of a recipe's ``train``; leaves the group it joined at the end."""
    d = init_from_env()
    try:
        yield d
    finally:
        d.close()
