"""The generative SoMe-LVLM: a frozen vision encoder, a connector and any Hugging Face causal LM,
joined through ``inputs_embeds``.

An image enters the prompt where SoMeData puts ``<image>``: the encoder's grid features
(EfficientNet-Lite0, 7x7x1280, from the feature cache) go through the connector and replace a run
of ``connector.num_tokens`` placeholder positions. A meme's OCR text is part of the prompt text.

A saved model is a folder::

    config.json   {"backend": "lvlm", "base": {"name": ..., "digest": ...}, "connector": {...} | null,
                   "vision_encoder": "efficientnet_lite0_grid", "max_prompt_tokens": 768, ...}
    adapter/      peft LoRA adapter (adapter_config.json, adapter_model.safetensors)
    connector.safetensors   (when trained)
    README.md     the model card (Hugging Face Hub front matter)

>>> gen = LVLMGenerator("some-lvlm")                                   # doctest: +SKIP
>>> gen.generate(["Detoxify: shut up, idiot"], config=GenerationConfig(max_new_tokens=24))
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from somelvlm.data.somedata import IMAGE_TOKEN
from somelvlm.digests import base_weights_digest
from somelvlm.models.base_lm import BaseModelError, attach_adapter, check_base, resolve_base
from somelvlm.models.connector import ConnectorConfig, build_connector
from somelvlm.models.decoding import CallbackStreamer, StopCriteria, answers, eos_ids
from somelvlm.models.generation import Generated, GenerationConfig, paired_images

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger(__name__)

DEFAULT_VISION_ENCODER = "efficientnet_lite0_grid"


@dataclass
class EncodedPrompt:
    """Token ids of one chat-formatted prompt and where its image tokens go."""

    ids: list[int]
    image_mask: list[bool]
    """True at the ``num_tokens`` placeholder positions the connector's output replaces."""
    truncated: int = 0
    """How many prompt tokens were cut to fit the context."""


Conversation = list[dict]
"""Chat turns ``[{"role": "system" | "user" | "assistant", "content": str}, ...]``."""


def as_conversation(prompt: str | Conversation) -> Conversation:
    """A prompt as one user turn; a conversation as it is (``developer`` turns become ``system``)."""
    if isinstance(prompt, str):
        return [{"role": "user", "content": prompt}]
    return [{"role": "system" if m["role"] == "developer" else m["role"], "content": m["content"]} for m in prompt]


def render_chat(tokenizer, prompt: str | Conversation) -> str:
    """The prompt (one user turn) or a whole conversation as the LM's chat template renders it,
    ready for the answer; ``Role: text`` lines ending with ``Assistant:`` when there is no template."""
    messages = as_conversation(prompt)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
    return "\n".join(lines + ["Assistant:"])


def _place_image(messages: Conversation, with_image: bool) -> Conversation:
    """``<image>`` kept where a turn has it (else put before the last user turn) with an image;
    removed everywhere without one."""
    messages = [dict(m, content=m["content"].strip()) for m in messages]
    if not with_image:
        return [dict(m, content=m["content"].replace(IMAGE_TOKEN, "").strip()) for m in messages]
    if not any(IMAGE_TOKEN in m["content"] for m in messages):
        last = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=len(messages) - 1)
        messages[last]["content"] = f"{IMAGE_TOKEN}\n{messages[last]['content']}"
    return messages


def encode_prompt(tokenizer, prompt: str | Conversation, num_image_tokens: int, with_image: bool,
                  max_tokens: int) -> EncodedPrompt:
    """Tokenise ``prompt`` (a user turn or a conversation) in the chat format; with an image,
    ``num_image_tokens`` placeholders sit where ``<image>`` is (added at the start of the last user
    turn when missing). Longer prompts lose tokens from the middle of their longest text piece, so
    the instruction at either end survives."""
    pieces = render_chat(tokenizer, _place_image(as_conversation(prompt), with_image)).split(IMAGE_TOKEN)
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in pieces]
    fixed = num_image_tokens * (len(pieces) - 1)
    excess = sum(map(len, encoded)) + fixed - max_tokens
    if excess > 0:
        longest = max(range(len(encoded)), key=lambda i: len(encoded[i]))
        piece = encoded[longest]
        if len(piece) <= excess + 8:
            raise ValueError(f"prompt cannot fit in {max_tokens} tokens even after truncation")
        keep = len(piece) - excess
        encoded[longest] = piece[: keep // 2] + piece[len(piece) - (keep - keep // 2):]
    placeholder = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids: list[int] = []
    mask: list[bool] = []
    for i, piece in enumerate(encoded):
        if i:
            ids += [placeholder] * num_image_tokens
            mask += [True] * num_image_tokens
        ids += piece
        mask += [False] * len(piece)
    return EncodedPrompt(ids, mask, max(excess, 0))


class LVLM(nn.Module):
    """Causal LM + optional connector; ``embed`` puts projected image tokens into the sequence."""

    def __init__(self, lm: nn.Module, connector: nn.Module | None = None) -> None:
        super().__init__()
        self.lm = lm
        self.connector = connector

    @property
    def num_image_tokens(self) -> int:
        return self.connector.config.num_tokens if self.connector is not None else 0

    def embed(self, input_ids: torch.Tensor, image_mask: torch.Tensor | None = None,
              image_feats: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids: (batch, seq); image_mask: (batch, seq) bool; image_feats: (n_images, cells,
        vision_dim), one per row whose mask is set, in row order -> (batch, seq, lm_dim)."""
        embeds = self.lm.get_input_embeddings()(input_ids)                     # (batch, seq, lm_dim)
        if image_mask is None or not bool(image_mask.any()):
            return embeds
        if self.connector is None or image_feats is None:
            raise ValueError("the prompt has image positions but this model has no connector or no image features")
        tokens = self.connector(image_feats.to(embeds.dtype))                  # (n_images, k, lm_dim)
        embeds = embeds.clone()
        embeds[image_mask] = tokens.reshape(-1, tokens.shape[-1]).to(embeds.dtype)
        return embeds

    def forward(self, input_ids, attention_mask, labels=None, image_mask=None, image_feats=None):
        """Without labels: the LM's output. With labels (-100 = ignored): the mean next-token
        cross-entropy, with the output layer applied only at answer positions (the 49k-word
        vocabulary projection of every prompt position is most of a small LM's training cost)."""
        embeds = self.embed(input_ids, image_mask, image_feats)
        if labels is None:
            return self.lm(inputs_embeds=embeds, attention_mask=attention_mask)
        hidden = self.lm.get_decoder()(inputs_embeds=embeds, attention_mask=attention_mask).last_hidden_state
        target = labels[:, 1:]                                                  # (batch, seq-1)
        keep = target != -100
        logits = self.lm.get_output_embeddings()(hidden[:, :-1][keep])           # (n_answer, vocab)
        return nn.functional.cross_entropy(logits.float(), target[keep])


def image_features(images: list, extractor_name: str = DEFAULT_VISION_ENCODER) -> torch.Tensor:
    """(n, cells, dim) frozen encoder features for PIL images or image paths, through the cache."""
    import numpy as np

    from somelvlm.features import FeatureCache, get_extractor

    feats = FeatureCache().get_many(get_extractor(extractor_name), list(images))
    return torch.from_numpy(np.stack([np.asarray(f, dtype=np.float32) for f in feats]))


def load_lm(base: str | Path, dtype: torch.dtype = torch.float32):
    """(model, tokenizer) of a base LM folder or known short name; weights only from safetensors."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve_base(base)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, use_safetensors=True)
    return model, tokenizer


class LVLMGenerator:
    """``Generator`` over an LVLM: batched greedy or sampled decoding from ``inputs_embeds``."""

    def __init__(self, folder: str | Path | None = None, *, base: str | Path | None = None,
                 merge: bool = True, num_threads: int | None = None, name: str | None = None,
                 max_prompt_tokens: int | None = None, generation_runtime: str | None = None,
                 _parts: tuple | None = None) -> None:
        if num_threads:
            torch.set_num_threads(num_threads)
        if _parts is not None:
            self.model, self.tokenizer, meta = _parts
        else:
            if folder is None:
                raise ValueError("LVLMGenerator needs a model folder (or use LVLMGenerator.from_base)")
            self.model, self.tokenizer, meta = load_lvlm(folder, base=base, merge=merge)
        self.meta = meta
        self.name = name or meta.get("name", "lvlm")
        self.vision_encoder = meta.get("vision_encoder", DEFAULT_VISION_ENCODER)
        context = getattr(self.model.lm.config, "max_position_embeddings", 2048)
        self.max_prompt_tokens = min(max_prompt_tokens or meta.get("max_prompt_tokens", 768), context)
        self.model.eval()
        runtime = generation_runtime or os.environ.get("SOMELVLM_GENERATION_RUNTIME") or "auto"
        self.runtime = resolve_runtime(runtime, self.model.lm)
        """The runtime that decodes text prompts: ``torch`` or ``ctranslate2`` (``RUNTIMES``)."""
        self._ct2 = None
        if self.runtime == "ctranslate2":
            from somelvlm.models.ct2_decoder import CT2Decoder

            try:
                self._ct2 = CT2Decoder.for_model(self.model.lm, self.tokenizer, eos=eos_ids(self.tokenizer))
            except Exception as err:  # "auto" falls back to torch, saying why
                if runtime != "auto":
                    raise ValueError(f"CTranslate2 cannot run {self.name!r}: {type(err).__name__}: {err}") from err
                log.warning("CTranslate2 cannot run %s (%s: %s): decoding in torch", self.name, type(err).__name__, err)
                self.runtime = "torch"

    @property
    def reads_images(self) -> bool:
        """True when the model has a vision connector (the server refuses images otherwise)."""
        return self.model.connector is not None

    @classmethod
    def from_base(cls, base: str | Path = "smollm2-135m-instruct", **kwargs) -> LVLMGenerator:
        """The base LM alone (zero-shot, no adapter, text only): the baseline of the paper's table."""
        lm, tok = load_lm(base)
        name = kwargs.pop("name", f"{Path(str(base)).name} (zero-shot)")
        return cls(_parts=(LVLM(lm), tok, {"name": name}), name=name, **kwargs)

    @classmethod
    def from_model(cls, model: LVLM, tokenizer, **kwargs) -> LVLMGenerator:
        return cls(_parts=(model, tokenizer, {}), **kwargs)

    def generate(self, prompts: list[str], images: list[Image | None] | None = None,
                 config: GenerationConfig | None = None) -> list[str]:
        """One answer per prompt (each sent as one user turn of the chat template)."""
        return [g.text for g in self.chat(list(prompts), images, config)]

    def chat(self, conversations: list[str | Conversation], images: list[Image | None] | None = None,
             config: GenerationConfig | None = None, *, on_text=None, cancel=None) -> list[Generated]:
        """Answers with token counts for prompts or whole conversations (``ChatGenerator``): system,
        user and assistant turns go through the LM's chat template; ``on_text`` gets the answer piece
        by piece (one conversation only); ``cancel[i]`` set stops conversation ``i`` early."""
        config = config or GenerationConfig()
        images = paired_images(conversations, images)
        if any(im is not None for im in images) and self.model.connector is None:
            raise ValueError(f"model {self.name!r} has no connector: it cannot read images (pass text only)")
        if on_text is not None and len(conversations) != 1:
            raise ValueError(f"streaming takes one conversation at a time, got {len(conversations)}")
        limit = max(16, self.max_prompt_tokens - config.max_new_tokens)
        encoded = [encode_prompt(self.tokenizer, p, self.model.num_image_tokens, im is not None, limit)
                   for p, im in zip(conversations, images)]
        cut = [i for i, e in enumerate(encoded) if e.truncated]
        if cut:
            log.warning("%d prompt(s) longer than %d tokens were truncated (items %s)", len(cut), limit, cut[:10])
        with_image = [im for im in images if im is not None]
        if self._ct2 is not None and not with_image and not (config.temperature > 0 and config.seed is not None):
            # CTranslate2 cannot seed its decoding thread: a seeded sample decodes in torch (reproducible)
            return _warn_empty(self._ct2.generate([e.ids for e in encoded], config, cancel, on_text))
        feats = image_features(with_image, self.vision_encoder) if with_image else None
        ids, mask, image_mask = _left_pad(encoded, self.tokenizer.pad_token_id)
        if config.temperature > 0 and config.seed is not None:
            torch.manual_seed(config.seed)
        sampling = dict(do_sample=True, temperature=config.temperature, top_p=config.top_p) \
            if config.temperature > 0 else dict(do_sample=False)
        extra, stopper = {}, None
        if config.stop or cancel is not None:
            from transformers import StoppingCriteriaList

            stopper = StopCriteria(self.tokenizer, config.stop, 0, len(encoded), cancel)
            extra["stopping_criteria"] = StoppingCriteriaList([stopper])
        if on_text is not None:
            extra["streamer"] = CallbackStreamer(self.tokenizer, on_text)
        with torch.inference_mode():
            embeds = self.model.embed(ids, image_mask, feats)
            out = self.model.lm.generate(inputs_embeds=embeds, attention_mask=mask,
                                         max_new_tokens=config.max_new_tokens,
                                         pad_token_id=self.tokenizer.pad_token_id,
                                         eos_token_id=self.tokenizer.eos_token_id, **sampling, **extra)
        return _warn_empty(answers(self.tokenizer, out, [len(e.ids) for e in encoded], eos_ids(self.tokenizer),
                                   stopper, config.max_new_tokens, config.stop))

    def render_messages(self, conversation: Conversation) -> str:
        """The conversation as the model will read it (raises the template's error for roles it refuses)."""
        return render_chat(self.tokenizer, conversation)

    def option_probs(self, prompts: list[str], options: list[str]) -> list[list[float]]:
        """For each (text) prompt, the probability that the answer starts with each option, from
        the next-token distribution renormalised over the options' first tokens: the scoring a
        probability-weighted LLM judge uses. Returns (len(prompts), len(options))."""
        first = [self.tokenizer(o, add_special_tokens=False)["input_ids"][0] for o in options]
        if len(set(first)) < len(options):
            raise ValueError(f"options {options} do not start with distinct tokens")
        limit = max(16, self.max_prompt_tokens - 1)
        encoded = [encode_prompt(self.tokenizer, p, self.model.num_image_tokens, False, limit) for p in prompts]
        ids, mask, _ = _left_pad(encoded, self.tokenizer.pad_token_id)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)                         # left padding: real positions
        with torch.inference_mode():
            embeds = self.model.embed(ids)
            logits = self.model.lm(inputs_embeds=embeds, attention_mask=mask,
                                   position_ids=positions).logits[:, -1, :]     # (batch, vocab)
        return logits[:, first].float().softmax(-1).tolist()


RUNTIMES = ("auto", "torch", "ctranslate2")
"""How an ``lvlm`` decodes text prompts (``generation_runtime``, else ``$SOMELVLM_GENERATION_RUNTIME``): ``torch`` (Hugging Face ``generate``), ``ctranslate2``
(the same merged weights converted once, 2-3x faster on CPU), ``auto`` (CTranslate2 when it is
installed and the adapter is merged, else torch). Prompts with an image, and seeded sampling,
always decode in torch."""


def resolve_runtime(runtime: str, lm) -> str:
    """The runtime ``runtime`` names for ``lm`` (``auto`` resolved); an unknown name or an unusable
    choice fails in one line."""
    from somelvlm.models.ct2_decoder import ct2_available

    if runtime not in RUNTIMES:
        raise ValueError(f"unknown generation runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    merged = not hasattr(lm, "peft_config")
    if runtime == "ctranslate2":
        if not ct2_available():
            raise ValueError("runtime 'ctranslate2' needs the ctranslate2 package: pip install 'somelvlm[generate]'")
        if not merged:
            raise ValueError("runtime 'ctranslate2' decodes merged weights: load the model with merge=True")
        return runtime
    if runtime == "auto":
        return "ctranslate2" if merged and ct2_available() else "torch"
    return runtime


def _warn_empty(result: list[Generated]) -> list[Generated]:
    empty = sum(not g.text for g in result)
    if empty:
        log.warning("%d of %d answers are empty", empty, len(result))
    return result


def right_pad(items: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Training / scoring batch of encoded items (``ids``, ``labels``, ``image_mask`` lists), each
    (batch, longest), right-padded: ``input_ids``, ``attention_mask``, ``labels`` (-100 on padding)
    and ``image_mask``."""
    n = max(len(it["ids"]) for it in items)
    batch = {"input_ids": torch.full((len(items), n), pad_id, dtype=torch.long),
             "attention_mask": torch.zeros((len(items), n), dtype=torch.long),
             "labels": torch.full((len(items), n), -100, dtype=torch.long),
             "image_mask": torch.zeros((len(items), n), dtype=torch.bool)}
    for row, it in enumerate(items):
        k = len(it["ids"])
        batch["input_ids"][row, :k] = torch.tensor(it["ids"])
        batch["attention_mask"][row, :k] = 1
        batch["labels"][row, :k] = torch.tensor(it["labels"])
        batch["image_mask"][row, :k] = torch.tensor(it["image_mask"])
    return batch


def _left_pad(encoded: list[EncodedPrompt], pad_id: int):
    """(ids, attention_mask, image_mask), each (batch, longest), padded on the left for decoding."""
    n = max(len(e.ids) for e in encoded)
    ids = torch.full((len(encoded), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encoded), n), dtype=torch.long)
    image_mask = torch.zeros((len(encoded), n), dtype=torch.bool)
    for row, e in enumerate(encoded):
        k = len(e.ids)
        ids[row, n - k:] = torch.tensor(e.ids)
        mask[row, n - k:] = 1
        image_mask[row, n - k:] = torch.tensor(e.image_mask)
    return ids, mask, image_mask


def save_lvlm(folder: Path, model: LVLM, tokenizer, meta: dict, weights: dict | None = None) -> Path:
    """Write ``config.json``, the LoRA adapter and the connector into ``folder`` (atomically).
    ``weights``: whole tensors by the model's names (``lm.`` LoRA, ``connector.``) to write instead of
    the model's own (a sharded model's, gathered by ``Dist.gather``)."""
    from safetensors.torch import save_file

    from somelvlm.atomic import atomic_dir

    folder = Path(folder)
    config = {"backend": "lvlm", "vision_encoder": DEFAULT_VISION_ENCODER, **meta,
              "connector": model.connector.config.to_dict() if model.connector is not None else None}
    with atomic_dir(folder) as tmp:
        if hasattr(model.lm, "peft_config"):
            lm_state = None if weights is None else {n[3:]: t for n, t in weights.items() if n.startswith("lm.")}
            model.lm.save_pretrained(tmp / "adapter", safe_serialization=True, state_dict=lm_state)
            config["adapter"] = "adapter"
            _name_hub_base(tmp / "adapter" / "adapter_config.json", (meta.get("base") or {}).get("name"))
        if model.connector is not None:
            state = {k: v.detach().contiguous() for k, v in model.connector.state_dict().items()} if weights is None \
                else {n.removeprefix("connector."): t for n, t in weights.items() if n.startswith("connector.")}
            save_file(state, str(tmp / "connector.safetensors"))
        (tmp / "config.json").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
    return folder


def _name_hub_base(adapter_config: Path, base: str | None) -> None:
    """Point the adapter's ``base_model_name_or_path`` at the base's hub id (not this machine's cache
    path), so peft's ``AutoPeftModelForCausalLM`` finds it elsewhere; ``resolve_base`` maps it back."""
    from somelvlm.models.base_lm import HUB_IDS

    if base in HUB_IDS and adapter_config.is_file():
        config = json.loads(adapter_config.read_text(encoding="utf-8"))
        config["base_model_name_or_path"] = HUB_IDS[base]
        adapter_config.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load_lvlm(folder: str | Path, base: str | Path | None = None, merge: bool = True):
    """(LVLM, tokenizer, meta) from a saved folder; a missing or different base raises
    ``BaseModelError`` naming the base it needs."""
    from safetensors.torch import load_file

    from somelvlm.models import model_folder, read_model_config

    folder = model_folder(folder)
    meta = read_model_config(folder)
    need = meta.get("base") or {}
    try:
        lm, tokenizer = load_lm(base or need["name"])
    except (BaseModelError, OSError, KeyError) as e:
        raise BaseModelError(f"{folder} needs base model {need.get('name')!r} "
                             f"(digest {need.get('digest')}): {e}") from e
    check_base(need, lm, folder)
    if meta.get("adapter"):
        lm = attach_adapter(lm, folder, meta)
        if merge:
            lm = lm.merge_and_unload()
    connector = None
    if meta.get("connector"):
        connector = build_connector(ConnectorConfig(**meta["connector"]))
        if connector.config.lm_dim != lm.get_input_embeddings().embedding_dim:
            raise BaseModelError(f"{folder}: connector outputs {connector.config.lm_dim}-d embeddings but base "
                                 f"has {lm.get_input_embeddings().embedding_dim}: it needs base {need.get('name')!r}")
        connector.load_state_dict(load_file(str(folder / "connector.safetensors")))
    return LVLM(lm, connector), tokenizer, meta


def base_record(lm: nn.Module, name: str) -> dict:
    """What a saved model's ``config.json`` says about its base (checked on load)."""
    return {"name": name, "digest": base_weights_digest(lm)}
