"""Pretrained-VLM backend on tiny random LLaVA / Qwen2-VL / InstructBLIP built from configs and
saved as local folders (the code path a hub id takes once it is in the local cache)."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("peft")
from vlm_helpers import make_instructblip, make_llava, make_qwen2_vl  # noqa: E402

from somelvlm.models.generation import GenerationConfig  # noqa: E402


@pytest.mark.parametrize("builder", [make_llava, make_qwen2_vl, make_instructblip],
                         ids=["llava", "qwen2_vl", "instructblip"])
def test_tiny_vlm_generates_batched_with_and_without_images(builder, tmp_path):
    from PIL import Image

    from somelvlm.models.hf_vlm import HFVisionGenerator

    torch.set_num_threads(1)
    gen = HFVisionGenerator(builder(tmp_path / "vlm"), num_threads=1)
    assert getattr(gen.processor, "image_processor", None) is not None  # never a bare tokenizer
    imgs = [Image.new("RGB", (60, 40), (200, 10, 10)), None, Image.new("RGB", (32, 32), (0, 0, 200))]
    prompts = ["Explain the meme.", "Rewrite politely: shut up", "Is this hateful?"]
    cfg = GenerationConfig(max_new_tokens=4)
    out = gen.generate(prompts, imgs, cfg)
    assert len(out) == 3 and all(isinstance(a, str) for a in out)
    assert out[2] == gen.generate([prompts[2]], [imgs[2]], cfg)[0]  # batching does not change greedy answers


def test_same_lora_recipe_on_a_vlm_trains_only_the_language_model(tmp_path):
    from transformers import AutoModelForImageTextToText

    from somelvlm.models.hf_vlm import add_lm_lora

    model = AutoModelForImageTextToText.from_pretrained(make_llava(tmp_path / "vlm"))
    peft_model = add_lm_lora(model, r=4, alpha=8)
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n and "language_model" in n for n in trainable)


def test_missing_model_is_a_clear_error(tmp_path):
    from somelvlm.models.hf_vlm import HFVisionGenerator

    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        HFVisionGenerator(tmp_path / "nowhere")
