"""LMM-RGCL on a pretrained Hugging Face VLM (Qwen2-VL, LLaVA, ...): the pieces that differ from our
compose LVLM (``models.lmm_rgcl``), shared by the training recipe (``train.lmm_rgcl_vlm``) and the
``lmm_rgcl`` backend.

A meme goes through the VLM's own processor and chat template (``models.hf_vlm_batch.encode_record``:
the image slot placed by ``hf_vlm.render_prompt``, the answer in the task's label words after the
prompt); ``vlm_forward`` runs the VLM's multimodal decoder once and reads h (last prompt token or
mean over the prompt, ``h_pool``), the answer's next-token loss and the label words' first-token
logits from the same pass, like ``lvlm_forward``.

A model folder from such a base has ``init: {"kind": "hf_vlm", "name", "digest"}`` in its config.json,
the peft ``adapter/`` of the VLM's language model, ``head.safetensors`` and ``index/`` (no connector:
the VLM's own projector stays as it is). ``load_lmm_rgcl(folder)`` (the backend) returns ``HFVLMRGCLModel`` for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from somelvlm.models.lmm_rgcl import (
    H_POOLS,
    HeadConfig,
    LMMRGCLModel,
    MemeHead,
    init_kind,
    label_first_tokens,
    meme_prompt,
    positive_from_options,
)

BLANK = "blank"
"""The ``image`` of an item whose model type needs pixels but whose meme has no image."""


def needs_image(model) -> bool:
    from somelvlm.models.hf_vlm import NEEDS_IMAGE

    return any(m in model.config.model_type for m in NEEDS_IMAGE)


def pil_image(source):
    """A PIL image from a path, a PIL image, or ``BLANK`` (a grey square); ``PostError`` when unreadable."""
    from PIL import Image

    from somelvlm.posts import load_image

    if source == BLANK:
        return Image.new("RGB", (224, 224), (127, 127, 127))
    return source if isinstance(source, Image.Image) else load_image(source)


def encode_vlm_meme(processor, prompt: str, answer: str | None, image, max_len: int,
                    max_answer_tokens: int = 8) -> dict:
    """One meme through the processor (``image``: a PIL image, a path, ``BLANK`` or None): ``ids``,
    ``labels`` (-100 outside the answer), ``tokens`` / ``text_side`` / ``image_keys`` as in
    ``hf_vlm_batch.encode_record``, ``last`` (the last prompt token's position) and ``image`` kept
    (pixels are computed per batch). Without ``answer`` only the prompt."""
    from somelvlm.models.hf_vlm_batch import encode_record

    record = {"id": "meme", "conversations": [{"value": prompt}, {"value": answer or ""}]}
    pil = pil_image(image) if image is not None else None
    it = encode_record(processor, record, pil, SimpleNamespace(max_len=max_len, max_answer_tokens=max_answer_tokens))
    n = it["labels"].count(-100)
    if answer is None:  # drop the (empty) answer's end-of-text
        it["ids"], it["labels"] = it["ids"][:n], it["labels"][:n]
        it["tokens"] = {k: v[:n] for k, v in it["tokens"].items()}
    it.update(last=n - 1, image=image)
    return it


def collate_vlm(items: list[dict], processor, pad_id: int) -> dict[str, torch.Tensor]:
    """``hf_vlm_batch.collate`` of the items (their images through the image processor now) plus
    ``last`` (batch,)."""
    from somelvlm.models.hf_vlm_batch import collate

    image_processor = getattr(processor, "image_processor", None)
    pixels = []
    for it in items:
        if it["image"] is not None:
            enc = image_processor(images=[pil_image(it["image"])], return_tensors="pt")
            pixels.append({k: enc[k] for k in it["image_keys"]})
    batch = collate(items, pixels, pad_id)
    batch["last"] = torch.tensor([it["last"] for it in items], dtype=torch.long)
    return batch


def inner_model(model):
    """The VLM's multimodal decoder (``LlavaModel``, ``Qwen2VLModel``, ...) under peft and the LM head."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.model


def vlm_forward(model, batch: dict[str, torch.Tensor], lm_loss: bool = True,
                option_tokens: list[int] | None = None, pool: str = "last") -> dict[str, torch.Tensor]:
    """``lvlm_forward`` on a Hugging Face VLM: ``h`` (batch, lm_dim) at the last prompt token or its
    mean over the prompt positions (image tokens included), ``last`` (batch, lm_dim), ``lm`` the
    answer tokens' next-token loss (asked and present), ``options`` (batch, len(option_tokens))."""
    if pool not in H_POOLS:
        raise ValueError(f"pool must be one of {H_POOLS}, got {pool!r}")
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in batch.items() if k not in ("labels", "last", "y")}
    hidden = inner_model(model)(**inputs, use_cache=False).last_hidden_state        # (batch, seq, lm_dim)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    last_pos = batch["last"].to(hidden.device)
    last = hidden[rows, last_pos]                                                   # (batch, lm_dim)
    if pool == "mean":
        positions = torch.arange(hidden.shape[1], device=hidden.device)
        keep = (positions[None, :] <= last_pos[:, None]).to(hidden.dtype)[..., None]
        out = {"h": (hidden * keep).sum(1) / keep.sum(1), "last": last}
    else:
        out = {"h": last, "last": last}
    head = model.get_output_embeddings()
    labels = batch["labels"].to(hidden.device)
    if lm_loss and bool((labels != -100).any()):
        target = labels[:, 1:]
        keep = target != -100
        logits = head(hidden[:, :-1][keep])                                         # (n_answer, vocab)
        out["lm"] = torch.nn.functional.cross_entropy(logits.float(), target[keep])
    if option_tokens is not None:
        out["options"] = head(last)[:, option_tokens].float()
    return out


def load_base(name: str, dtype: torch.dtype = torch.float32):
    """(VLM, processor) of a local folder or a hub id already in the Hugging Face cache; never downloads."""
    from transformers import AutoModelForImageTextToText

    from somelvlm.models.hf_vlm import load_processor

    try:
        processor = load_processor(name)
        model = AutoModelForImageTextToText.from_pretrained(name, dtype=dtype, use_safetensors=True)
    except OSError as e:
        raise FileNotFoundError(f"cannot load the VLM {name!r} (a local folder, or a hub id already in the "
                                f"Hugging Face cache; nothing is downloaded here): {e}") from e
    tokenizer = getattr(processor, "tokenizer", processor)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, processor


def load_vlm_parts(folder: Path | str, merge: bool = True):
    """(VLM with the folder's adapter, processor, MemeHead, config) of a saved model folder; a base
    with other weights than the one trained on raises ``BaseModelError`` naming it."""
    from safetensors.torch import load_file

    from somelvlm.models import model_folder
    from somelvlm.models.base_lm import attach_adapter, check_base

    folder = model_folder(folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    need = config["init"]
    model, processor = load_base(need["name"])
    check_base(need, model, folder)
    model = attach_adapter(model, folder, {"adapter": "adapter", "base": need})
    if merge:
        model = model.merge_and_unload()
    head = MemeHead(HeadConfig(**config["head"]))
    head.load_state_dict(load_file(str(folder / "head.safetensors")))
    return model, processor, head, config


class HFVLMRGCLModel(LMMRGCLModel):
    """The ``lmm_rgcl`` backend for a folder tuned from a Hugging Face VLM: the same answers (head,
    label words, generation) and the same g for RKC and ``index add``, through the VLM's processor."""

    def __init__(self, folder: Path | str, *, threads: int | None = None, method: str = "head",
                 batch_size: int = 8) -> None:
        self.folder = self._open(folder, threads, method, batch_size)
        self.vlm, self.processor, self.head, self.config = load_vlm_parts(self.folder)
        self.vlm.eval()
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        self._describe(reads_images=True)
        self.max_len = self.config.get("max_prompt_tokens", 1024)

    @property
    def reads_images(self) -> bool:
        return True

    def forward(self, posts: list, texts: list[str | None] | None = None) -> dict[str, np.ndarray]:
        """``{"h", "g", "head", "generation"}`` as ``LMMRGCLModel.forward``, for posts or strings."""
        texts = texts if texts is not None else [p if isinstance(p, str) else (p.text or "") for p in posts]
        images = [None if isinstance(p, str) else p.image for p in posts]
        blank = BLANK if needs_image(self.vlm) else None
        items = [encode_vlm_meme(self.processor, meme_prompt(self.task, t or "", self.prompt_index), None,
                                 im if im is not None else blank, self.max_len) for t, im in zip(texts, images)]
        tokens = label_first_tokens(self.tokenizer, self.task)
        out: dict[str, list] = {"h": [], "g": [], "head": [], "generation": []}
        with torch.inference_mode():
            # one kind per batch (with / without an image): processors do not mix the two
            order = sorted(range(len(items)), key=lambda i: items[i]["image"] is None)
            for s in range(0, len(order), self.batch_size):
                chunk = [items[i] for i in order[s:s + self.batch_size]]
                groups = [[it for it in chunk if it["image"] is not None], [it for it in chunk if it["image"] is None]]
                for group in (g for g in groups if g):
                    f = vlm_forward(self.vlm, collate_vlm(group, self.processor, self.tokenizer.pad_token_id),
                                    lm_loss=False, option_tokens=tokens, pool=self.pool)
                    head = self.head(f["h"].float().cpu())
                    out["h"].append(f["h"].float().cpu().numpy())
                    out["g"].append(head["g"].numpy())
                    out["head"].append(torch.sigmoid(head["logit"]).numpy())
                    out["generation"].append(positive_from_options(f["options"].cpu()))
        back = np.argsort(order)  # rows in the posts' order
        return {k: np.concatenate(v)[back] if v else np.zeros((0,), np.float32) for k, v in out.items()}

    def generate(self, prompts: list[str], images: list | None = None, config=None) -> list[str]:
        """Free-text answers from the tuned VLM (the ``Generator`` protocol)."""
        if self._generator is None:
            from somelvlm.models.hf_vlm import HFVisionGenerator

            self._generator = HFVisionGenerator.from_model(self.vlm, self.processor, name=self.name,
                                                           max_prompt_tokens=self.config.get("max_prompt_tokens"))
        return self._generator.generate(prompts, images, config)


def as_parts(model) -> SimpleNamespace:
    """What ``models.lmm_rgcl.save_model`` writes from: the peft VLM as ``lm``, no connector."""
    return SimpleNamespace(lm=model, connector=None)


def load_lmm_rgcl(folder: Path | str, *, threads: int | None = None, method: str = "head",
                  batch_size: int = 8) -> LMMRGCLModel:
    """The ``lmm_rgcl`` backend: ``HFVLMRGCLModel`` for a folder tuned from a Hugging Face VLM, else
    ``LMMRGCLModel`` (our compose LVLM)."""
    cls = HFVLMRGCLModel if init_kind(folder) == "hf_vlm" else LMMRGCLModel
    return cls(folder, threads=threads, method=method, batch_size=batch_size)
