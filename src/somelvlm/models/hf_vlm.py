"""Pretrained Hugging Face image-text-to-text models (LLaVA, Qwen2-VL, InstructBLIP, ...) as a
``Generator``: loaded by hub id or local folder (no network here: a hub id must already be in the
local Hugging Face cache), batched generation, and the same LoRA recipe as the LVLM's stage 1.

>>> gen = HFVisionGenerator("llava-hf/llava-1.5-7b-hf")                      # doctest: +SKIP
>>> gen.generate(["Why is this meme offensive?"], [meme_image])              # doctest: +SKIP

A folder written by ``somelvlm train instruct`` on such a base (``config.json`` with ``backend:
hf_vlm``, a peft ``adapter/`` and, after stage 2, ``projector.safetensors``) loads as ``model`` (its
base named in the config) or as ``adapter`` on top of an explicit base; a different base is refused
with an error naming the base the adapter needs.

Weights load only from safetensors; ``trust_remote_code`` stays off unless asked for.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from somelvlm.models.decoding import CallbackStreamer, StopCriteria, answers, eos_ids
from somelvlm.models.generation import Generated, GenerationConfig, paired_images

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger(__name__)

NEEDS_IMAGE = ("instructblip", "blip-2", "blip_2")
"""Model types whose forward requires pixel values: text-only prompts get a blank image."""
LM_LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj)$"
"""LoRA on the language model's attention projections only (vision tower and connector untouched)."""
PROJECTORS = {
    "llava": ("multi_modal_projector",),
    "llava_next": ("multi_modal_projector",),
    "llava_onevision": ("multi_modal_projector",),
    "qwen2_vl": ("visual.merger",),
    "qwen2_5_vl": ("visual.merger",),
    "instructblip": ("qformer", "query_tokens", "language_projection"),
    "blip-2": ("qformer", "query_tokens", "language_projection"),
}
"""Per model type, the parameter-name pieces of the model's own vision-to-language connector
(what stage 2 tunes with everything else frozen)."""


class HFVisionGenerator:
    """A transformers image-text-to-text model with its processor."""

    def __init__(self, model: str | Path, *, adapter: str | Path | None = None, name: str | None = None,
                 dtype: torch.dtype = torch.float32, device: str | None = None,
                 trust_remote_code: bool = False, num_threads: int | None = None,
                 max_prompt_tokens: int | None = None) -> None:
        from transformers import AutoModelForImageTextToText

        if num_threads:
            torch.set_num_threads(num_threads)
        trained = read_trained(model)
        if trained is not None:  # a trained folder given as the model: its base comes from its config
            if adapter is not None:
                raise ValueError(f"{model} is a trained model folder (base + adapter): pass it alone, or its "
                                 f"base as model and it as adapter")
            adapter, model = model, trained["base"]["name"]
            name = name or trained.get("name")
        trained = read_trained(adapter) if adapter is not None else None
        source = str(model)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        try:
            self.processor = load_processor(source, trust_remote_code=trust_remote_code)
            self.model = AutoModelForImageTextToText.from_pretrained(
                source, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code)
        except OSError as e:
            need = f" (the adapter {adapter} needs base {source!r})" if trained is not None else ""
            raise FileNotFoundError(f"cannot load {source!r} (a local folder, or a hub id already in the "
                                    f"Hugging Face cache; nothing is downloaded here){need}: {e}") from e
        if trained is not None:
            self.model = apply_trained(self.model, Path(adapter), trained, dtype)
        elif adapter is not None:
            from peft import PeftModel

            try:
                self.model = PeftModel.from_pretrained(self.model, adapter).merge_and_unload()
            except (RuntimeError, ValueError, KeyError) as e:
                raise ValueError(f"the adapter {adapter} does not fit {source}: it was trained on another "
                                 f"base ({e.__class__.__name__}: {str(e)[:200]})") from e
        self.model.to(self.device).eval()
        self.name = name or Path(source).name
        self.model_type = self.model.config.model_type
        self.max_prompt_tokens = max_prompt_tokens or (trained or {}).get("max_prompt_tokens", 2048)
        tokenizer = self.tokenizer
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token

    @classmethod
    def from_model(cls, model, processor, *, name: str, max_prompt_tokens: int | None = None) -> HFVisionGenerator:
        """A generator over an already loaded (e.g. tuned and merged) VLM and its processor."""
        self = cls.__new__(cls)
        self.processor, self.model, self.name = processor, model.eval(), name
        self.device = next(model.parameters()).device
        self.model_type = model.config.model_type
        self.max_prompt_tokens = max_prompt_tokens or 2048
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        return self

    @property
    def tokenizer(self):
        return getattr(self.processor, "tokenizer", self.processor)

    def render(self, prompt: str | list[dict], with_image: bool) -> str:
        """The prompt (or a conversation) in the model's chat format with an image slot, or as is
        without a template."""
        return render_prompt(self.processor, prompt, with_image)

    def render_messages(self, conversation: list[dict]) -> str:
        """The conversation as the model will read it (raises the template's error for roles it refuses)."""
        return render_prompt(self.processor, conversation, False)

    def generate(self, prompts: list[str], images: list[Image | None] | None = None,
                 config: GenerationConfig | None = None) -> list[str]:
        """One answer per prompt (each sent as one user turn of the chat template)."""
        return [g.text for g in self.chat(list(prompts), images, config)]

    def chat(self, conversations: list, images: list[Image | None] | None = None,
             config: GenerationConfig | None = None, *, on_text=None, cancel=None) -> list[Generated]:
        """Answers with token counts for prompts or conversations (``ChatGenerator``); the image of a
        conversation goes where its ``<image>`` is, else before its last user turn."""
        config = config or GenerationConfig()
        images = paired_images(conversations, images)
        if on_text is not None and len(conversations) != 1:
            raise ValueError(f"streaming takes one conversation at a time, got {len(conversations)}")
        if any(m in self.model_type for m in NEEDS_IMAGE):
            from PIL import Image as PILImage

            if any(im is None for im in images):
                log.warning("%s needs an image per prompt: text-only prompts get a blank one", self.model_type)
            images = [im if im is not None else PILImage.new("RGB", (224, 224), (127, 127, 127)) for im in images]
        cancel = list(cancel) if cancel is not None else None
        answers_by_index: dict[int, Generated] = {}
        # one call per kind (with / without image): processors do not mix the two in one batch
        for wants_image in (True, False):
            idx = [i for i, im in enumerate(images) if (im is not None) == wants_image]
            if idx:
                got = self._generate([conversations[i] for i in idx], [images[i] for i in idx] if wants_image else None,
                                     config, on_text, [cancel[i] for i in idx] if cancel is not None else None)
                answers_by_index.update(zip(idx, got))
        return [answers_by_index[i] for i in range(len(conversations))]

    def _generate(self, prompts: list, images: list | None, config: GenerationConfig, on_text=None,
                  cancel=None) -> list[Generated]:
        texts = [self.render(p, images is not None) for p in prompts]
        kwargs = {"images": images} if images is not None else {}
        inputs = self.processor(text=texts, padding=True, return_tensors="pt", **kwargs).to(self.device)
        prompt_len = inputs["input_ids"].shape[1]
        if prompt_len > self.max_prompt_tokens:
            log.warning("prompts of %d tokens exceed max_prompt_tokens=%d: the model may truncate or fail",
                        prompt_len, self.max_prompt_tokens)
        if config.temperature > 0 and config.seed is not None:
            torch.manual_seed(config.seed)
        sampling = dict(do_sample=True, temperature=config.temperature, top_p=config.top_p) \
            if config.temperature > 0 else dict(do_sample=False)
        extra, stopper = {}, None
        if config.stop or cancel is not None:
            from transformers import StoppingCriteriaList

            stopper = StopCriteria(self.tokenizer, config.stop, prompt_len, len(texts), cancel)
            extra["stopping_criteria"] = StoppingCriteriaList([stopper])
        if on_text is not None:
            extra["streamer"] = CallbackStreamer(self.tokenizer, on_text)
        with torch.inference_mode():
            out = self.model.generate(**inputs, max_new_tokens=config.max_new_tokens,
                                      pad_token_id=self.tokenizer.pad_token_id, **sampling, **extra)
        new = out[:, prompt_len:]
        return answers(self.tokenizer, new, inputs["attention_mask"].sum(1).tolist(),
                       eos_ids(self.tokenizer, self.model.generation_config), stopper, config.max_new_tokens,
                       config.stop)


def render_prompt(processor, prompt: str | list[dict], with_image: bool) -> str:
    """``prompt`` as one user turn of the processor's chat template (an image slot first when
    ``with_image``), ready for the answer; as is when the processor has no template.

    A conversation (``[{"role", "content"}, ...]``) is rendered turn by turn; its image slot goes
    where a turn says ``<image>``, else first in the last user turn; without a template it becomes
    ``Role: text`` lines ending with ``Assistant:``."""
    template = getattr(processor, "chat_template", None)
    if isinstance(prompt, str):
        if not template:
            return prompt
        content = ([{"type": "image"}] if with_image else []) + [{"type": "text", "text": prompt}]
        return processor.apply_chat_template([{"role": "user", "content": content}], add_generation_prompt=True)
    from somelvlm.data.somedata import IMAGE_TOKEN

    messages = [{"role": "system" if m["role"] == "developer" else m["role"], "content": m["content"]} for m in prompt]
    if not template:
        lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
        return "\n".join(lines + ["Assistant:"])
    slot = with_image and not any(IMAGE_TOKEN in m["content"] for m in messages)
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=len(messages) - 1)
    turns = []
    for i, m in enumerate(messages):
        content = [{"type": "image"}] if slot and i == last_user else []
        for j, piece in enumerate(m["content"].split(IMAGE_TOKEN)):
            if j and with_image:
                content.append({"type": "image"})
            if piece.strip():
                content.append({"type": "text", "text": piece.strip()})
        turns.append({"role": m["role"], "content": content})
    return processor.apply_chat_template(turns, add_generation_prompt=True)


def add_lm_lora(model, r: int = 16, alpha: int = 32, dropout: float = 0.05, targets: str = LM_LORA_TARGETS,
                layers: list[int] | None = None):
    """The LVLM stage-1 recipe's LoRA on a pretrained VLM: adapters on the language model's
    attention projections (only decoder ``layers`` when given); everything else frozen. Returns the
    peft model."""
    from peft import LoraConfig, get_peft_model

    if layers:  # peft's layers_to_transform does not combine with a regex target: put them in it
        targets = targets.replace(r".*language_model.*\.", r".*language_model.*\.layers\.(" +
                                  "|".join(map(str, layers)) + r")\..*\.")
    return get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets))


def lm_lora_targets(names: list[str]) -> str:
    """The regex of ``add_lm_lora`` for these linear-layer names of the language model."""
    return r".*language_model.*\.(" + "|".join(names) + r")$"


def load_processor(source: str, trust_remote_code: bool = False):
    """The model's processor. Without torchvision, Qwen2-VL-style processors (whose video processor
    needs it) are built from their PIL image processor and tokenizer, images only; a processor that
    comes back without an image processor is an error, never a silent text-only tokenizer."""
    from transformers import AutoConfig, AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(source, trust_remote_code=trust_remote_code)
    except ImportError as e:
        if "torchvision" not in str(e).lower():
            raise
        processor = None
    if getattr(processor, "image_processor", None) is None:
        model_type = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code).model_type
        processor = _image_only_processor(source, model_type)
    return processor


def _image_only_processor(source: str, model_type: str):
    """The model type's processor class with its video processor left out (torchvision missing)."""
    import importlib.util
    import inspect

    import transformers
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    cls = getattr(transformers, PROCESSOR_MAPPING_NAMES.get(model_type) or "", None)
    if cls is None or "video_processor" not in inspect.signature(cls.__init__).parameters \
            or importlib.util.find_spec("torchvision") is not None:
        raise ValueError(f"{source}: could not load an image processor for model type {model_type!r} "
                         f"(is preprocessor_config.json there?)")

    class ImageOnlyProcessor(cls):
        """``cls`` without its video processor: images and text only."""

        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            super().__init__(image_processor=image_processor, tokenizer=tokenizer, video_processor=None,
                             chat_template=chat_template, **kwargs)

    ImageOnlyProcessor.__name__ = ImageOnlyProcessor.__qualname__ = f"ImageOnly{cls.__name__}"
    log.info("torchvision is not installed: %s loads without its video processor (images only)", cls.__name__)
    return ImageOnlyProcessor.from_pretrained(source)


def read_trained(folder: str | Path | None) -> dict | None:
    """The ``config.json`` of a folder trained by ``somelvlm train instruct`` on a VLM base, else None."""
    import json

    path = Path(folder) / "config.json" if folder is not None else None
    if path is None or not path.is_file():
        return None
    meta = json.loads(path.read_text(encoding="utf-8"))
    return meta if meta.get("backend") == "hf_vlm" else None


def apply_trained(model, folder: Path, meta: dict, dtype: torch.dtype = torch.float32):
    """``model`` (the base) with the folder's LoRA adapter merged and its tuned projector loaded;
    ``BaseModelError`` naming the base the folder needs when ``model`` is another one."""
    from safetensors.torch import load_file

    from somelvlm.models.base_lm import BaseModelError, attach_adapter, check_base

    need = meta.get("base") or {}
    if need.get("digest") and dtype == getattr(torch, need.get("dtype") or "float32"):  # digest of that dtype
        check_base(need, model, folder)
    if meta.get("adapter"):
        model = attach_adapter(model, folder, meta).merge_and_unload()
    if meta.get("projector"):
        state = load_file(str(folder / meta["projector"]))
        own = model.state_dict()
        bad = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
        if bad:
            raise BaseModelError(f"{folder}: projector weights {bad[:3]} do not fit this base: it needs base "
                                 f"model {need.get('name')!r}")
        model.load_state_dict(state, strict=False)
    return model
