"""Every digest the project stamps into files, each under its own name, one meaning per name.

| function               | over                                              | stamped as                        |
|------------------------|---------------------------------------------------|-----------------------------------|
| ``weight_files_digest``| the bytes of a folder's ``*.safetensors`` files   | compact ``encoder_digest``        |
| ``base_weights_digest``| a base LM's names, shapes, strided fp32 sample    | ``base.digest`` of generators     |
| ``head_state_digest``  | a small head's names and all its fp32 values      | an index's ``head_digest``        |
| ``export_state_digest``| a module's names, shapes, values, salted          | the ONNX export cache's file name |
| ``feature_cache_key``  | an extractor's id + config and an item's bytes    | the feature cache's file name     |
| ``file_sha256``        | one file's bytes                                  | ``SOURCE.txt`` of a converted base|
| ``model_files_digest`` | a model folder's ``*.safetensors`` + ``*.json``   | an ``analyze`` output's run file  |

The values are part of on-disk formats (shipped ``config.json`` files hold them): changing what a
function hashes makes every saved model or index refuse to load. All are sha256; the 16-hex ones
are cut to the first 16 hex digits. torch is imported only by the functions over modules.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def weight_files_digest(folder: str | Path) -> str:
    """sha256 (first 16 hex) of the ``*.safetensors`` files in ``folder`` (sorted by name, bytes
    concatenated), or ``"unknown"`` when there are none (a hub id not on disk)."""
    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    if not files:
        return "unknown"
    h = hashlib.sha256()
    for f in files:
        with f.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def base_weights_digest(model: Any) -> str:
    """sha256 (first 16 hex) over a base model's parameter names (without peft's prefix; LoRA and
    ``modules_to_save`` left out), shapes and a strided sample of at most 4096 values each (as fp32
    bytes): the same base gives the same digest whatever file layout or dtype it was saved in, or
    thread count it is loaded with (no reductions)."""
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if "lora_" in name or "modules_to_save" in name:
            continue
        h.update(name.removeprefix("base_model.model.").encode())
        h.update(str(tuple(tensor.shape)).encode())
        flat = tensor.detach().to(torch.float32).reshape(-1)
        h.update(flat[:: max(1, flat.numel() // 4096)][:4096].contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def head_state_digest(model: Any) -> str:
    """sha256 (first 16 hex) over a (small) model's state: each name, then all its values as fp32."""
    h = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()[:16]


def export_state_digest(module: Any, salt: str) -> str:
    """sha256 (first 16 hex) seeded with ``salt`` (the exporter's version), over each state entry's
    name, shape and fp32 values: a merged adapter or another base changes it."""
    h = hashlib.sha256(salt.encode())
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def feature_cache_key(extractor_id: str, config: Any, content: bytes) -> str:
    """sha256 hex (64) of ``{"id", "config"}`` as sorted JSON, a NUL byte, then the content bytes."""
    h = hashlib.sha256()
    h.update(json.dumps({"id": extractor_id, "config": config}, sort_keys=True).encode("utf-8"))
    h.update(b"\0")
    h.update(content)
    return h.hexdigest()


def file_sha256(path: str | Path, chunk: int = 1 << 22) -> str:
    """sha256 hex (64) of one file's bytes, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def model_files_digest(folder: str | Path, suffixes: tuple[str, ...] | None = (".safetensors", ".json")) -> str:
    """sha256 (first 16 hex) of what decides a model folder's answers: every ``*.safetensors`` and
    ``*.json`` file under ``folder`` (weights, config, calibration; sub-folders too; every file with
    ``suffixes=None``), each as its relative path and bytes, in path order. The card (``README.md``)
    is not part of it."""
    folder = Path(folder)
    h = hashlib.sha256()
    for f in sorted(q for q in folder.rglob("*") if q.is_file() and (suffixes is None or q.suffix in suffixes)):
        h.update(f.relative_to(folder).as_posix().encode() + b"\0")
        h.update(bytes.fromhex(file_sha256(f)))
    return h.hexdigest()[:16]
