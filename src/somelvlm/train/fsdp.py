"""FSDP for the instruct loop: the model sharded over the ranks with torch's FSDP2 (``fully_shard``),
and its trainable weights and optimizer state gathered into the same checkpoint files a single
process writes, so a checkpoint resumes under any engine (1 process, DDP, FSDP).

``shard_model`` calls ``fully_shard`` on every decoder layer (frozen base weights and LoRA weights
of a layer share one unit), then on the whole model (embeddings, final norm, head, connector): each
rank keeps ``1 / world`` of every weight and gathers a layer's weights only for its forward and
backward. Gradients are reduce-scattered and averaged over the ranks, as DDP all-reduces and
averages them, so the loop's loss scaling (``Dist.scale``) is the same for both engines.

Which layers, and the knobs, come from the variables ``accelerate launch --config_file
configs/accelerate/fsdp-lora-7b.yaml`` sets (set them by hand under torchrun):

- ``FSDP_TRANSFORMER_CLS_TO_WRAP``: decoder layer class names, comma-separated; default: the
  ``_no_split_modules`` of every Hugging Face model inside (``LlamaDecoderLayer`` for Llama).
- ``FSDP_RESHARD_AFTER_FORWARD`` (default true): free a layer's gathered weights after its forward.
- ``FSDP_OFFLOAD_PARAMS`` (default false): shards and optimizer state in CPU RAM.
- ``FSDP_ACTIVATION_CHECKPOINTING`` (default false): the HF models recompute activations in backward.
- ``ACCELERATE_MIXED_PRECISION`` = ``bf16`` / ``fp16``: layers compute in that dtype, gradients are
  reduced in fp32 and the sharded weights and optimizer state stay fp32.

The state helpers are collectives under FSDP: every rank calls them, in the same order.
"""

from __future__ import annotations

import os
from typing import Any

TRUE = ("1", "true", "yes")


def env_flag(name: str, default: bool) -> bool:
    """A true/false launcher variable (``true`` / ``false`` as accelerate writes them)."""
    raw = os.environ.get(name, "").strip().lower()
    return default if raw == "" else raw in TRUE


def layer_classes(model) -> set[str]:
    """Class names of the decoder layers to shard one by one: ``FSDP_TRANSFORMER_CLS_TO_WRAP``, else the
    ``_no_split_modules`` the Hugging Face models inside ``model`` declare."""
    raw = os.environ.get("FSDP_TRANSFORMER_CLS_TO_WRAP", "").strip()
    if raw:
        return {name.strip() for name in raw.split(",") if name.strip()}
    found: set[str] = set()
    for module in model.modules():
        found.update(getattr(module, "_no_split_modules", None) or [])
    return found


def decoder_layers(model) -> list:
    """The modules ``shard_model`` gives a unit each, in forward order; a ValueError naming the classes
    asked for and the layer-like classes present when none matches."""
    wanted = layer_classes(model)
    layers = [m for m in model.modules() if type(m).__name__ in wanted]
    if not layers:
        present = sorted({type(m).__name__ for m in model.modules() if type(m).__name__.endswith(("Layer", "Block"))})
        raise ValueError(f"FSDP found no decoder layer to shard (looked for {sorted(wanted) or 'none declared'}; "
                         f"this model has {present or 'no *Layer / *Block modules'}): set "
                         f"fsdp_transformer_layer_cls_to_wrap in the accelerate config "
                         f"(FSDP_TRANSFORMER_CLS_TO_WRAP under torchrun)")
    return layers


def shard_options(device: str, world: int) -> dict[str, Any]:
    """``fully_shard`` keyword arguments from the launcher's variables: a 1-D mesh over ``world``
    ranks on ``device``'s type, resharding, CPU offload and mixed precision."""
    import torch
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy

    options: dict[str, Any] = {"mesh": init_device_mesh(device.split(":")[0], (world,)),
                               "reshard_after_forward": env_flag("FSDP_RESHARD_AFTER_FORWARD", True)}
    if env_flag("FSDP_OFFLOAD_PARAMS", False):
        options["offload_policy"] = CPUOffloadPolicy()
    precision = os.environ.get("ACCELERATE_MIXED_PRECISION", "no").strip().lower()
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    if precision in dtypes:
        options["mp_policy"] = MixedPrecisionPolicy(param_dtype=dtypes[precision], reduce_dtype=torch.float32)
    elif precision not in ("", "no", "fp32"):
        raise ValueError(f"ACCELERATE_MIXED_PRECISION={precision!r}: FSDP here takes no, bf16 or fp16")
    return options


def shard_model(model, device: str, world: int) -> int:
    """Shard ``model`` in place (FSDP2): rank 0's trainable weights broadcast first (as DDP does; the
    frozen base is read from the same files on every rank), activation checkpointing when asked,
    one unit per decoder layer, then the root. ``model`` may still be on the CPU: each unit's
    weights move to ``device`` as it is sharded, so a GPU never holds more than one whole layer.
    Returns the number of units."""
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    for p in model.parameters():
        if p.requires_grad:  # through the device: NCCL broadcasts CUDA tensors only
            rank0 = p.data.to(device)
            dist.broadcast(rank0, src=0)
            p.data.copy_(rank0)
    if env_flag("FSDP_ACTIVATION_CHECKPOINTING", False):
        enable_activation_checkpointing(model)
    options = shard_options(device, world)
    layers = decoder_layers(model)
    for layer in layers:
        fully_shard(layer, **options)
    fully_shard(model, **options)
    return len(layers) + 1


def enable_activation_checkpointing(model) -> None:
    """Non-reentrant activation checkpointing on every Hugging Face model inside ``model`` that supports it."""
    for module in model.modules():
        if getattr(module, "supports_gradient_checkpointing", False) and hasattr(module, "gradient_checkpointing_enable"):
            module.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


# -- state: gathered for rank 0's files, scattered back on resume --------------------------------------
def full_options(**extra):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **extra)


def trainable_state(model, trainable: dict) -> dict:
    """The ``trainable`` weights as whole CPU tensors by name on rank 0 (``{}`` on the others).
    (Gathered by name rather than with ``get_model_state_dict(ignore_frozen_params=True)``, which also
    gathers a frozen weight tied to another, such as a tied LM head: a vocabulary-sized matrix.)"""
    return gather_params(model, lambda name: name in trainable)


def optimizer_state(model, optimizer) -> dict:
    """The optimizer state, whole, on rank 0 (``{}`` on the others), in ``optimizer.state_dict()``'s
    layout (parameters by index), so one process or DDP resumes it too."""
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

    by_name = get_optimizer_state_dict(model, optimizer, options=full_options(cpu_offload=True))
    if not by_name:
        return {}
    order = [name for group in by_name["param_groups"] for name in group["params"]]
    index = {name: i for i, name in enumerate(order)}
    return {"state": {index[name]: s for name, s in by_name["state"].items()},
            "param_groups": [{**g, "params": [index[n] for n in g["params"]]} for g in by_name["param_groups"]]}


def load_trainable(model, state: dict) -> None:
    """Whole trainable weights (the same ``state`` on every rank) into the sharded ``model``."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict

    set_model_state_dict(model, state, options=full_options(strict=False))


def load_optimizer(model, optimizer, trainable: dict, saved: dict) -> None:
    """An ``optimizer.state_dict()``-layout ``saved`` state (whole, on every rank) into the sharded
    optimizer: indices mapped to parameter names through ``trainable``, then scattered."""
    from torch.distributed.checkpoint.state_dict import set_optimizer_state_dict

    names = {id(p): n for n, p in trainable.items()}
    order = [names[id(p)] for group in optimizer.param_groups for p in group["params"]]
    by_name = {"state": {order[int(i)]: s for i, s in saved["state"].items()},
               "param_groups": [{**g, "params": [order[int(i)] for i in g["params"]]} for g in saved["param_groups"]]}
    set_optimizer_state_dict(model, optimizer, optim_state_dict=by_name, options=full_options())


def gather_params(model, keep) -> dict:
    """Whole CPU copies of ``model``'s parameters and buffers whose name passes ``keep`` (trainable or
    not: the stage-1 adapter is frozen in stage 2), on rank 0 (``{}`` elsewhere); the final model folder."""
    import torch.distributed as dist
    from torch.distributed.tensor import DTensor

    out = {}
    for name, tensor in model.state_dict().items():
        if not keep(name):
            continue
        whole = tensor.full_tensor() if isinstance(tensor, DTensor) else tensor
        if dist.get_rank() == 0:
            out[name] = whole.detach().cpu().contiguous()
    return out
