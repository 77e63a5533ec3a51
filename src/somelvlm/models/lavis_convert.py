"""Convert SoMeLVLM's published weights (LAVIS InstructBLIP) to ``InstructBlipForConditionalGeneration``.

SoMeLVLM ships a LAVIS training checkpoint of its connector (``checkpoint.pth``: the Q-Former,
its 32 query tokens, ``ln_vision`` and ``llm_proj``; LAVIS saves only trainable weights) next to a
Vicuna-7b-v1.1 Hugging Face folder. The frozen EVA ViT-g comes from LAVIS's ``eva_vit_g.pth``
(pass it as ``vision``) unless the checkpoint holds ``visual_encoder.*`` itself.

Key mapping (LAVIS -> transformers), learned from LAVIS ``blip2_vicuna_instruct`` and transformers'
own conversion script:

==========================================  =============================================
visual_encoder.cls_token / pos_embed         vision_model.embeddings.class_embedding / position_embedding
visual_encoder.patch_embed.proj.*            vision_model.embeddings.patch_embedding.*
visual_encoder.blocks.i.norm1/norm2.*        vision_model.encoder.layers.i.layer_norm1/2.*
visual_encoder.blocks.i.attn.qkv.weight      ...self_attn.qkv.weight
visual_encoder.blocks.i.attn.q_bias, v_bias  ...self_attn.qkv.bias = cat(q_bias, 0, v_bias)
visual_encoder.blocks.i.attn.proj.*          ...self_attn.projection.*
visual_encoder.blocks.i.mlp.fc1/fc2.*        ...mlp.fc1/fc2.*
ln_vision.*                                  vision_model.post_layernorm.*
Qformer.bert.*  (attention.self -> attention.attention, embeddings.LayerNorm -> layernorm)  qformer.*
query_tokens                                 query_tokens
llm_proj.*                                   language_projection.*
Vicuna folder (model.*, lm_head.*)           language_model.model.*, language_model.lm_head.*
==========================================  =============================================

For users with a GPU and the download (about 14 GB for Vicuna-7b, 2 GB for EVA ViT-g)::

    somelvlm convert-lavis --checkpoint SoMeLVLM/checkpoint.pth --vicuna vicuna-7b-v1.1 \\
        --vision eva_vit_g.pth --out somelvlm-instructblip [--allow-pickle]

then load with ``HFVisionGenerator("somelvlm-instructblip")`` (backend ``hf_vlm``). LAVIS
checkpoints are pickles: they load with ``torch.load(weights_only=True)`` when they hold only
tensors; a checkpoint that also pickles its training config needs ``allow_pickle=True``, which
runs code from the file: only for files you trust.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import torch

log = logging.getLogger(__name__)

VISION_RENAMES = [
    (r"^visual_encoder\.cls_token$", "vision_model.embeddings.class_embedding"),
    (r"^visual_encoder\.pos_embed$", "vision_model.embeddings.position_embedding"),
    (r"^visual_encoder\.patch_embed\.proj\.", "vision_model.embeddings.patch_embedding."),
    (r"^ln_vision\.", "vision_model.post_layernorm."),
    (r"^visual_encoder\.blocks\.(\d+)\.norm1\.", r"vision_model.encoder.layers.\1.layer_norm1."),
    (r"^visual_encoder\.blocks\.(\d+)\.norm2\.", r"vision_model.encoder.layers.\1.layer_norm2."),
    (r"^visual_encoder\.blocks\.(\d+)\.attn\.qkv\.weight$", r"vision_model.encoder.layers.\1.self_attn.qkv.weight"),
    (r"^visual_encoder\.blocks\.(\d+)\.attn\.proj\.", r"vision_model.encoder.layers.\1.self_attn.projection."),
    (r"^visual_encoder\.blocks\.(\d+)\.mlp\.", r"vision_model.encoder.layers.\1.mlp."),
]
DROPPED = (r"^Qformer\.cls\.", r"^visual_encoder\.norm\.", r"^visual_encoder\.head\.", r"\.attn\.relative_position")
"""LAVIS keys with no counterpart (an unused MLM head, ViT heads that BLIP never uses)."""


def rename_lavis_key(key: str) -> str | None:
    """The transformers name of one LAVIS key (None: dropped). Raises for a key it does not know."""
    if any(re.search(p, key) for p in DROPPED):
        return None
    for pattern, repl in VISION_RENAMES:
        if re.search(pattern, key):
            return re.sub(pattern, repl, key)
    if key == "query_tokens":
        return key
    if key.startswith("Qformer.bert."):
        new = "qformer." + key[len("Qformer.bert."):]
        new = new.replace("attention.self.", "attention.attention.")
        return new.replace("embeddings.LayerNorm.", "embeddings.layernorm.")
    if key.startswith("llm_proj."):
        return "language_projection." + key[len("llm_proj."):]
    if key.startswith("llm_model."):
        return "language_model." + key[len("llm_model."):]
    if re.search(r"^visual_encoder\.blocks\.\d+\.attn\.[qv]_bias$", key):
        return key  # merged by merge_qv_biases
    raise KeyError(f"unknown LAVIS key {key!r}: not an InstructBLIP (blip2_vicuna_instruct) checkpoint?")


def merge_qv_biases(state: dict[str, torch.Tensor]) -> None:
    """EVA ViT keeps q and v biases apart (k has none); transformers uses one qkv bias."""
    for key in [k for k in state if k.endswith(".attn.q_bias")]:
        i = re.search(r"blocks\.(\d+)\.", key).group(1)
        q = state.pop(key)
        v = state.pop(f"visual_encoder.blocks.{i}.attn.v_bias")
        state[f"vision_model.encoder.layers.{i}.self_attn.qkv.bias"] = torch.cat([q, torch.zeros_like(v), v])


def lavis_to_hf(lavis: dict[str, torch.Tensor], llm: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """One transformers state dict from LAVIS connector + vision weights and a Vicuna state dict."""
    state = dict(lavis)
    merge_qv_biases(state)
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = key if key.startswith("vision_model.encoder.layers.") and key.endswith("qkv.bias") else rename_lavis_key(key)
        if new is not None:
            out[new] = value
    for key, value in llm.items():
        out.setdefault(f"language_model.{key}", value)
    return out


def load_torch_state(path: Path, allow_pickle: bool = False) -> dict[str, torch.Tensor]:
    """Tensors of a ``.pth`` (a LAVIS ``{"model": ...}`` checkpoint or a bare state dict) or a
    ``.safetensors`` file; pickled non-tensor objects need ``allow_pickle`` (trusted files only)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except Exception as e:  # torch raises UnpicklingError subclasses for non-tensor objects
        raise ValueError(f"{path} holds pickled objects besides tensors ({str(e).splitlines()[0][:160]}); "
                         "if you trust the file, pass allow_pickle=True (--allow-pickle)") from e
    state = obj.get("model", obj) if isinstance(obj, dict) else obj
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors (or {{'model': state_dict}})")
    return state


def load_hf_folder_state(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of a Hugging Face model folder's safetensors shards."""
    from safetensors.torch import load_file

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no *.safetensors in {folder}: the Vicuna folder must hold safetensors "
                                "(convert .bin shards once with transformers' save_pretrained)")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    return state


def build_config(text_config: dict, state: dict[str, torch.Tensor], vision_config: dict | None = None,
                 qformer_config: dict | None = None):
    """InstructBlipConfig for the converted weights: the LM's config, LAVIS's EVA ViT-g / BERT-base
    Q-Former (or the given configs), layer counts and query count read off the weights."""
    from transformers import InstructBlipConfig

    vision = dict(vision_config or {"hidden_size": 1408, "intermediate_size": 6144, "num_attention_heads": 16,
                                    "image_size": 224, "patch_size": 14, "layer_norm_eps": 1e-6})
    vision["num_hidden_layers"] = 1 + max(int(m.group(1)) for k in state
                                          if (m := re.match(r"vision_model\.encoder\.layers\.(\d+)\.", k)))
    qformer = dict(qformer_config or {"vocab_size": 30523, "hidden_size": 768, "num_attention_heads": 12,
                                      "intermediate_size": 3072, "cross_attention_frequency": 2})
    qformer["num_hidden_layers"] = 1 + max(int(m.group(1)) for k in state
                                           if (m := re.match(r"qformer\.encoder\.layer\.(\d+)\.", k)))
    qformer["encoder_hidden_size"] = vision["hidden_size"]
    num_query = state["query_tokens"].shape[1]
    return InstructBlipConfig(vision_config=vision, qformer_config=qformer, text_config=text_config,
                              num_query_tokens=num_query)


def add_vocab_row(state: dict[str, torch.Tensor], text_config: dict) -> int:
    """Append one row (the mean) to the LM's input and output embeddings; returns its index."""
    index = text_config["vocab_size"]
    for key in ("language_model.model.embed_tokens.weight", "language_model.lm_head.weight"):
        if key in state:
            w = state[key]
            state[key] = torch.cat([w, w.mean(0, keepdim=True)])
    text_config["vocab_size"] = index + 1
    return index


def convert_lavis(checkpoint: Path, vicuna: Path, out: Path | None = None, vision: Path | None = None,
                  vision_config: dict | None = None, qformer_config: dict | None = None,
                  allow_pickle: bool = False, dtype: torch.dtype = torch.float32,
                  image_token_index: int | None = None):
    """Build (and with ``out``, save as safetensors) the InstructBLIP model of a LAVIS checkpoint.

    ``vision_config`` / ``qformer_config`` default to LAVIS's EVA ViT-g and BERT-base Q-Former; the
    test passes tiny ones. Every weight of the result must come from the inputs: a missing or
    unexpected key is an error naming it. ``image_token_index``: the id of ``<image>`` in the LM's
    vocabulary when it already has one; otherwise a row is added for it."""
    from transformers import InstructBlipForConditionalGeneration

    lavis = load_torch_state(checkpoint, allow_pickle)
    if vision is not None:
        for k, v in load_torch_state(vision, allow_pickle).items():
            lavis.setdefault(k if k.startswith("visual_encoder.") else f"visual_encoder.{k}", v)
    if not any(k.startswith("visual_encoder.") for k in lavis):
        raise ValueError(f"{checkpoint} has no visual_encoder.* weights: pass vision=eva_vit_g.pth (--vision)")
    text_config = json.loads((Path(vicuna) / "config.json").read_text(encoding="utf-8"))
    state = lavis_to_hf(lavis, load_hf_folder_state(vicuna))
    if image_token_index is None:
        # transformers marks the query positions with an <image> token LAVIS never had: one new
        # vocabulary row (the mean embedding; it is replaced by query outputs, never predicted)
        image_token_index = add_vocab_row(state, text_config)
        log.warning("added <image> as token %d: add it to the Vicuna tokenizer too "
                    "(tokenizer.add_tokens(['<image>'], special_tokens=True))", image_token_index)
    config = build_config(text_config, state, vision_config, qformer_config)
    config.image_token_index = config.image_token_id = image_token_index
    if config.text_config.tie_word_embeddings and "language_model.lm_head.weight" not in state:
        state["language_model.lm_head.weight"] = state["language_model.model.embed_tokens.weight"]
    # built on CPU (meta tensors would leave non-persistent buffers such as position ids empty);
    # for Vicuna-7b pass dtype=torch.float16 to halve the ~2 x 28 GB this needs in fp32
    model = InstructBlipForConditionalGeneration(config).to(dtype)
    missing, unexpected = model.load_state_dict({k: v.to(dtype) for k, v in state.items()}, strict=False)
    if missing or unexpected:
        raise ValueError(f"conversion does not fit InstructBLIP: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.eval()
    if out is not None:
        model.save_pretrained(out, safe_serialization=True)
        (Path(out) / "somelvlm.json").write_text(json.dumps({"backend": "hf_vlm", "converted_from": str(checkpoint)},
                                                            indent=1) + "\n", encoding="utf-8")
    return model
