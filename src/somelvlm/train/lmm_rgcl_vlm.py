"""LMM-RGCL's two stages on a pretrained Hugging Face VLM (Qwen2-VL, LLaVA, ...): ``train.lmm_rgcl``
comes here when ``init`` is one (``instruct_vlm.is_hf_vlm``) in stage 1, or when the stage-1 model was
tuned from one in stage 2. Same losses, h, head, caching, checkpoints and model folder as on our
compose LVLM; what differs is taken from ``train.instruct_vlm``: the VLM's own processor and chat
template (image placed by the template), LoRA on the language model's linear layers named in
``lora_targets`` (top ``lora_layers`` or all), QLoRA (NF4 base) on CUDA with ``quantize: auto``.

The VLM's own projector and vision tower stay frozen (the paper tunes the LM with LoRA); memes
without an image are read as text (a blank image for model types that need pixels).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from somelvlm.train.lmm_rgcl import (
    LMMRGCLConfig,
    _record,
    _write_report,
    binary_labels,
    cached_h,
    fit_stage2_head,
    head_config,
    head_terms,
    index_meta,
    save_with_index,
    split_memes,
    stage1_optimizer,
    stage2_memes,
    stage_dir,
)


def device_of(model) -> torch.device:
    return next(model.parameters()).device


def prepare_vlm_memes(memes: list, processor, task, config: LMMRGCLConfig, with_answers: bool,
                      blank: bool) -> tuple[list[dict], list[dict]]:
    """``(items, skipped)``: memes through the VLM's processor (``models.lmm_rgcl_vlm.encode_vlm_meme``)
    and ``{"id", "reason", "message"}`` of those left out (an image that cannot be read)."""
    from somelvlm.models.lmm_rgcl import meme_prompt
    from somelvlm.models.lmm_rgcl_vlm import BLANK, encode_vlm_meme
    from somelvlm.posts import PostError

    items, skipped = [], []
    for m in memes:
        answer = task.answer(m.label) if with_answers else None
        try:
            it = encode_vlm_meme(processor, meme_prompt(task, m.text, config.prompt_index), answer,
                                 m.image or (BLANK if blank else None), config.max_len)
        except (PostError, OSError) as e:
            skipped.append({"id": m.id, "reason": "unreadable image", "message": str(e)})
            continue
        it.update(y=float(m.positive), id=m.id, meme=m)
        items.append(it)
    return items, skipped


def vlm_h(model, processor, items: list[dict], pool: str, batch_size: int = 8) -> np.ndarray:
    """(n, lm_dim) h of items (eval mode, no gradients), batches of one kind (with / without image)."""
    from somelvlm.models.lmm_rgcl_vlm import collate_vlm, vlm_forward

    pad = getattr(processor, "tokenizer", processor).pad_token_id
    out = np.zeros((len(items), 0), np.float32)
    rows: dict[int, np.ndarray] = {}
    with torch.inference_mode():
        for kind in (True, False):
            idx = [i for i, it in enumerate(items) if (it["image"] is not None) == kind]
            for s in range(0, len(idx), batch_size):
                chunk = idx[s:s + batch_size]
                h = vlm_forward(model, collate_vlm([items[i] for i in chunk], processor, pad), lm_loss=False, pool=pool)
                rows.update(zip(chunk, h["h"].float().cpu().numpy()))
    return np.stack([rows[i] for i in range(len(items))]) if rows else out


def build_vlm_stage1(config: LMMRGCLConfig):
    """(peft VLM with LoRA on its LM, processor, head, init record): QLoRA on CUDA when asked."""
    from somelvlm.digests import base_weights_digest
    from somelvlm.models.hf_vlm import add_lm_lora, lm_lora_targets
    from somelvlm.models.lmm_rgcl import MemeHead
    from somelvlm.models.lmm_rgcl_vlm import load_base

    quantize = config.quantize == "nf4" or (config.quantize == "auto" and torch.cuda.is_available())
    if quantize:
        from somelvlm.models.hf_vlm import load_processor
        from somelvlm.train.instruct_vlm import load_quantized_vlm

        processor, model = load_processor(config.init), load_quantized_vlm(config.init)
        init = {"kind": "hf_vlm", "name": config.init, "digest": None, "quantized": "nf4"}
    else:
        model, processor = load_base(config.init)
        init = {"kind": "hf_vlm", "name": config.init, "digest": base_weights_digest(model), "dtype": "float32"}
        model.to("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = getattr(processor, "tokenizer", processor)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    for p in model.parameters():
        p.requires_grad_(False)
    text = model.config.get_text_config()
    layers = None
    if config.lora_layers:
        layers = list(range(max(0, text.num_hidden_layers - config.lora_layers), text.num_hidden_layers))
    model = add_lm_lora(model, r=config.lora_r, alpha=config.lora_alpha, dropout=config.lora_dropout,
                        targets=lm_lora_targets(list(config.lora_targets)), layers=layers)
    torch.manual_seed(config.seed)
    head = MemeHead(head_config(config, text.hidden_size)).to(device_of(model))
    return model, processor, head, init


def train_stage1_vlm(config: LMMRGCLConfig, log: Callable[[str], None]) -> Path:
    """Stage 1 on a Hugging Face VLM; resumes from the newest checkpoint; returns the model folder."""
    from somelvlm.models.lmm_rgcl_vlm import as_parts, collate_vlm, needs_image, vlm_forward
    from somelvlm.taxonomy.registry import get_task
    from somelvlm.train.loop import stage1_steps

    if config.cache_frozen_layers:
        log("cache_frozen_layers applies to the compose LVLM only: the VLM runs in full")
    out = stage_dir(config)
    train_memes, _, skipped = split_memes(config)
    task = get_task(train_memes[0].task)
    model, processor, head, init = build_vlm_stage1(config)
    pad = getattr(processor, "tokenizer", processor).pad_token_id
    items, bad = prepare_vlm_memes(train_memes, processor, task, config, True, needs_image(model))
    skipped += bad
    _write_report(out, skipped, len(items))
    log(f"stage 1 on {model.config.model_type}: {len(items)} {config.domain} memes "
        f"({sum(it['y'] for it in items):.0f} positive, {sum(it['meme'].image is not None for it in items)} with "
        f"images), {len(skipped)} skipped (report.json)")
    if len(items) < 2:
        raise ValueError(f"domain {config.domain}: fewer than 2 usable training memes (report.json)")
    device = device_of(model)
    if head.config.norm == "standard":  # the init model's h (LoRA's B starts at zero): same on a resumed run
        model.eval()
        head.fit_standardizer(vlm_h(model, processor, items, config.h_pool))
    trainable = {f"lm.{n}": p for n, p in model.named_parameters() if p.requires_grad}
    trainable |= {f"head.{n}": p for n, p in head.named_parameters()}
    optimizer, schedule, per_epoch, total, step = stage1_optimizer(config, out, trainable, len(items), log)
    model.train()
    head.train()

    def batch_terms(chosen: list[dict]) -> dict:
        # one forward per kind (with / without image); terms averaged over the memes of the batch
        parts = [g for g in ([it for it in chosen if it["image"] is not None],
                             [it for it in chosen if it["image"] is None]) if g]
        fs = [vlm_forward(model, collate_vlm(g, processor, pad), lm_loss=config.l0 > 0, pool=config.h_pool)
              for g in parts]
        f = {"h": torch.cat([x["h"] for x in fs])}
        if all("lm" in x for x in fs):
            f["lm"] = sum(x["lm"] * len(g) for x, g in zip(fs, parts)) / len(chosen)
        y = torch.tensor([it["y"] for g in parts for it in g], device=device)
        return head_terms(f, head, y, config)

    stage1_steps(config, out, items, trainable, optimizer, schedule, per_epoch, total, step, batch_terms, log)
    model.eval()
    head.eval()
    labels = binary_labels(task.name)
    h = vlm_h(model, processor, items, config.h_pool)
    head.cpu()
    with torch.no_grad():
        g = head(torch.from_numpy(h))["g"].numpy()
    meta = {"name": config.name, "task": task.name, "labels": labels, "init": init, "vision_encoder": None,
            "lora_layers": config.lora_layers, "h_pool": config.h_pool,
            "prompt_index": config.prompt_index, "max_prompt_tokens": config.max_prompt_tokens,
            "rkc_k": config.rkc_k, "training": {"stage1": _record(config, items, out)}}
    if not init.get("quantized"):
        model.to("cpu")
    return save_with_index(out / "model", as_parts(model), processor, head, meta, g,
                           index_meta(items, labels, config.domain), config.index_kind)


def train_stage2_vlm(config: LMMRGCLConfig, stage1: str, log: Callable[[str], None]) -> Path:
    """Stage 2 with the stage-1 VLM frozen (unquantized, its adapter attached): h cached, the head
    retrained with RGCL (``train.lmm_rgcl.train_head_rgcl``); returns the model folder."""
    from somelvlm.models.lmm_rgcl_vlm import as_parts, load_vlm_parts, needs_image

    out = stage_dir(config)
    model, processor, head, s1 = load_vlm_parts(stage1, merge=False)
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    task, train_memes, val_memes, skipped = stage2_memes(model, config, stage1, s1)
    blank = needs_image(model)
    items, bad = prepare_vlm_memes(train_memes, processor, task, config, False, blank)
    val_items, _ = prepare_vlm_memes(val_memes, processor, task, config, False, blank)
    skipped += bad
    _write_report(out, skipped, len(items))
    log(f"stage 2: {len(items)} training memes, {len(val_items)} val memes; the VLM frozen")
    key, pool = s1.get("adapter_digest", "s1"), s1.get("h_pool", "last")

    def compute(chosen: list[dict]) -> np.ndarray:
        return vlm_h(model, processor, chosen, pool)

    t0 = time.perf_counter()
    h = cached_h(out, None, items, 0, key, log, pool=pool, compute=compute)
    h_val = cached_h(out, None, val_items, 0, key, log, pool=pool, compute=compute) if val_items \
        else np.zeros((0, h.shape[1]), np.float32)
    log(f"h ready in {time.perf_counter() - t0:.0f} s")
    head, g, meta = fit_stage2_head(config, out, head, h, h_val, items, val_items, s1, log)
    labels = list(s1["labels"])
    model.to("cpu")
    return save_with_index(out / "model", as_parts(model), processor, head, meta, g,
                           index_meta(items, labels, config.domain), config.index_kind)
