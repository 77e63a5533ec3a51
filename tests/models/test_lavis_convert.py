"""The LAVIS -> InstructBLIP converter on a synthetic LAVIS checkpoint: a tiny random InstructBLIP
is written out under LAVIS's own key names (checkpoint.pth with the Q-Former / query tokens /
ln_vision / llm_proj, eva_vit.pth with the ViT, a Vicuna-style LM folder), converted back, and
must give the same logits."""

from __future__ import annotations

import argparse

import pytest
import torch

from somelvlm.models.lavis_convert import convert_lavis, rename_lavis_key

TINY_VISION = dict(hidden_size=32, intermediate_size=64, num_attention_heads=2, image_size=32, patch_size=8)
TINY_QFORMER = dict(vocab_size=50, hidden_size=32, num_attention_heads=2, intermediate_size=64,
                    cross_attention_frequency=1, max_position_embeddings=64)


def tiny_instructblip():
    from transformers import (InstructBlipConfig, InstructBlipForConditionalGeneration, InstructBlipQFormerConfig,
                              InstructBlipVisionConfig, LlamaConfig)

    torch.manual_seed(0)
    config = InstructBlipConfig(
        vision_config=InstructBlipVisionConfig(num_hidden_layers=2, **TINY_VISION).to_dict(),
        qformer_config=InstructBlipQFormerConfig(num_hidden_layers=2, encoder_hidden_size=32, **TINY_QFORMER).to_dict(),
        text_config=LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                num_attention_heads=2, num_key_value_heads=2).to_dict(),
        num_query_tokens=4, image_token_index=63)
    model = InstructBlipForConditionalGeneration(config).eval()
    with torch.no_grad():  # EVA ViT has no key bias: LAVIS weights always have zeros there
        for layer in model.vision_model.encoder.layers:
            d = layer.self_attn.qkv.bias.shape[0] // 3
            layer.self_attn.qkv.bias[d:2 * d] = 0
            layer.self_attn.qkv.bias[:d].normal_()
            layer.self_attn.qkv.bias[2 * d:].normal_()
    return model


def to_lavis(model):
    """LAVIS names, written independently of the converter (from LAVIS's module layout)."""
    lavis, vit = {}, {}
    for key, value in model.state_dict().items():
        if key.startswith("language_model."):
            continue
        if key.startswith("vision_model."):
            k = key.replace("vision_model.embeddings.class_embedding", "cls_token")
            k = k.replace("vision_model.embeddings.position_embedding", "pos_embed")
            k = k.replace("vision_model.embeddings.patch_embedding", "patch_embed.proj")
            k = k.replace("vision_model.encoder.layers.", "blocks.").replace("layer_norm1", "norm1")
            k = k.replace("layer_norm2", "norm2").replace("self_attn.projection", "attn.proj")
            k = k.replace("self_attn.qkv", "attn.qkv")
            if k.startswith("vision_model.post_layernorm."):
                lavis[k.replace("vision_model.post_layernorm.", "ln_vision.")] = value
            elif k.endswith("attn.qkv.bias"):
                d = value.shape[0] // 3
                vit[k.replace("qkv.bias", "q_bias")] = value[:d].clone()
                vit[k.replace("qkv.bias", "v_bias")] = value[2 * d:].clone()
            else:
                vit[k] = value
        elif key.startswith("qformer."):
            k = "Qformer.bert." + key[len("qformer."):]
            k = k.replace("attention.attention.", "attention.self.").replace("embeddings.layernorm.", "embeddings.LayerNorm.")
            lavis[k] = value
        elif key.startswith("language_projection."):
            lavis[key.replace("language_projection.", "llm_proj.")] = value
        else:
            lavis[key] = value
    lavis["Qformer.cls.predictions.bias"] = torch.zeros(3)  # LAVIS's unused MLM head: dropped
    return lavis, vit


def test_converted_lavis_checkpoint_gives_the_same_logits(tmp_path):
    torch.set_num_threads(1)
    original = tiny_instructblip()
    lavis, vit = to_lavis(original)
    torch.save({"model": lavis, "epoch": 3}, tmp_path / "checkpoint.pth")
    torch.save(vit, tmp_path / "eva_vit.pth")
    original.language_model.save_pretrained(tmp_path / "vicuna", safe_serialization=True)

    converted = convert_lavis(tmp_path / "checkpoint.pth", tmp_path / "vicuna", out=tmp_path / "hf",
                              vision=tmp_path / "eva_vit.pth", vision_config=TINY_VISION, qformer_config=TINY_QFORMER,
                              image_token_index=63)
    torch.manual_seed(1)
    inputs = dict(pixel_values=torch.randn(2, 3, 32, 32), qformer_input_ids=torch.randint(0, 50, (2, 5)),
                  qformer_attention_mask=torch.ones(2, 5, dtype=torch.long),
                  input_ids=torch.cat([torch.full((2, 4), 63), torch.randint(0, 60, (2, 6))], 1),
                  attention_mask=torch.ones(2, 10, dtype=torch.long))
    with torch.no_grad():
        before, after = original(**inputs).logits, converted(**inputs).logits
    assert torch.allclose(before, after, atol=1e-5)
    from transformers import InstructBlipForConditionalGeneration

    reloaded = InstructBlipForConditionalGeneration.from_pretrained(tmp_path / "hf", use_safetensors=True).eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(**inputs).logits, before, atol=1e-5)


def test_without_an_image_token_one_vocabulary_row_is_added(tmp_path):
    original = tiny_instructblip()
    lavis, vit = to_lavis(original)
    torch.save({"model": {**lavis, **{f"visual_encoder.{k}": v for k, v in vit.items()}}}, tmp_path / "checkpoint.pth")
    original.language_model.save_pretrained(tmp_path / "vicuna", safe_serialization=True)
    converted = convert_lavis(tmp_path / "checkpoint.pth", tmp_path / "vicuna", vision_config=TINY_VISION,
                              qformer_config=TINY_QFORMER)
    assert converted.config.image_token_id == 64
    assert converted.language_model.get_input_embeddings().weight.shape[0] == 65


def test_pickled_objects_need_explicit_consent_and_bad_keys_are_named(tmp_path):
    torch.save({"model": {"query_tokens": torch.zeros(1, 4, 8)}, "config": argparse.Namespace(lr=1)},
               tmp_path / "checkpoint.pth")
    (tmp_path / "vicuna").mkdir()
    (tmp_path / "vicuna" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="allow_pickle"):
        convert_lavis(tmp_path / "checkpoint.pth", tmp_path / "vicuna")
    with pytest.raises(KeyError, match="unknown LAVIS key"):
        rename_lavis_key("t5_model.encoder.block.0.weight")
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        convert_lavis(tmp_path / "missing.pth", tmp_path / "vicuna")
