"""LMM-RGCL at inference: a fine-tuned LVLM that answers a meme task three ways.

1. **By generation**, in the task's own label words (the LM was tuned to keep answering in text):
   ``answer`` / ``generate``; ``method="generation"`` reads the same answer as probabilities of the
   label words' first tokens.
2. **By its MLP head** on ``h``, the LM's last hidden state at the last prompt token or its mean over
   the prompt tokens (``h_pool`` in config.json), standardised per channel with the training memes'
   statistics (``predict_proba``: the ``Classifier`` protocol, so ``load_model`` and the ``Pipeline`` use it).
3. **By RKC** over a FAISS memory of the training memes' head embeddings ``g`` (the folder's
   ``index/``, through the pipeline's RKC stage: ``Pipeline(model, rkc=FOLDER/index)``); labelled memes
   of a new domain are added with ``somelvlm index add`` and change RKC's answers with no retraining.

The task is binary: the task's first label (``not_harmful``, ``not_hateful`` ...) against all the
others (``harmful``: HarMeme's "somewhat" and "very" harmful together), see
``data.meme_domains``.

A saved model is a folder (written by ``train.lmm_rgcl``)::

    config.json            {"backend": "lmm_rgcl", "task", "labels", "init": {...}, "head": {...},
                            "connector": {...} | null, "prompt_index", "max_prompt_tokens", ...}
    adapter/               peft LoRA adapter of the LM
    connector.safetensors  (when the model reads images)
    head.safetensors       the 2-layer MLP: h -> g -> logit (with the training h's per-channel mean / std)
    index/                 MemoryIndex of g over the training memes, stamped with this model

>>> model = load_model("runs/lmm-rgcl/harm-c-s2/model")                 # doctest: +SKIP
>>> model.predict_proba(["covid is a hoax made by them"])               # doctest: +SKIP
{'harmful_meme': array([[0.31, 0.69]], dtype=float32)}
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

EMBEDDING = "lmm_rgcl_g"
"""The ``embedding`` field of an index stamp made by this backend."""


# -- the head ------------------------------------------------------------------------------------------
HEAD_NORMS = ("none", "layer", "standard")
"""What the head does to h first: nothing; LayerNorm (per meme, across channels); or ``standard``:
per-channel standardisation ``(h - mean) / std`` with the TRAINING memes' statistics, kept in the head's
state (``h_mean``, ``h_std``: saved in head.safetensors, the same numbers at training and inference)."""

HEAD_EMBEDS = ("post", "pre")
"""Where g, the embedding RGCL mines and RKC indexes, is read: after the first layer's GELU (``post``) or
its linear output before it (``pre``); the logit is computed from the GELU output either way."""


@dataclass
class HeadConfig:
    """Shape of the MLP head (saved under ``head`` in config.json)."""

    in_dim: int
    """Width of h (the LM's hidden size: 576 for SmolLM2-135M)."""
    width: int = 256
    """Width of g, the first layer's output (the paper: 1024)."""
    dropout: float = 0.1
    norm: str = "none"
    """One of ``HEAD_NORMS`` (old folders: true = ``layer``, false = ``none``). SmolLM2's h is one shared
    vector plus a small per-meme part (99.4% of its squared norm is the training mean, cosine 0.994
    between any two memes), so without removing the mean g of every meme pointed the same way;
    LayerNorm does not remove it (it centres across channels, not across memes), ``standard`` does."""
    embed: str = "post"
    """One of ``HEAD_EMBEDS``."""

    def __post_init__(self) -> None:
        if isinstance(self.norm, bool):
            self.norm = "layer" if self.norm else "none"
        if self.norm not in HEAD_NORMS:
            raise ValueError(f"head norm must be one of {HEAD_NORMS}, got {self.norm!r}")
        if self.embed not in HEAD_EMBEDS:
            raise ValueError(f"head embed must be one of {HEAD_EMBEDS}, got {self.embed!r}")


class MemeHead(nn.Module):
    """Two layers: ``z = Linear(norm(h))``, ``g = GELU(z)`` (or ``z`` itself with ``embed="pre"``): the
    embedding RGCL and RKC use; ``logit = Linear(dropout(GELU(z)))``. With ``norm="standard"`` call
    ``fit_standardizer`` on the training memes' h before use."""

    def __init__(self, config: HeadConfig) -> None:
        super().__init__()
        self.config = config
        self.norm = nn.LayerNorm(config.in_dim) if config.norm == "layer" else nn.Identity()
        if config.norm == "standard":
            self.register_buffer("h_mean", torch.zeros(config.in_dim))
            self.register_buffer("h_std", torch.ones(config.in_dim))
            self.register_buffer("h_fitted", torch.zeros((), dtype=torch.long))  # memes the stats came from
        self.embed = nn.Linear(config.in_dim, config.width)
        self.drop = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.width, 1)

    @torch.no_grad()
    def fit_standardizer(self, h: np.ndarray | torch.Tensor, eps: float = 1e-4) -> None:
        """Set the per-channel mean and std from training h (n, in_dim); std floored at ``eps``."""
        if self.config.norm != "standard":
            raise ValueError(f"fit_standardizer needs a head with norm 'standard', this one has {self.config.norm!r}")
        h = torch.as_tensor(np.asarray(h, dtype=np.float32) if not torch.is_tensor(h) else h).float()
        if h.ndim != 2 or h.shape[1] != self.config.in_dim or len(h) < 2:
            raise ValueError(f"fit_standardizer needs h of shape (n >= 2, {self.config.in_dim}), got {tuple(h.shape)}")
        self.h_mean.copy_(h.mean(0))
        self.h_std.copy_(h.std(0).clamp_min(eps))
        self.h_fitted.fill_(len(h))

    def normalise(self, h: torch.Tensor) -> torch.Tensor:
        """(batch, in_dim) h as the first layer sees it."""
        h = h.float()
        if self.config.norm == "standard":
            if int(self.h_fitted) == 0:
                raise RuntimeError("this head standardises h but its statistics were never fitted "
                                   "(MemeHead.fit_standardizer on the training memes' h)")
            return (h - self.h_mean) / self.h_std
        return self.norm(h)

    def forward(self, h: torch.Tensor) -> dict[str, torch.Tensor]:
        """h: (batch, in_dim) -> ``{"g": (batch, width), "logit": (batch,)}``."""
        z = self.embed(self.normalise(h))
        a = nn.functional.gelu(z)
        return {"g": z if self.config.embed == "pre" else a, "logit": self.out(self.drop(a)).squeeze(-1)}


# -- prompts, batches and the one forward pass -----------------------------------------------------------
def meme_prompt(task, text: str, prompt_index: int = 0) -> str:
    """The task's instruction for one meme's text (the task YAML's prompt ``prompt_index``)."""
    return task.render(prompt_index, text)


def encode_meme(tokenizer, prompt: str, answer: str | None, num_image_tokens: int, with_image: bool,
                max_len: int, max_answer_tokens: int = 8) -> dict:
    """ids, labels (-100 outside the answer), image mask and ``last`` (the last prompt token's position)
    of one meme in the chat format; without ``answer`` only the prompt."""
    from somelvlm.models.lvlm import encode_prompt

    answer_ids = []
    if answer is not None:
        answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"][:max_answer_tokens]
        answer_ids = answer_ids + [tokenizer.eos_token_id]
    p = encode_prompt(tokenizer, prompt, num_image_tokens, with_image, max_len - len(answer_ids))
    return {"ids": p.ids + answer_ids, "labels": [-100] * len(p.ids) + answer_ids,
            "image_mask": p.image_mask + [False] * len(answer_ids), "last": len(p.ids) - 1,
            "truncated": p.truncated}


def collate_memes(items: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded (batch, longest) input_ids / attention_mask / labels / image_mask, ``last`` (batch,)
    and, when the items carry image features, ``image_feats`` (n_with_image, cells, dim) in row order."""
    from somelvlm.models.lvlm import right_pad

    batch = right_pad(items, pad_id)
    batch["last"] = torch.tensor([it["last"] for it in items], dtype=torch.long)
    feats = [it["feats"] for it in items if it.get("feats") is not None]
    if feats:
        batch["image_feats"] = torch.stack(feats)
    if all(it.get("states") is not None for it in items):
        states = torch.zeros((len(items), batch["input_ids"].shape[1], items[0]["states"].shape[-1]))
        for row, it in enumerate(items):
            states[row, :len(it["ids"])] = it["states"]
        batch["states"] = states                                                   # (batch, seq, lm_dim)
    return batch


@contextmanager
def decoder_layers(decoder, start: int, stop: int | None, norm: bool = True):
    """Within the block, ``decoder`` (a Hugging Face decoder stack: ``layers``, ``norm``) runs only its
    layers ``start:stop``, and skips its final norm when ``norm`` is False: the frozen bottom of the
    LM computed once, the LoRA-tuned top run on it (same maths as the full stack)."""
    layers, final = decoder.layers, decoder.norm
    decoder.layers = nn.ModuleList(list(layers)[start:stop])
    if not norm:
        decoder.norm = nn.Identity()
    try:
        yield decoder
    finally:
        decoder.layers, decoder.norm = layers, final


H_POOLS = ("last", "mean")
"""Which prompt positions h is read from: the last prompt token's last hidden state (the paper's) or the
mean of the last hidden states over all prompt tokens (chosen on Harm-C val for SmolLM2: the last
token's state is dominated by what the next token will be; ``benchmarks/results/lmm_rgcl_head_norm.md``)."""


def lvlm_forward(lvlm, batch: dict[str, torch.Tensor], lm_loss: bool = True,
                 option_tokens: list[int] | None = None, from_layer: int = 0,
                 pool: str = "last") -> dict[str, torch.Tensor]:
    """One decoder pass over a batch: ``h`` (batch, lm_dim), the last hidden state at each row's last
    prompt token (``pool="last"``) or its mean over the prompt tokens (``pool="mean"``); ``last`` (batch,
    lm_dim) the last prompt token's state either way (what the answer's first token comes from); ``lm`` (scalar), the next-token cross-entropy over answer tokens (when asked and the
    batch has answers); ``options`` (batch, len(option_tokens)), the logits of those first tokens of
    the answer (the generated answer's first step). With ``from_layer`` > 0 the batch carries
    ``states`` (batch, seq, lm_dim), the input of that layer (``bottom_states``), and only the layers
    from there on run."""
    decoder = lvlm.lm.get_decoder()
    if from_layer:
        with decoder_layers(decoder, from_layer, None):
            hidden = decoder(inputs_embeds=batch["states"], attention_mask=batch["attention_mask"],
                             use_cache=False).last_hidden_state
    else:
        embeds = lvlm.embed(batch["input_ids"], batch["image_mask"], batch.get("image_feats"))
        hidden = decoder(inputs_embeds=embeds, attention_mask=batch["attention_mask"], use_cache=False).last_hidden_state
    if pool not in H_POOLS:
        raise ValueError(f"pool must be one of {H_POOLS}, got {pool!r}")
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    last = hidden[rows, batch["last"]]                                              # (batch, lm_dim)
    if pool == "mean":
        positions = torch.arange(hidden.shape[1], device=hidden.device)
        keep = (positions[None, :] <= batch["last"][:, None]).to(hidden.dtype)[..., None]  # (batch, seq, 1)
        out = {"h": (hidden * keep).sum(1) / keep.sum(1), "last": last}
    else:
        out = {"h": last, "last": last}
    head = lvlm.lm.get_output_embeddings()
    if lm_loss and bool((batch["labels"] != -100).any()):
        target = batch["labels"][:, 1:]                                             # (batch, seq-1)
        keep = target != -100
        logits = head(hidden[:, :-1][keep])                                         # (n_answer, vocab)
        out["lm"] = nn.functional.cross_entropy(logits.float(), target[keep])
    if option_tokens is not None:
        out["options"] = head(last)[:, option_tokens].float()                       # (batch, options)
    return out


def bottom_states(lvlm, batch: dict[str, torch.Tensor], upto: int) -> torch.Tensor:
    """(batch, seq, lm_dim): the input of decoder layer ``upto`` (the output of layers ``0:upto``, no
    final norm), for the frozen part below the LoRA layers. No gradients."""
    decoder = lvlm.lm.get_decoder()
    with torch.inference_mode(), decoder_layers(decoder, 0, upto, norm=False):
        embeds = lvlm.embed(batch["input_ids"], batch["image_mask"], batch.get("image_feats"))
        return decoder(inputs_embeds=embeds, attention_mask=batch["attention_mask"], use_cache=False).last_hidden_state


class StateCache:
    """Bottom-layer states of tokenised memes on disk, one safetensors file per (init model, layer,
    token ids): computed once and shared by every run that starts from the same init model (the
    zero-shot model, SFT and LMM-RGCL runs of every seed). ``$SOMELVLM_CACHE/lmm_states`` or
    ``~/.cache/somelvlm/lmm_states``."""

    def __init__(self, init_digest: str, upto: int, root: Path | str | None = None) -> None:
        import os

        if root is None:
            env = os.environ.get("SOMELVLM_CACHE")
            root = (Path(env).expanduser() if env else Path.home() / ".cache" / "somelvlm") / "lmm_states"
        self.root = Path(root) / f"{init_digest}-L{upto}"
        self.upto = upto

    def path(self, ids: list[int]) -> Path:
        key = hashlib.sha256(np.asarray(ids, np.int64).tobytes()).hexdigest()
        return self.root / key[:2] / f"{key}.safetensors"

    def fill(self, lvlm, items: list[dict], pad_id: int, batch_size: int = 8, log=None) -> None:
        """Put ``states`` (seq, lm_dim) into each item (text-only items), computing the missing ones."""
        from safetensors.torch import load_file, save_file

        from somelvlm.atomic import atomic_path

        todo = []
        for it in items:
            p = self.path(it["ids"])
            if p.is_file():
                it["states"] = load_file(str(p))["s"]
            else:
                todo.append(it)
        for s in range(0, len(todo), batch_size):
            chunk = todo[s:s + batch_size]
            states = bottom_states(lvlm, collate_memes(chunk, pad_id), self.upto)
            for row, it in enumerate(chunk):
                it["states"] = states[row, :len(it["ids"])].clone()
                p = self.path(it["ids"])
                p.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(p, durable=False) as tmp:
                    save_file({"s": it["states"].contiguous()}, str(tmp))
            if log is not None and (s // batch_size) % 10 == 0:
                log(f"bottom states: {min(s + batch_size, len(todo))}/{len(todo)} computed")


def label_first_tokens(tokenizer, task) -> list[int]:
    """The distinct first tokens of the label words as an answer starts (``not harmful`` -> ``not``),
    the negative (first) label's first."""
    from somelvlm.taxonomy.task import display_label

    tokens: list[int] = []
    for lab in task.labels:
        t = tokenizer(display_label(lab), add_special_tokens=False)["input_ids"][0]
        if t not in tokens:
            tokens.append(t)
    return tokens


def positive_from_options(logits: torch.Tensor) -> np.ndarray:
    """(batch,) P(positive) from the logits (batch, tokens) of ``label_first_tokens``: one minus the
    negative label's share of the softmax over those tokens."""
    return (1.0 - logits.float().softmax(-1)[:, 0]).numpy().astype(np.float32)


# -- digests and stamps -----------------------------------------------------------------------------------
def state_digest(tensors: dict[str, torch.Tensor]) -> str:
    """sha256 (first 16 hex) over names and fp32 values of a state dict (adapter, connector, head)."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        h.update(name.encode())
        h.update(tensors[name].detach().cpu().float().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def index_stamp(config: dict, head_digest: str, folder: Path | str) -> dict:
    """What an index of this model's g must be stamped with (checked on load and on add)."""
    init = config["init"]
    lmm = f"{init['name']}@{init.get('digest')}+lora:{config['adapter_digest']}+connector:{config.get('connector_digest')}"
    return {"backend": "lmm_rgcl", "encoders": {"lmm": lmm, "prompt": config.get("prompt_index", 0)},
            "head_digest": head_digest, "embedding": EMBEDDING, "task": config["task"],
            "model": str(Path(folder).resolve())}


# -- loading ----------------------------------------------------------------------------------------------
def load_init(init: dict | str, merge: bool = True):
    """(LVLM, tokenizer, record) of what training started from: an ``lvlm`` model folder or shipped
    name (its adapter merged, its connector loaded) or a base LM (folder or packaged short name).
    ``record`` is ``{"kind", "name", "digest"}``, the digest over the LM's weights as loaded."""
    from somelvlm.digests import base_weights_digest
    from somelvlm.models import model_folder, read_model_config
    from somelvlm.models.lvlm import LVLM, load_lm, load_lvlm

    name = init["name"] if isinstance(init, dict) else str(init)
    kind = init.get("kind") if isinstance(init, dict) else None
    if kind is None:
        try:
            kind = "lvlm" if read_model_config(model_folder(name))["backend"] == "lvlm" else "base"
        except (FileNotFoundError, ValueError):
            kind = "base"
    if kind == "lvlm":
        lvlm, tokenizer, _ = load_lvlm(name, merge=merge)
    else:
        lm, tokenizer = load_lm(name)
        lvlm = LVLM(lm)
    return lvlm, tokenizer, {"kind": kind, "name": name, "digest": base_weights_digest(lvlm.lm)}


def load_parts(folder: Path | str, merge: bool = True):
    """(LVLM with the adapter, tokenizer, MemeHead, config) of a saved model folder. A different
    init model than the one trained on raises ``BaseModelError`` naming the one it needs."""
    from safetensors.torch import load_file

    from somelvlm.models import model_folder
    from somelvlm.models.base_lm import BaseModelError, attach_adapter
    from somelvlm.models.connector import ConnectorConfig, build_connector

    folder = model_folder(folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    need = config["init"]
    try:
        lvlm, tokenizer, got = load_init(need)
    except (BaseModelError, OSError, KeyError) as e:
        raise BaseModelError(f"{folder} needs init model {need.get('name')!r} (digest {need.get('digest')}): {e}") from e
    if need.get("digest") and got["digest"] != need["digest"]:
        raise BaseModelError(f"{folder} was trained from {need['name']!r} (weights digest {need['digest']}), but "
                             f"the model loaded under that name has digest {got['digest']}")
    lm = attach_adapter(lvlm.lm, folder, {"adapter": "adapter", "base": need})
    lvlm.lm = lm.merge_and_unload() if merge else lm
    if config.get("connector"):
        lvlm.connector = build_connector(ConnectorConfig(**config["connector"]))
        lvlm.connector.load_state_dict(load_file(str(folder / "connector.safetensors")))
    head = MemeHead(HeadConfig(**config["head"]))
    head.load_state_dict(load_file(str(folder / "head.safetensors")))
    return lvlm, tokenizer, head, config


def init_kind(folder: Path | str) -> str | None:
    """``init.kind`` of a saved model folder: ``lvlm`` / ``base`` (our compose LVLM) or ``hf_vlm``."""
    from somelvlm.models import model_folder

    config = json.loads((model_folder(folder) / "config.json").read_text(encoding="utf-8"))
    return (config.get("init") or {}).get("kind")


# -- the backend --------------------------------------------------------------------------------------------
class LMMRGCLModel:
    """The ``lmm_rgcl`` backend: a ``Classifier`` (by the MLP head, or by the label words' probabilities
    with ``method="generation"``) that also generates (``generate``, ``answer``) and embeds memes into
    the g its index holds (``embed``, ``stamp``: what ``retrieval.stage.RKCStage`` and
    ``batch.index_build.add_to_index`` use for RKC and for adding memes)."""

    def __init__(self, folder: Path | str, *, threads: int | None = None, method: str = "head",
                 batch_size: int = 8) -> None:
        self.folder = self._open(folder, threads, method, batch_size)
        self.lvlm, self.tokenizer, self.head, self.config = load_parts(self.folder)
        self.lvlm.eval()
        self._describe(reads_images=self.lvlm.connector is not None)
        self.max_len = min(self.config.get("max_prompt_tokens", 512),
                           getattr(self.lvlm.lm.config, "max_position_embeddings", 2048))

    def _open(self, folder, threads: int | None, method: str, batch_size: int) -> Path:
        """Check the options, set the threads; the resolved model folder."""
        from somelvlm.models import model_folder

        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if threads:
            torch.set_num_threads(threads)
        self.method, self.batch_size = method, batch_size
        return model_folder(folder)

    def _describe(self, reads_images: bool) -> None:
        """What the loaded folder serves (task, labels, head spec, modalities), from ``self.config``."""
        from somelvlm.models.base import HeadSpec
        from somelvlm.taxonomy.registry import get_task

        self.head.eval()
        self.name = self.config.get("name", self.folder.name)
        self.task_name = self.config["task"]
        self.task = get_task(self.task_name)
        self.labels = tuple(self.config["labels"])
        self.specs = {self.task_name: HeadSpec(self.task_name, "classification", self.labels)}
        self.modalities = frozenset({"image", "text"} if reads_images else {"text"})
        self.prompt_index = self.config.get("prompt_index", 0)
        self.head_digest = state_digest(self.head.state_dict())
        self.pool = self.config.get("h_pool", "last")  # folders from before the option: the last token
        self._generator = None

    # ----- what the index is stamped with
    @property
    def reads_images(self) -> bool:
        return self.lvlm.connector is not None

    def stamp(self) -> dict:
        return index_stamp(self.config, self.head_digest, self.folder)

    # ----- reading posts
    def _items(self, posts: list, texts: list[str | None] | None = None) -> list[dict]:
        from somelvlm.models.lvlm import image_features

        texts = texts if texts is not None else [p if isinstance(p, str) else (p.text or "") for p in posts]
        images = [None if isinstance(p, str) or not self.reads_images else p.image for p in posts]
        items = [encode_meme(self.tokenizer, meme_prompt(self.task, t or "", self.prompt_index), None,
                             self.lvlm.num_image_tokens, im is not None, self.max_len)
                 for t, im in zip(texts, images)]
        have = [i for i, im in enumerate(images) if im is not None]
        if have:
            feats = image_features([images[i] for i in have], self.config.get("vision_encoder",
                                                                              "efficientnet_lite0_grid"))
            for i, f in zip(have, feats):
                items[i]["feats"] = f
        return items

    def forward(self, posts: list, texts: list[str | None] | None = None) -> dict[str, np.ndarray]:
        """``{"h" (n, lm_dim), "g" (n, width), "head" (n,) P(positive), "generation" (n,) P(positive)
        from the label words}`` for posts (``Post`` or strings)."""
        items = self._items(posts, texts)
        tokens = label_first_tokens(self.tokenizer, self.task)
        out: dict[str, list] = {"h": [], "g": [], "head": [], "generation": []}
        with torch.inference_mode():
            for s in range(0, len(items), self.batch_size):
                batch = collate_memes(items[s:s + self.batch_size], self.tokenizer.pad_token_id)
                f = lvlm_forward(self.lvlm, batch, lm_loss=False, option_tokens=tokens, pool=self.pool)
                head = self.head(f["h"])
                out["h"].append(f["h"].float().numpy())
                out["g"].append(head["g"].numpy())
                out["head"].append(torch.sigmoid(head["logit"]).numpy())
                out["generation"].append(positive_from_options(f["options"]))
        return {k: np.concatenate(v) if v else np.zeros((0,), np.float32) for k, v in out.items()}

    def embed(self, posts: list, texts: list[str | None] | None = None) -> np.ndarray:
        """(n, width) head embeddings g: what the index stores."""
        return self.forward(posts, texts)["g"]

    # ----- answering
    def predict_proba(self, posts: list, tasks: list[str] | None = None) -> dict[str, np.ndarray]:
        """``{task: (n, 2)}`` [P(negative), P(positive)] by the model's ``method``."""
        unknown = [t for t in (tasks or []) if t != self.task_name]
        if unknown:
            raise ValueError(f"model {self.name} answers only {self.task_name}, not {unknown}")
        p = self.forward(posts)["head" if self.method == "head" else "generation"]
        return {self.task_name: np.stack([1 - p, p], axis=1).astype(np.float32)}

    def binary_label(self, label: str) -> str:
        """A task label id (or one of this model's two labels) as this model's binary label."""
        if label in self.labels:
            return label
        if label in self.task.labels:
            return self.labels[0] if label == self.task.label_ids[0] else self.labels[1]
        raise ValueError(f"label {label!r} is not one of {list(self.labels)} or {self.task.label_ids}")

    def generate(self, prompts: list[str], images: list | None = None, config=None) -> list[str]:
        """Free-text answers from the tuned LVLM (the ``Generator`` protocol)."""
        if self._generator is None:
            from somelvlm.models.lvlm import LVLMGenerator

            self._generator = LVLMGenerator.from_model(self.lvlm, self.tokenizer, name=self.name,
                                                       max_prompt_tokens=self.config.get("max_prompt_tokens"))
        return self._generator.generate(prompts, images, config)

    def answer(self, posts: list, max_new_tokens: int = 6) -> list[str]:
        """The task's question answered by generation for each post (greedy), in label words."""
        from somelvlm.models.generation import GenerationConfig

        prompts = [meme_prompt(self.task, p if isinstance(p, str) else (p.text or ""), self.prompt_index)
                   for p in posts]
        images = [None if isinstance(p, str) or not self.reads_images else p.image for p in posts]
        out = []
        for s in range(0, len(prompts), self.batch_size):
            ims = images[s:s + self.batch_size]
            out += self.generate(prompts[s:s + self.batch_size], ims if any(i is not None for i in ims) else None,
                                 GenerationConfig(max_new_tokens=max_new_tokens))
        return out


METHODS = ("head", "generation")
"""How ``predict_proba`` answers: the MLP head or the label words' probabilities. RKC over the model's
index is the pipeline's RKC stage (``Pipeline(model, rkc=FOLDER/index)``, ``analyze --rkc``)."""


def save_model(folder: Path | str, lvlm, tokenizer, head: MemeHead, config: dict,
               write_extra: Callable[[Path, dict, str], None] | None = None) -> Path:
    """Write a model folder atomically: config.json, the LM's peft adapter, the connector (when there is
    one) and the head; ``write_extra(tmp_folder, config, stamp-ready head digest)`` adds more inside
    the same atomic write (the training recipe's index of g). ``config`` needs ``task``, ``labels``,
    ``init``."""
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    from somelvlm.atomic import atomic_dir

    folder = Path(folder)
    head_state = {k: v.detach().contiguous() for k, v in head.state_dict().items()}
    config = {"backend": "lmm_rgcl", "vision_encoder": "efficientnet_lite0_grid", **config,
              "head": asdict(head.config), "adapter": "adapter",
              "adapter_digest": state_digest(get_peft_model_state_dict(lvlm.lm)),
              "connector": lvlm.connector.config.to_dict() if lvlm.connector is not None else None,
              "connector_digest": state_digest(lvlm.connector.state_dict()) if lvlm.connector is not None else None}
    with atomic_dir(folder) as tmp:
        lvlm.lm.save_pretrained(tmp / "adapter", safe_serialization=True)
        if lvlm.connector is not None:
            save_file({k: v.detach().contiguous() for k, v in lvlm.connector.state_dict().items()},
                      str(tmp / "connector.safetensors"))
        save_file(head_state, str(tmp / "head.safetensors"))
        (tmp / "config.json").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
        if write_extra is not None:
            write_extra(tmp, config, state_digest(head_state))
    return folder
