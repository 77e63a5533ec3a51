"""A small real generator for the server's tests: a tiny random ``LlamaForCausalLM`` built from a
config (no download), with the MiniLM WordPiece tokenizer that ships in a package. Registered in
``GENERATORS`` as ``tiny_llama`` like any backend. Its answers are random words, but they come from
a real model through the real code path. The integrator should point the generative tests at the
real ``lvlm`` backend once that branch lands.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from somelvlm.models.generation import GENERATORS, GenerationConfig

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


class TinyLlamaGenerator:
    """Greedy (or sampled) decoding with a tiny causal LM; images are accepted and ignored (text-only)."""

    def __init__(self, folder: Path | str, **_kwargs) -> None:
        import torch
        from transformers import AutoTokenizer, LlamaForCausalLM

        folder = Path(folder)
        self.name = json.loads((folder / "config.json").read_text()).get("name", folder.name)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = LlamaForCausalLM.from_pretrained(folder, use_safetensors=True).eval()
        self.calls = 0
        self._torch = torch

    def generate(self, prompts, images=None, config=None):
        config = config or GenerationConfig()
        self.calls += 1
        out = []
        with self._torch.inference_mode():
            for prompt in prompts:  # one at a time: answers do not depend on how requests were batched
                enc = self.tokenizer(prompt, return_tensors="pt", truncation=True, max_length=256,
                                     return_token_type_ids=False)
                sample = config.temperature > 0
                if sample and config.seed is not None:
                    self._torch.manual_seed(config.seed)
                ids = self.model.generate(**enc, max_new_tokens=config.max_new_tokens, do_sample=sample,
                                          temperature=config.temperature if sample else None,
                                          top_p=config.top_p if sample else None, pad_token_id=0)
                out.append(self.tokenizer.decode(ids[0, enc["input_ids"].shape[1]:], skip_special_tokens=True))
        return out
