"""LMM-RGCL (Mei et al., "Improved Fine-Tuning of Large Multimodal Models for Hateful Meme Detection")
on our compose LVLM, as one flat two-stage recipe (a Hugging Face VLM ``init``: ``train.lmm_rgcl_vlm``; ``train.lmm_rgcl_run.train``
runs a stage on either).

    somelvlm train lmm-rgcl --stage 1 --config configs/lmm-rgcl-harm-c.yaml
    somelvlm train lmm-rgcl --stage 2 --config configs/lmm-rgcl-harm-c.yaml

**Stage 1**: LoRA on the LVLM's language model (and its connector when training memes have images),
``loss = l0 * LM + l1 * BCE(MLP(h)) [+ l2 * L_RGCL]``: LM is the next-token loss of the answer in the
task's label words (so the model keeps answering in text), h the last hidden state at the last prompt
token, the MLP two layers (``models.lmm_rgcl.MemeHead``); the optional RGCL term mines its positive
and hard negative inside the batch (no index). Checkpoints (LoRA + connector + head, optimizer,
schedule) every ``checkpoint_every`` steps under ``OUT/checkpoints``; a rerun resumes from the newest.

**Stage 2**: the LMM frozen; h of every training meme computed once (cached in ``OUT/h.safetensors``),
the MLP retrained on them with RGCL's hybrid loss ``(1 - w) L_RGCL + w CE`` (``train.losses``): every
epoch the head's embeddings g of all training memes are indexed (FAISS, exact inner product) and each
meme's pseudo-gold positive and hard negatives retrieved (``train.rgcl.mine``). The epoch with the best
source-domain val macro-F1 is kept.

Both stages save ``OUT/model``: a folder the ``lmm_rgcl`` backend loads (``load_model``), with the
index of the training memes' g for RKC. Memes whose image cannot be read are skipped and listed in
``OUT/report.json`` with the reason; the rest trains.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["LMMRGCLConfig", "prepare_memes", "train_stage1", "train_stage2"]


@dataclass
class LMMRGCLConfig:
    """Options of ``somelvlm train lmm-rgcl`` (YAML keys have the same names)."""

    stage: int
    """1: LoRA + head with LM and BCE losses; 2: the head alone with RGCL on the frozen LMM: ``--stage``."""
    out: str
    """Run folder: stage 1 writes ``OUT/stage1`` and stage 2 ``OUT/stage2`` (each: checkpoints,
    train_log.jsonl, report.json and model/)."""
    domain: str = "harm-c"
    """Training memes: a ``data.meme_domains`` domain (harm-c, harm-p, fhm, cm_memes, ...) or a JSONL
    file of labelled memes (``id, text, image, label, split``; images relative to the file)."""
    task: str | None = None
    """The task of a JSONL ``domain`` (e.g. harmful_meme); a named domain knows its own."""
    data_root: str = "../shared/data"
    init: str = "some-lvlm"
    """Stage 1 starts from this LVLM folder / shipped name (its adapter merged, its connector kept) or
    base LM (folder or packaged short name)."""
    stage1_model: str | None = None
    """Stage 2 freezes this stage-1 model folder (default ``OUT/stage1/model``)."""
    name: str = "lmm-rgcl"
    max_train: int | None = 400
    """Training memes: a fixed sample (None: all)."""
    max_val: int | None = 200
    """Val memes for stage 2's epoch selection (None: all)."""
    balanced: bool = True
    """Sample the training memes half positive where the domain allows."""
    prompt_index: int = 0
    """Which of the task's prompt templates frames every meme."""
    max_len: int = 128
    """Tokens per training sequence (prompt + answer)."""
    # stage 1
    l0: float = 1.0
    """Weight of the LM loss (0: the head alone on top of LoRA)."""
    l1: float = 1.0
    """Weight of BCE(MLP(h)) (0 with l2 0: plain SFT)."""
    l2: float = 0.0
    """Weight of the in-batch RGCL term on the head's g."""
    batch_size: int = 8
    grad_accum: int = 1
    epochs: int = 1
    max_steps: int | None = 150
    lr: float = 2e-4
    """LoRA and connector learning rate (the paper: 4e-5 at 7B, batch 16)."""
    head_lr: float = 1e-3
    """Head learning rate (the paper: 1e-4)."""
    weight_decay: float = 0.0
    warmup_steps: int = 10
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_targets: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    lora_layers: int | None = 8
    """LoRA only in the top N decoder layers (backward stops there: cheaper on CPU); None: all."""
    train_connector: bool = True
    """Stage 1 also tunes the connector when training memes have images."""
    new_connector: str = "mlp"
    """When the init model has no connector and memes have images: a new one of this kind (mlp / qformer)."""
    head_width: int = 256
    """Width of g (the paper: 1024)."""
    head_dropout: float = 0.1
    head_norm: str = "standard"
    """``models.lmm_rgcl.HEAD_NORMS``: ``standard`` = per-channel ``(h - mean) / std``, training memes'
    statistics saved in the head (stage 1: the init model's h; stage 2: the frozen LMM's); ``layer``; ``none``."""
    h_pool: str = "mean"
    """``models.lmm_rgcl.H_POOLS``: h = mean over the prompt tokens or the last one's (the paper's); saved."""
    head_embed: str = "post"
    """Where g is read (``models.lmm_rgcl.HEAD_EMBEDS``): after the first layer's GELU or before it."""
    cache_frozen_layers: bool = False
    """Text-only memes with ``lora_layers`` set: compute the frozen layers below the LoRA ones once per
    meme (``models.lmm_rgcl.StateCache``, shared by runs from the same init model) and run only the top
    layers in training and feature extraction: the same numbers, several times faster on CPU."""
    checkpoint_every: int = 50
    log_every: int = 5
    # stage 2
    stage2_epochs: int = 30
    stage2_batch_size: int = 64
    stage2_lr: float = 1e-4
    stage2_weight_decay: float = 1e-4
    head_init: str = "stage1"
    """Stage 2 starts from the stage-1 head (``stage1``) or a fresh one (``fresh``)."""
    k: int = 12
    """Neighbours searched per meme when mining positives and hard negatives."""
    hard_negatives: int = 1
    ce_weight: float = 0.5
    """w in (1 - w) L_RGCL + w CE."""
    temperature: float = 1.0
    rkc_k: int = 20
    """Neighbours RKC votes with (saved into the model)."""
    index_kind: str = "flat"
    quantize: str = "auto"
    """Stage 1 on a Hugging Face VLM: ``nf4`` (QLoRA, CUDA), ``none``, or ``auto`` (nf4 when CUDA is there)."""
    num_threads: int = 2
    seed: int = 0
    max_prompt_tokens: int = 256
    """Saved into the model: prompts at inference are cut to this many tokens."""

    def __post_init__(self) -> None:
        from somelvlm.data.meme_domains import get_domain

        if self.stage not in (1, 2):
            raise ValueError(f"--stage must be 1 or 2, got {self.stage}")
        if self.domain.endswith(".jsonl"):
            if not self.task:
                raise ValueError(f"domain {self.domain} is a file: set `task` (e.g. harmful_meme)")
        else:
            get_domain(self.domain)
        if min(self.l0, self.l1, self.l2) < 0 or self.l0 + self.l1 + self.l2 == 0:
            raise ValueError(f"l0, l1, l2 must be >= 0 and not all 0, got {self.l0}, {self.l1}, {self.l2}")
        if self.batch_size < 2 or self.grad_accum < 1 or self.stage2_batch_size < 2:
            raise ValueError("batch_size and stage2_batch_size must be >= 2, grad_accum >= 1")
        if not 0 <= self.ce_weight <= 1:
            raise ValueError(f"ce_weight must be in [0, 1], got {self.ce_weight}")
        if self.head_init not in ("stage1", "fresh"):
            raise ValueError(f"head_init must be stage1 or fresh, got {self.head_init!r}")
        if self.k < 2 or not 1 <= self.hard_negatives <= self.k:
            raise ValueError("k must be >= 2 and 1 <= hard_negatives <= k")
        from somelvlm.models.lmm_rgcl import H_POOLS, HeadConfig

        self.head_norm = HeadConfig(in_dim=1, norm=self.head_norm, embed=self.head_embed).norm  # checks both
        if self.h_pool not in H_POOLS:
            raise ValueError(f"h_pool must be one of {H_POOLS}, got {self.h_pool!r}")
        if self.max_len < 32:
            raise ValueError(f"max_len must be at least 32, got {self.max_len}")

    @classmethod
    def from_yaml(cls, path: str | Path, **overrides) -> LMMRGCLConfig:
        from somelvlm.train.config import config_from_yaml

        return config_from_yaml(cls, path, **overrides)


# -- memes -> items ------------------------------------------------------------------------------------
def prepare_memes(memes: list, tokenizer, task, num_image_tokens: int, config: LMMRGCLConfig,
                  with_answers: bool, vision_encoder: str = "efficientnet_lite0_grid") -> tuple[list[dict], list[dict]]:
    """``(items, skipped)``: tokenised memes (with their image features when the model reads images)
    and ``{"id", "reason", "message"}`` for memes left out (an image that cannot be read)."""
    import torch

    from somelvlm.models.lmm_rgcl import encode_meme, meme_prompt

    feats: dict[int, object] = {}
    skipped: list[dict] = []
    bad: set[int] = set()
    with_image = [i for i, m in enumerate(memes) if m.image] if num_image_tokens else []
    if with_image:
        from somelvlm.features import FeatureCache, get_extractor
        from somelvlm.features.mm_table import encode_robust

        out, errors = encode_robust(FeatureCache(), get_extractor(vision_encoder), [memes[i].image for i in with_image])
        for j, i in enumerate(with_image):
            if j in errors:
                bad.add(i)
                skipped.append({"id": memes[i].id, "reason": "unreadable image", "message": errors[j]})
            else:
                feats[i] = torch.from_numpy(np.asarray(out[j], dtype=np.float32))
    items = []
    for i, m in enumerate(memes):
        if i in bad:
            continue
        answer = task.answer(m.label) if with_answers else None
        it = encode_meme(tokenizer, meme_prompt(task, m.text, config.prompt_index), answer, num_image_tokens,
                         i in feats, config.max_len)
        it.update(feats=feats.get(i), y=float(m.positive), id=m.id, meme=m)
        items.append(it)
    return items, skipped


def split_memes(config: LMMRGCLConfig, seed: int | None = None) -> tuple[list, list, list[dict]]:
    """(train memes, val memes, skipped rows) of the config's domain, fixed samples."""
    from somelvlm.data.meme_domains import load_domain, load_meme_file, sample

    if config.domain.endswith(".jsonl"):
        memes, skipped = load_meme_file(config.domain, config.task)
    else:
        memes, skipped = load_domain(config.data_root, config.domain)
    seed = config.seed if seed is None else seed
    train = sample([m for m in memes if m.split == "train"], config.max_train, seed, config.balanced)
    val = sample([m for m in memes if m.split == "val"], config.max_val, seed)
    if len(train) < 2:
        raise ValueError(f"domain {config.domain}: only {len(train)} training memes under {config.data_root}")
    return train, val, skipped


def binary_labels(task_name: str) -> list[str]:
    from somelvlm.data.meme_domains import negative_label, positive_name

    return [negative_label(task_name), positive_name(task_name)]


def index_meta(items: list[dict], labels: list[str], source: str) -> dict[str, list]:
    return {"id": [it["id"] for it in items], "label": [labels[int(it["y"])] for it in items],
            "task": [it["meme"].task for it in items], "source": [source] * len(items),
            "text": [it["meme"].text for it in items]}


def compute_h(lvlm, items: list[dict], pad_id: int, batch_size: int = 8, from_layer: int = 0,
              pool: str = "last") -> np.ndarray:
    """(n, lm_dim) h of items (eval mode, no gradients); ``from_layer``: items carry bottom states."""
    import torch

    from somelvlm.models.lmm_rgcl import collate_memes, lvlm_forward

    out = []
    with torch.inference_mode():
        for s in range(0, len(items), batch_size):
            batch = collate_memes(items[s:s + batch_size], pad_id)
            out.append(lvlm_forward(lvlm, batch, lm_loss=False, from_layer=from_layer, pool=pool)["h"].float().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def frozen_prefix(lvlm, items: list[dict], config: LMMRGCLConfig, init_digest: str, pad_id: int,
                  lora_layers: int | None, log=None) -> int:
    """The first LoRA layer when ``cache_frozen_layers`` applies (text-only items, LoRA in the top
    layers): the items get their bottom states from the ``StateCache``. Else 0 (full forward)."""
    from somelvlm.models.lmm_rgcl import StateCache

    if not config.cache_frozen_layers or not lora_layers or any(it.get("feats") is not None for it in items):
        return 0
    upto = lvlm.lm.config.num_hidden_layers - lora_layers
    if upto <= 0:
        return 0
    was = lvlm.training
    lvlm.eval()
    StateCache(init_digest, upto).fill(lvlm, items, pad_id, log=log)
    lvlm.train(was)
    return upto


def _write_report(out: Path, skipped: list[dict], n_train: int, extra: dict | None = None) -> None:
    from collections import Counter

    from somelvlm.atomic import atomic_write_text

    report = {"trained_on": n_train, "skipped": len(skipped),
              "skipped_by_reason": dict(Counter(s["reason"] for s in skipped)), "rows": skipped, **(extra or {})}
    atomic_write_text(out / "report.json", json.dumps(report, indent=1))


# -- stage 1 -------------------------------------------------------------------------------------------
def build_stage1(config: LMMRGCLConfig, with_images: bool):
    """(LVLM with LoRA on its LM, tokenizer, head, init record); the connector trainable when asked."""
    import torch
    from peft import LoraConfig, get_peft_model

    from somelvlm.models.connector import ConnectorConfig, build_connector
    from somelvlm.models.lmm_rgcl import MemeHead, load_init

    lvlm, tokenizer, init = load_init(config.init)
    for p in lvlm.parameters():
        p.requires_grad_(False)
    dim = lvlm.lm.get_input_embeddings().embedding_dim
    if with_images and lvlm.connector is None:
        lvlm.connector = build_connector(ConnectorConfig(lm_dim=dim, kind=config.new_connector))
    if lvlm.connector is not None:
        for p in lvlm.connector.parameters():
            p.requires_grad_(with_images and config.train_connector)
    layers = None
    if config.lora_layers:
        n = lvlm.lm.config.num_hidden_layers
        layers = list(range(max(0, n - config.lora_layers), n))
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.lora_targets), layers_to_transform=layers, task_type="CAUSAL_LM")
    lvlm.lm = get_peft_model(lvlm.lm, lora)
    torch.manual_seed(config.seed)
    head = MemeHead(head_config(config, dim))
    return lvlm, tokenizer, head, init


def head_config(config: LMMRGCLConfig, in_dim: int):
    from somelvlm.models.lmm_rgcl import HeadConfig

    return HeadConfig(in_dim=in_dim, width=config.head_width, dropout=config.head_dropout, norm=config.head_norm,
                      embed=config.head_embed)


def stage1_terms(lvlm, head, batch, config: LMMRGCLConfig, from_layer: int = 0) -> dict:
    """Named loss terms of one batch: ``lm``, ``bce``, ``rgcl`` (when l2 > 0) and their weighted ``loss``."""
    from somelvlm.models.lmm_rgcl import lvlm_forward

    f = lvlm_forward(lvlm, batch, lm_loss=config.l0 > 0, from_layer=from_layer, pool=config.h_pool)
    return head_terms(f, head, batch["y"], config)


def head_terms(f: dict, head, y, config: LMMRGCLConfig) -> dict:
    """Stage 1's loss terms from one forward pass ``f`` (``h`` (batch, dim), ``lm`` when computed) and
    the 0/1 targets ``y`` (batch,): ``bce``, ``lm``, ``rgcl`` (l2 > 0) and their weighted ``loss``."""
    import torch
    import torch.nn.functional as F

    from somelvlm.train.losses import rgcl_loss

    out = head(f["h"])
    terms = {"bce": F.binary_cross_entropy_with_logits(out["logit"], y)}
    loss = config.l1 * terms["bce"]
    if "lm" in f:
        terms["lm"] = f["lm"]
        loss = loss + config.l0 * f["lm"]
    if config.l2 > 0:
        g = out["g"]
        sims = F.normalize(g, dim=-1) @ F.normalize(g, dim=-1).t()
        eye = torch.eye(len(y), dtype=torch.bool, device=y.device)
        same = (y[:, None] == y[None, :]) & ~eye
        pos = torch.where(same, sims, torch.full_like(sims, -2)).argmax(-1)
        neg = torch.where(~same & ~eye, sims, torch.full_like(sims, -2)).argmax(-1)
        r = rgcl_loss(g, y.long(), g[pos].detach(), g[neg].detach()[:, None, :],
                      hard_neg_mask=(y[neg] != y)[:, None], pos_mask=same.any(-1), temperature=config.temperature)
        terms["rgcl"] = r["rgcl"]
        loss = loss + config.l2 * r["rgcl"]
    terms["loss"] = loss
    return terms


def stage1_folder(config: LMMRGCLConfig) -> str:
    """The stage-1 model stage 2 starts from: ``stage1_model``, else ``OUT/stage1/model``."""
    return config.stage1_model or str(Path(config.out) / "stage1" / "model")


def stage1_optimizer(config, out: Path, trainable: dict, n_items: int, log: Callable[[str], None]) -> tuple:
    """Stage 1's optimizer, schedule and resume point (``train.loop.optimizer_and_resume``): the LMM's
    weights (names not starting with ``head.``) at ``lr``, the head at ``head_lr``."""
    from somelvlm.train.loop import optimizer_and_resume

    log(f"trainable weights: {sum(p.numel() for p in trainable.values()):,}")
    groups = [{"params": [p for n, p in trainable.items() if not n.startswith("head.")], "lr": config.lr},
              {"params": [p for n, p in trainable.items() if n.startswith("head.")], "lr": config.head_lr}]
    return optimizer_and_resume(config, out, trainable, n_items, log, groups=groups)


def train_stage1(config: LMMRGCLConfig, log: Callable[[str], None]) -> Path:
    import torch

    from somelvlm.models.lmm_rgcl import collate_memes
    from somelvlm.taxonomy.registry import get_task
    from somelvlm.train.loop import stage1_steps

    out = stage_dir(config)
    train_memes, _, skipped = split_memes(config)
    task = get_task(train_memes[0].task)
    with_images = any(m.image for m in train_memes)
    lvlm, tokenizer, head, init = build_stage1(config, with_images)
    items, bad = prepare_memes(train_memes, tokenizer, task, lvlm.num_image_tokens, config, with_answers=True)
    skipped += bad
    _write_report(out, skipped, len(items))
    log(f"stage 1: {len(items)} {config.domain} memes ({sum(it['y'] for it in items):.0f} positive, "
        f"{sum(it['feats'] is not None for it in items)} with images), {len(skipped)} skipped (report.json)")
    from_layer = frozen_prefix(lvlm, items, config, init["digest"], tokenizer.pad_token_id, config.lora_layers, log)
    if head.config.norm == "standard":
        # the statistics of h before any step: LoRA's B matrices start at zero, so this is the init model's
        # h, the same numbers on a resumed run (checkpoints hold parameters, not these buffers)
        lvlm.eval()
        head.fit_standardizer(compute_h(lvlm, items, tokenizer.pad_token_id, from_layer=from_layer, pool=config.h_pool))
    trainable = {f"lm.{n}": p for n, p in lvlm.lm.named_parameters() if p.requires_grad}
    if lvlm.connector is not None:
        trainable |= {f"connector.{n}": p for n, p in lvlm.connector.named_parameters() if p.requires_grad}
    trainable |= {f"head.{n}": p for n, p in head.named_parameters()}
    optimizer, schedule, per_epoch, total, step = stage1_optimizer(config, out, trainable, len(items), log)
    lvlm.train()
    head.train()

    def batch_terms(chosen: list[dict]) -> dict:
        batch = collate_memes(chosen, tokenizer.pad_token_id)
        batch["y"] = torch.tensor([it["y"] for it in chosen])
        return stage1_terms(lvlm, head, batch, config, from_layer)

    stage1_steps(config, out, items, trainable, optimizer, schedule, per_epoch, total, step, batch_terms, log)
    lvlm.eval()
    head.eval()
    labels = binary_labels(task.name)
    h = compute_h(lvlm, items, tokenizer.pad_token_id, from_layer=from_layer, pool=config.h_pool)
    with torch.no_grad():
        g = head(torch.from_numpy(h))["g"].numpy()
    meta = {"name": config.name, "task": task.name, "labels": labels, "init": init,
            "lora_layers": config.lora_layers, "h_pool": config.h_pool,
            "prompt_index": config.prompt_index, "max_prompt_tokens": config.max_prompt_tokens,
            "rkc_k": config.rkc_k, "training": {"stage1": _record(config, items, out)}}
    return save_with_index(out / "model", lvlm, tokenizer, head, meta, g, index_meta(items, labels, config.domain),
                           config.index_kind)


def save_with_index(folder: Path, lvlm, tokenizer, head, meta: dict, g: np.ndarray, rows: dict[str, list],
                    kind: str = "flat") -> Path:
    """The model folder (``models.lmm_rgcl.save_model``) with ``index/``: a MemoryIndex of the training
    memes' g (n, width), stamped with this model, written in the same atomic step."""
    from somelvlm.models.lmm_rgcl import index_stamp, save_model
    from somelvlm.retrieval.index import MemoryIndex

    def write_index(tmp: Path, config: dict, head_digest: str) -> None:
        MemoryIndex.build(g, rows, index_stamp(config, head_digest, folder), kind=kind).save(tmp / "index")

    return save_model(folder, lvlm, tokenizer, head, meta, write_index)


def _record(config: LMMRGCLConfig, items: list[dict], out: Path) -> dict:
    last = None
    log_path = out / "train_log.jsonl"
    if log_path.is_file():
        lines = log_path.read_text(encoding="utf-8").strip().splitlines()
        last = json.loads(lines[-1]) if lines else None
    return {"domain": config.domain, "memes": len(items), "positive": int(sum(it["y"] for it in items)),
            "with_images": int(sum(it.get("feats") is not None for it in items)), "last_log": last,
            "options": {k: v for k, v in asdict(config).items() if k not in ("out", "data_root")}}


# -- stage 2 -------------------------------------------------------------------------------------------
def cached_h(out: Path, lvlm, items: list[dict], pad_id: int, key: str, log, from_layer: int = 0,
             pool: str = "last", compute: Callable[[list[dict]], np.ndarray] | None = None) -> np.ndarray:
    """h of ``items``, computed once per (model, memes) and kept in ``out/h-KEY.safetensors``;
    ``compute(items)`` instead of the compose LVLM's ``compute_h`` when given (a Hugging Face VLM)."""
    import hashlib

    from safetensors.numpy import load_file, save_file

    from somelvlm.atomic import atomic_path

    digest = hashlib.sha256("\n".join(it["id"] for it in items).encode()).hexdigest()[:12]
    path = out / f"h-{key}-{pool}-{digest}.safetensors"
    if path.is_file():
        return load_file(str(path))["h"]
    t0 = time.perf_counter()
    h = compute(items) if compute else compute_h(lvlm, items, pad_id, from_layer=from_layer, pool=pool)
    with atomic_path(path) as tmp:
        save_file({"h": h}, str(tmp))
    log(f"h of {len(items)} memes in {time.perf_counter() - t0:.0f} s -> {path.name}")
    return h


def train_head_rgcl(head, h: np.ndarray, y: np.ndarray, h_val: np.ndarray, y_val: np.ndarray,
                    config: LMMRGCLConfig, log: Callable[[str], None] = print) -> dict:
    """Stage 2's loop on fixed features: per epoch mine (index of g rebuilt), then the hybrid loss.
    Keeps the epoch with the best val macro-F1 (the last one without val). Returns the history."""
    import torch
    import torch.nn.functional as F

    from somelvlm.train.loop import BestEpoch, apply_step, format_row
    from somelvlm.train.losses import hybrid_loss, rgcl_loss
    from somelvlm.train.rgcl import mine

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    opt = torch.optim.AdamW(head.parameters(), lr=config.stage2_lr, weight_decay=config.stage2_weight_decay)
    H, Y = torch.from_numpy(h), torch.from_numpy(y.astype(np.float32))
    kept, history = BestEpoch("val_macro_f1"), []
    for epoch in range(1, config.stage2_epochs + 1):
        head.eval()
        with torch.no_grad():
            g_all = head(H)["g"].numpy()
        pos, neg = mine(g_all, y.astype(np.int64), config.k, config.hard_negatives)
        head.train()
        sums: dict[str, float] = {}
        order = rng.permutation(len(h))
        for s in range(0, len(order), config.stage2_batch_size):
            b = order[s:s + config.stage2_batch_size]
            if len(b) < 2:
                continue
            out = head(H[b])
            g_pos = head(H[np.maximum(pos[b], 0)])["g"]
            g_neg = head(H[np.maximum(neg[b], 0).reshape(-1)])["g"].reshape(len(b), config.hard_negatives, -1)
            r = rgcl_loss(out["g"], Y[b].long(), g_pos, g_neg, hard_neg_mask=torch.from_numpy(neg[b] >= 0),
                          pos_mask=torch.from_numpy(pos[b] >= 0), temperature=config.temperature)
            ce = F.binary_cross_entropy_with_logits(out["logit"], Y[b])
            terms = hybrid_loss(r["rgcl"], ce, config.ce_weight)
            terms["loss"].backward()
            apply_step(opt)
            for n, v in {**terms, "pos_sim": r["pos_sim"], "neg_sim": r["neg_sim"]}.items():
                sums[n] = sums.get(n, 0.0) + float(v.detach()) * len(b)
        row = {"epoch": epoch, **{f"train_{n}": v / len(order) for n, v in sums.items()}}
        if len(h_val):
            row |= {f"val_{n}": v for n, v in binary_metrics(y_val, head_probs(head, h_val)).items()}
        else:
            row["val_macro_f1"] = float(epoch)
        history.append(row)
        kept.update(row, head)
        log(format_row(row))
    kept.restore(head)
    head.eval()
    return {"history": history, "best_epoch": kept.row["epoch"]}


def head_probs(head, h: np.ndarray) -> np.ndarray:
    """(n,) P(positive) of the head on features h (n, dim)."""
    import torch

    head.eval()
    with torch.no_grad():
        return torch.sigmoid(head(torch.from_numpy(h))["logit"]).numpy()


def binary_metrics(y: np.ndarray, p: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """macro-F1, accuracy (p >= threshold) and AUROC of P(positive) ``p`` against 0/1 ``y``, in %."""
    from somelvlm.evaluate.metrics import score

    gold = ["pos" if v else "neg" for v in y]
    pred = ["pos" if v >= threshold else "neg" for v in p]
    labels = ("neg", "pos")
    out = {"macro_f1": score("macro_f1", gold, pred, labels), "accuracy": score("accuracy", gold, pred, labels)}
    out["auroc"] = score("auroc", gold, pred, labels, [float(v) for v in p]) if len(set(gold)) == 2 else float("nan")
    return out


def stage2_memes(model, config: LMMRGCLConfig, stage1: Path, s1: dict):
    """Stage 2's start, shared by both recipes: ``model`` (the stage-1 LMM) frozen in eval mode, and
    ``(task, train memes, val memes, skipped rows)`` of the domain; a domain of another task than the
    stage-1 model answers is refused, naming both."""
    from somelvlm.taxonomy.registry import get_task

    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    train_memes, val_memes, skipped = split_memes(config)
    task = get_task(s1["task"])
    if train_memes[0].task != task.name:
        raise ValueError(f"stage 1 model {stage1} answers {task.name}, domain {config.domain} is {train_memes[0].task}")
    return task, train_memes, val_memes, skipped


def train_stage2(config: LMMRGCLConfig, log: Callable[[str], None]) -> Path:
    from somelvlm.models.lmm_rgcl import load_parts

    out = stage_dir(config)
    stage1 = stage1_folder(config)
    lvlm, tokenizer, head, s1 = load_parts(stage1, merge=False)
    task, train_memes, val_memes, skipped = stage2_memes(lvlm, config, stage1, s1)
    items, bad = prepare_memes(train_memes, tokenizer, task, lvlm.num_image_tokens, config, with_answers=False)
    val_items, _ = prepare_memes(val_memes, tokenizer, task, lvlm.num_image_tokens, config, with_answers=False)
    skipped += bad
    _write_report(out, skipped, len(items))
    log(f"stage 2: {len(items)} training memes, {len(val_items)} val memes; LMM frozen")
    key = s1.get("adapter_digest", "s1")
    pad = tokenizer.pad_token_id
    from_layer = frozen_prefix(lvlm, items + val_items, config, s1["init"]["digest"], pad, s1.get("lora_layers"), log)
    pool = s1.get("h_pool", "last")
    h = cached_h(out, lvlm, items, pad, key, log, from_layer, pool)
    h_val = cached_h(out, lvlm, val_items, pad, key, log, from_layer, pool) if val_items else np.zeros((0, h.shape[1]), np.float32)
    head, g, meta = fit_stage2_head(config, out, head, h, h_val, items, val_items, s1, log,
                                    drop=("vision_encoder",))
    labels = list(s1["labels"])
    return save_with_index(out / "model", lvlm, tokenizer, head, meta, g, index_meta(items, labels, config.domain),
                           config.index_kind)


def fit_stage2_head(config: LMMRGCLConfig, out: Path, head, h, h_val, items: list[dict], val_items: list[dict],
                    s1: dict, log: Callable[[str], None], drop: tuple[str, ...] = ()) -> tuple:
    """Stage 2 on cached h (n, dim) of either recipe: the head (fresh or stage 1's) standardised on the
    training h and trained with the RGCL hybrid loss, its history logged; ``(head, g (n, dim_g), the
    model folder's config)``: stage 1's config without its weights' entries (and ``drop``)."""
    import torch

    from somelvlm.models.lmm_rgcl import MemeHead

    if config.head_init == "fresh":
        torch.manual_seed(config.seed)
        head = MemeHead(head_config(config, h.shape[1]))
    if head.config.norm == "standard":
        head.fit_standardizer(h)  # the frozen LMM's h of the training memes: the features stage 2 sees
    y = np.array([it["y"] for it in items], np.int64)
    y_val = np.array([it["y"] for it in val_items], np.int64)
    result = train_head_rgcl(head, h, y, h_val, y_val, config, log)
    with (out / "train_log.jsonl").open("a", encoding="utf-8") as f:
        for row in result["history"]:
            f.write(json.dumps({"stage": 2, **row}) + "\n")
    with torch.no_grad():
        g = head(torch.from_numpy(h))["g"].numpy()
    weights = ("backend", "head", "adapter", "adapter_digest", "connector", "connector_digest", *drop)
    best = result["history"][result["best_epoch"] - 1]
    meta = {k: v for k, v in s1.items() if k not in weights}
    meta |= {"name": config.name, "rkc_k": config.rkc_k,
             "training": {"stage1": s1.get("training", {}).get("stage1"),
                          "stage2": {"domain": config.domain, "memes": len(items), "best_epoch": result["best_epoch"],
                                     "val": {k[4:]: v for k, v in best.items() if k.startswith("val_")},
                                     "options": {k: v for k, v in asdict(config).items()
                                                 if k.startswith(("stage2", "k", "hard", "ce_", "temp", "head_"))}}}}
    return head, g, meta


def stage_dir(config: LMMRGCLConfig) -> Path:
    """``OUT/stage1`` or ``OUT/stage2``."""
    return Path(config.out) / f"stage{config.stage}"
