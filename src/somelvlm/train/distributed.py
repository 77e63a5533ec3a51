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

Two engines hold the model (``sharding``): ``ddp`` (default) keeps a whole copy per rank and
all-reduces gradients; ``fsdp`` shards every weight over the ranks with FSDP2 (``train/fsdp.py``),
chosen by ``SOMELVLM_SHARDING=fsdp``, by ``accelerate launch --config_file
configs/accelerate/fsdp-lora-7b.yaml`` (``ACCELERATE_USE_FSDP=true``) or by a recipe's ``sharding``
field. Both average gradients over the ranks, so the batch rule above holds for both; under FSDP
``trainable_state`` / ``load_state`` gather and scatter checkpoints (collectives: every rank calls).
DeepSpeed launches are refused with one line.

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
    sharding: str = "ddp"
    """How ``wrap`` holds the model on several ranks: ``ddp`` (a whole copy each) or ``fsdp`` (sharded)."""
    units: int = 0
    """FSDP units ``wrap`` made (decoder layers + the root); 0 under DDP."""
    wrapped: Any = field(default=None, repr=False)
    """The DDP-wrapped or FSDP-sharded model from ``wrap`` (for ``no_sync`` and the state helpers)."""

    @property
    def enabled(self) -> bool:
        """True when more than one process trains."""
        return self.world > 1

    @property
    def fsdp(self) -> bool:
        """True when several processes train a sharded model."""
        return self.enabled and self.sharding == "fsdp"

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes checkpoints, logs and the model folder."""
        return self.rank == 0

    # -- the model -----------------------------------------------------------------------------------
    def wrap(self, model, find_unused: bool = False):
        """``model`` in ``DistributedDataParallel`` (gradients all-reduced and averaged over ranks in
        ``backward``); the model itself in a single process. ``find_unused``: some trainable
        weights get no gradient in a step (the heads recipe: one task's head per batch). Under FSDP
        the model itself, sharded in place (one unit per decoder layer): call it before building the
        optimizer, whose parameters are then the shards."""
        if not self.enabled:
            return model
        if self.fsdp:
            from somelvlm.train.fsdp import shard_model

            self.units = shard_model(model, self.device, self.world)
            self.wrapped = model
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
        if self.fsdp:
            return _fsdp_no_sync(self.wrapped)
        return self.wrapped.no_sync()

    # -- checkpoints ---------------------------------------------------------------------------------
    def trainable_state(self, trainable: dict, optimizer) -> tuple[dict, Any]:
        """What rank 0 writes into a step checkpoint: the trainable weights by name and the optimizer
        (or its state). Under FSDP both are gathered whole to rank 0's CPU (every rank must call)."""
        if not self.fsdp:
            return trainable, optimizer
        from somelvlm.train.fsdp import optimizer_state, trainable_state

        return trainable_state(self.wrapped, trainable), optimizer_state(self.wrapped, optimizer)

    def load_state(self, trainable: dict, optimizer, weights: dict, saved: dict) -> None:
        """A step checkpoint's whole ``weights`` and optimizer state ``saved`` (read by every rank)
        into this rank's ``trainable`` weights and ``optimizer``; scattered into shards under FSDP."""
        if self.fsdp:
            from somelvlm.train.fsdp import load_optimizer, load_trainable

            load_trainable(self.wrapped, {n: weights[n] for n in trainable})
            load_optimizer(self.wrapped, optimizer, trainable, saved)
            return
        for n, p in trainable.items():
            p.data.copy_(weights[n])
        optimizer.load_state_dict(saved)

    def gather(self, model, keep: Callable[[str], bool]) -> dict | None:
        """Under FSDP: whole copies of ``model``'s tensors whose name passes ``keep``, on rank 0, for the
        model folder (every rank must call). None otherwise: the model's own tensors are whole."""
        if not self.fsdp:
            return None
        from somelvlm.train.fsdp import gather_params

        return gather_params(model, keep)

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


@contextlib.contextmanager
def _fsdp_no_sync(model):
    """FSDP2's gradient accumulation: no reduce-scatter in these backwards."""
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


SHARDINGS = ("ddp", "fsdp")
"""The engines ``Dist.wrap`` drives."""
SHARDING_ENV = "SOMELVLM_SHARDING"
ENGINES_NOT_IN_THE_LOOP = {"ACCELERATE_USE_DEEPSPEED": "DeepSpeed"}
"""Variables ``accelerate launch --config_file`` sets for sharding engines our hand-written loop does not drive."""


def env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true")


def check_engine() -> None:
    """Refuse a launch that asked for DeepSpeed: the recipes' loop would silently keep a full copy of
    the model on every device instead."""
    for name, engine in ENGINES_NOT_IN_THE_LOOP.items():
        if env_true(name):
            raise RuntimeError(
                f"accelerate launched this run with {engine} ({name}=true), but somelvlm's training loop runs "
                f"DDP or FSDP, not {engine}: launch with configs/accelerate/ddp-lora-7b.yaml or fsdp-lora-7b.yaml "
                f"(or torchrun); see docs/distributed-training.md for the {engine} status")


def resolve_sharding(requested: str | None = None, supported: tuple[str, ...] = SHARDINGS) -> str:
    """The engine for this run: ``requested`` (a recipe's ``sharding`` field), else ``SOMELVLM_SHARDING``,
    else ``fsdp`` when accelerate set ``ACCELERATE_USE_FSDP=true``, else ``ddp``. Disagreeing sources,
    an unknown name or an engine the recipe does not run (``supported``) fail in one line."""
    asked = {}
    if requested:
        asked["the config's sharding"] = requested.strip().lower()
    if os.environ.get(SHARDING_ENV, "").strip():
        asked[SHARDING_ENV] = os.environ[SHARDING_ENV].strip().lower()
    if env_true("ACCELERATE_USE_FSDP"):
        asked["ACCELERATE_USE_FSDP=true (accelerate's FSDP config)"] = "fsdp"
    for where, name in asked.items():
        if name not in SHARDINGS:
            raise ValueError(f"{where}={name!r} is not an engine: choose one of {', '.join(SHARDINGS)}")
    if len(set(asked.values())) > 1:
        raise ValueError("the run asks for two engines: " + ", ".join(f"{w} -> {n}" for w, n in asked.items()))
    choice = next(iter(asked.values()), "ddp")
    if choice not in supported:
        raise ValueError(f"this recipe runs {' or '.join(supported)} only, but {next(iter(asked))} asks for "
                         f"{choice}: launch it with configs/accelerate/ddp-lora-7b.yaml or without {SHARDING_ENV}")
    return choice


def local_rank() -> int:
    """``LOCAL_RANK`` as torchrun and accelerate set it (0 without a launcher): the GPU index this
    process owns (QLoRA places its 4-bit base there)."""
    return env_int("LOCAL_RANK", 0)


def init_from_env(timeout_minutes: int = 30, sharding: str | None = None,
                  supported: tuple[str, ...] = SHARDINGS) -> Dist:
    """A ``Dist`` from the launcher's variables, joining the process group when ``WORLD_SIZE > 1``
    (NCCL when CUDA is available, else gloo; ``env://`` rendezvous through ``MASTER_ADDR`` /
    ``MASTER_PORT``). Single process: rank 0 of 1 on ``cuda`` when available, else ``cpu``, as
    the recipes always ran. ``sharding`` / ``supported``: see ``resolve_sharding``."""
    import torch

    check_engine()
    engine = resolve_sharding(sharding, supported)
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
    return Dist(rank=rank, world=world, local_rank=local, device=f"cuda:{local}" if cuda else "cpu", owns_group=owns,
                sharding=engine)


@contextlib.contextmanager
def distributed_run(sharding: str | None = None, supported: tuple[str, ...] = SHARDINGS):
    """``init_from_env`` for the length of a recipe's ``train``; leaves the group it joined at the end."""
    d = init_from_env(sharding=sharding, supported=supported)
    try:
        yield d
    finally:
        d.close()
