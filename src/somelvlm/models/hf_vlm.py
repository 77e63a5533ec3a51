"""Pretrained Hugging Face image-text-to-text models (LLaVA, Qwen2-VL, InstructBLIP, ...) as a
``Generator``: loaded by hub id or local folder (no network here: a hub id must already be in the
local Hugging Face cache), batched generation, and the same LoRA recipe as the LVLM's stage 1.

>>> gen = HFVisionGenerator("llava-hf/llava-1.5-7b-hf")                      # doctest: +SKIP
>>> gen.generate(["Why is this meme offensive?"], [meme_image])              # doctest: +SKIP

Weights load only from safetensors; ``trust_remote_code`` stays off unless asked for.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from somelvlm.models.generation import GenerationConfig, paired_images

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger(__name__)

NEEDS_IMAGE = ("instructblip", "blip-2", "blip_2")
"""Model types whose forward requires pixel values: text-only prompts get a blank image."""
LM_LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)$"
"""LoRA on the language model's attention projections only (vision tower and connector untouched)."""


class HFVisionGenerator:
    """A transformers image-text-to-text model with its processor."""

    def __init__(self, model: str | Path, *, adapter: str | Path | None = None, name: str | None = None,
                 dtype: torch.dtype = torch.float32, device: str | None = None,
                 trust_remote_code: bool = False, num_threads: int | None = None,
                 max_prompt_tokens: int = 2048) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        if num_threads:
            torch.set_num_threads(num_threads)
        source = str(model)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self.processor = AutoProcessor.from_pretrained(source, trust_remote_code=trust_remote_code)
            self.model = AutoModelForImageTextToText.from_pretrained(
                source, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code)
        except OSError as e:
            raise FileNotFoundError(f"cannot load {source!r} (a local folder, or a hub id already in the "
                                    f"Hugging Face cache; nothing is downloaded here): {e}") from e
        if adapter is not None:
            from peft import PeftModel

            try:
                self.model = PeftModel.from_pretrained(self.model, adapter).merge_and_unload()
            except (RuntimeError, ValueError, KeyError) as e:
                raise ValueError(f"the adapter {adapter} does not fit {source}: it was trained on another "
                                 f"base ({e.__class__.__name__}: {str(e)[:200]})") from e
        self.model.to(self.device).eval()
        self.name = name or Path(source).name
        self.model_type = self.model.config.model_type
        self.max_prompt_tokens = max_prompt_tokens
        tokenizer = self.tokenizer
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token

    @property
    def tokenizer(self):
        return getattr(self.processor, "tokenizer", self.processor)

    def render(self, prompt: str, with_image: bool) -> str:
        """The prompt in the model's chat format with an image slot, or as is without a template."""
        template = getattr(self.processor, "chat_template", None)
        if not template:
            return prompt
        content = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": prompt}]
        return self.processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)

    def generate(self, prompts: list[str], images: list[Image | None] | None = None,
                 config: GenerationConfig | None = None) -> list[str]:
        config = config or GenerationConfig()
        images = paired_images(prompts, images)
        if any(m in self.model_type for m in NEEDS_IMAGE):
            from PIL import Image as PILImage

            if any(im is None for im in images):
                log.warning("%s needs an image per prompt: text-only prompts get a blank one", self.model_type)
            images = [im if im is not None else PILImage.new("RGB", (224, 224), (127, 127, 127)) for im in images]
        answers: dict[int, str] = {}
        # one call per kind (with / without image): processors do not mix the two in one batch
        for wants_image in (True, False):
            idx = [i for i, im in enumerate(images) if (im is not None) == wants_image]
            if idx:
                for i, a in zip(idx, self._generate([prompts[i] for i in idx],
                                                    [images[i] for i in idx] if wants_image else None, config)):
                    answers[i] = a
        return [answers[i] for i in range(len(prompts))]

    def _generate(self, prompts: list[str], images: list | None, config: GenerationConfig) -> list[str]:
        texts = [self.render(p, images is not None) for p in prompts]
        kwargs = {"images": images} if images is not None else {}
        inputs = self.processor(text=texts, padding=True, return_tensors="pt", **kwargs).to(self.device)
        if inputs["input_ids"].shape[1] > self.max_prompt_tokens:
            log.warning("prompts of %d tokens exceed max_prompt_tokens=%d: the model may truncate or fail",
                        inputs["input_ids"].shape[1], self.max_prompt_tokens)
        if config.temperature > 0 and config.seed is not None:
            torch.manual_seed(config.seed)
        sampling = dict(do_sample=True, temperature=config.temperature, top_p=config.top_p) \
            if config.temperature > 0 else dict(do_sample=False)
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=config.max_new_tokens,
                                      pad_token_id=self.tokenizer.pad_token_id, **sampling)
        new = out[:, inputs["input_ids"].shape[1]:]
        return [a.strip() for a in self.tokenizer.batch_decode(new, skip_special_tokens=True)]


def add_lm_lora(model, r: int = 16, alpha: int = 32, dropout: float = 0.05, targets: str = LM_LORA_TARGETS):
    """The LVLM stage-1 recipe's LoRA on a pretrained VLM: adapters on the language model's
    attention projections; everything else frozen. Returns the peft model."""
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets))
