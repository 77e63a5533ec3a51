"""Tiny random LLaVA / Qwen2-VL / InstructBLIP built from configs and saved as local folders with
their processors (the layout a hub id has once it is in the local cache)."""

from __future__ import annotations

import torch
from gen_helpers import make_tokenizer

VLM_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{% if m['content'] is string %}{{ m['content'] }}"
    "{% else %}{% for c in m['content'] %}{% if c['type'] == 'image' %}{{ IMG }}{% else %}{{ c['text'] }}"
    "{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% endif %}"
)


def _text_config(tok, **extra):
    return dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                num_key_value_heads=2, max_position_embeddings=512, eos_token_id=tok.eos_token_id,
                pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, **extra)


def make_llava(folder, seed: int = 0):
    """A random 2-layer Llama + CLIP LLaVA with its processor (32x32 images, 17 image tokens)."""
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)

    tok = make_tokenizer()
    torch.manual_seed(seed)
    config = LlavaConfig(vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                                        num_attention_heads=2, image_size=32, patch_size=8),
                         text_config=LlamaConfig(**_text_config(tok)),
                         image_token_index=tok.convert_tokens_to_ids("<image>"), vision_feature_layer=-1)
    LlavaForConditionalGeneration(config).save_pretrained(folder, safe_serialization=True)
    proc = LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32},
                                                             crop_size={"height": 32, "width": 32}),
                          tokenizer=tok, patch_size=8, vision_feature_select_strategy="default",
                          num_additional_image_tokens=1, chat_template=VLM_TEMPLATE.replace("{{ IMG }}", "<image>\n"))
    proc.save_pretrained(folder)
    return folder


def make_qwen2_vl(folder):
    """Saved as a hub Qwen2-VL folder is laid out (tokenizer, preprocessor_config.json, chat template),
    with the PIL image processor: without torchvision the backend builds an images-only processor."""
    import json

    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tok = make_tokenizer()
    torch.manual_seed(0)
    text = _text_config(tok, rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                              "mrope_section": [2, 3, 3]})
    config = Qwen2VLConfig(text_config=text,
                           vision_config=dict(depth=1, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2,
                                              patch_size=14, spatial_merge_size=2, temporal_patch_size=2, in_chans=3),
                           image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
                           video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
                           vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
                           vision_end_token_id=tok.convert_tokens_to_ids("<|vision_end|>"))
    Qwen2VLForConditionalGeneration(config).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    Qwen2VLImageProcessorPil(size={"shortest_edge": 56 * 56, "longest_edge": 56 * 56}, patch_size=14, merge_size=2,
                             temporal_patch_size=2).save_pretrained(folder)
    template = VLM_TEMPLATE.replace("{{ IMG }}", "<|vision_start|><|image_pad|><|vision_end|>")
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": template}))
    return folder


def make_instructblip(folder):
    from transformers import (BlipImageProcessor, InstructBlipConfig, InstructBlipForConditionalGeneration,
                              InstructBlipProcessor, InstructBlipQFormerConfig, InstructBlipVisionConfig,
                              LlamaConfig)

    tok = make_tokenizer()
    qtok = make_tokenizer()
    torch.manual_seed(0)
    config = InstructBlipConfig(
        vision_config=InstructBlipVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                               num_attention_heads=2, image_size=32, patch_size=8).to_dict(),
        qformer_config=InstructBlipQFormerConfig(vocab_size=len(qtok), hidden_size=32, num_hidden_layers=1,
                                                 num_attention_heads=2, intermediate_size=64, encoder_hidden_size=32,
                                                 max_position_embeddings=512).to_dict(),
        text_config=LlamaConfig(**_text_config(tok)).to_dict(), num_query_tokens=4,
        image_token_index=tok.convert_tokens_to_ids("<image>"))
    InstructBlipForConditionalGeneration(config).save_pretrained(folder, safe_serialization=True)
    tok.image_token = "<image>"
    proc = InstructBlipProcessor(image_processor=BlipImageProcessor(size={"height": 32, "width": 32}), tokenizer=tok,
                                 qformer_tokenizer=qtok, num_query_tokens=4)
    proc.save_pretrained(folder)
    return folder
