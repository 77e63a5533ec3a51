"""A small real generator for the server's tests: a tiny random ``LlamaForCausalLM`` built from a
config (no download), with the MiniLM WordPiece tokenizer that ships in a package, decoded by the
real ``lvlm`` backend (``LVLMGenerator``). Registered in ``GENERATORS`` as ``tiny_llama`` because its
folder holds a bare LM, not an adapter. Its answers are random words, from the real code path.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from somelvlm.models.generation import GENERATORS

GENERATORS.register("tiny_llama", "tiny_generator:TinyLlamaGenerator")


def make_tiny_llama(folder: Path, seed: int = 0) -> Path:
    """Save a 2-layer, 64-dim LlamaForCausalLM (safetensors) plus a tokenizer; config.json names the backend."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from somelvlm.models.encoder import resolve_encoder

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=30522, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         bos_token_id=101, eos_token_id=102, pad_token_id=0)
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    source = Path(resolve_encoder("minilm"))
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (source / name).is_file():
            shutil.copy(source / name, folder / name)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(backend="tiny_llama", name="tiny-llama")
    (folder / "config.json").write_text(json.dumps(cfg, indent=1))
    return folder


def TinyLlamaGenerator(folder: Path | str, **_kwargs):
    """The real ``lvlm`` generator (``LVLMGenerator.from_base``) over the tiny LM in ``folder``: text only,
    no adapter, the same decoding code path as the shipped SoMe-LVLM."""
    from somelvlm.models.lvlm import LVLMGenerator

    folder = Path(folder)
    name = json.loads((folder / "config.json").read_text()).get("name", folder.name)
    return LVLMGenerator.from_base(folder, name=name)
