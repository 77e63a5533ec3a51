"""SoMeLVLM's two-step instruction tuning as one flat recipe.

Stage 1: LoRA (peft) on the language model with SoMeData's text instructions; QLoRA when CUDA is
present and ``quantize`` is ``auto`` or ``nf4`` (the same recipe, the base loaded in 4-bit NF4 by
bitsandbytes). Stage 2: the connector alone is trained on multimodal instructions (records with an
image), the language model (with its stage-1 adapter) frozen.

    somelvlm train instruct --stage 1 --config configs/some-lvlm-stage1.yaml
    somelvlm train instruct --stage 2 --config configs/some-lvlm-stage2.yaml

Checkpoints (trainable weights as safetensors, optimizer, step) every ``checkpoint_every`` steps
under ``OUT/checkpoints``; a rerun resumes from the newest. Loss per step goes to
``OUT/train_log.jsonl``; the finished model to ``OUT/model``.

On several processes (``torchrun --nproc_per_node N -m somelvlm.cli train instruct ...`` or
``accelerate launch``) the model trains under DDP, or sharded with FSDP2 (``SOMELVLM_SHARDING=fsdp``,
``configs/accelerate/fsdp-lora-7b.yaml`` or ``sharding: fsdp``): ``batch_size`` per process, each rank
its slice of every global batch, rank 0 writing checkpoints and the model (``train/distributed.py``).

When ``base`` is a pretrained Hugging Face VLM (LLaVA, Qwen2-VL, InstructBLIP: a local folder or a
cached hub id whose config has a vision part), the same recipe runs on it: see ``instruct_vlm``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from somelvlm.models.connector import ConnectorConfig
from somelvlm.train.instruct_config import InstructConfig, load_records, training_record
from somelvlm.train.loop import log_setup, optimizer_and_resume, run_steps

__all__ = ["InstructConfig", "build_model", "collate", "lm_loss", "load_quantized_lm", "tokenize_record", "train"]


def tokenize_record(tokenizer, record: dict, num_image_tokens: int, config: InstructConfig) -> dict:
    """ids, labels (-100 on the prompt) and image mask of one record in the chat format."""
    from somelvlm.models.lvlm import encode_prompt

    human, answer = record["conversations"][0]["value"], record["conversations"][1]["value"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"][: config.max_answer_tokens]
    answer_ids = answer_ids + [tokenizer.eos_token_id]
    prompt = encode_prompt(tokenizer, human, num_image_tokens, "image" in record, config.max_len - len(answer_ids))
    return {"ids": prompt.ids + answer_ids, "labels": [-100] * len(prompt.ids) + answer_ids,
            "image_mask": prompt.image_mask + [False] * len(answer_ids), "truncated": prompt.truncated}


def collate(items: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded (batch, longest) ids / attention mask / labels / image mask (``lvlm.right_pad``),
    plus ``image_feats`` (batch, cells, dim) when the items carry features."""
    from somelvlm.models.lvlm import right_pad

    batch = right_pad(items, pad_id)
    if "feats" in items[0]:
        batch["image_feats"] = torch.stack([it["feats"] for it in items])       # (batch, cells, dim)
    return batch


def lm_loss(model, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Named loss terms: ``lm``, next-token cross-entropy over answer tokens only."""
    loss = model(batch["input_ids"], batch["attention_mask"], labels=batch["labels"],
                 image_mask=batch["image_mask"], image_feats=batch.get("image_feats"))
    return {"lm": loss}


def build_model(config: InstructConfig):
    """(LVLM, tokenizer, base record) for the stage: LoRA on the LM, or a new connector on a frozen LM."""
    from somelvlm.models.connector import build_connector
    from somelvlm.models.lvlm import LVLM, base_record, load_lm, load_lvlm

    if config.stage == 2:
        model, tokenizer, meta = load_lvlm(config.init, merge=False)
        for p in model.parameters():
            p.requires_grad_(False)
        dim = model.lm.get_input_embeddings().embedding_dim
        model.connector = build_connector(ConnectorConfig(lm_dim=dim, kind=config.connector, pool=config.image_pool,
                                                          num_queries=config.num_queries,
                                                          hidden=config.connector_hidden))
        return model, tokenizer, meta["base"]
    from peft import LoraConfig, get_peft_model

    quantize = config.quantize == "nf4" or (config.quantize == "auto" and torch.cuda.is_available())
    if quantize:
        lm, tokenizer = load_quantized_lm(config.base)
        base = {"name": config.base, "digest": None, "quantized": "nf4"}
    else:
        lm, tokenizer = load_lm(config.base)
        base = base_record(lm, config.base)
    layers = None
    if config.lora_layers:
        n = lm.config.num_hidden_layers
        layers = list(range(max(0, n - config.lora_layers), n))
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.lora_targets), layers_to_transform=layers, task_type="CAUSAL_LM")
    return LVLM(get_peft_model(lm, lora)), tokenizer, base


def load_quantized_lm(base: str):
    """QLoRA's base: the LM in 4-bit NF4 (double quantisation, bf16 compute), ready for k-bit training,
    on this process's GPU (``LOCAL_RANK`` under torchrun / accelerate, else GPU 0)."""
    if not torch.cuda.is_available():
        raise RuntimeError("quantize: nf4 needs a CUDA GPU; use quantize: none on CPU")
    try:
        from peft import prepare_model_for_kbit_training
        from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig
    except ImportError as e:
        raise ImportError("QLoRA needs the qlora extra: pip install 'somelvlm[qlora]'") from e
    from somelvlm.models.base_lm import resolve_base
    from somelvlm.train.distributed import local_rank

    folder = resolve_base(base)
    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                             bnb_4bit_compute_dtype=torch.bfloat16)
    lm = AutoModelForCausalLM.from_pretrained(folder, quantization_config=bnb, device_map={"": local_rank()},
                                              use_safetensors=True)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return prepare_model_for_kbit_training(lm), tokenizer


def fsdp_quantize(config: InstructConfig, log: Callable[[str], None]) -> InstructConfig:
    """Under FSDP the base is sharded unquantized: ``quantize: auto`` becomes ``none``; ``nf4`` (a 4-bit
    base, about 4 GB for 7B: it fits each GPU whole, so DDP is the engine for it) is refused."""
    from dataclasses import replace

    if config.stage == 1 and config.quantize == "nf4":
        raise ValueError("quantize: nf4 (QLoRA) is not sharded by FSDP here: a 4-bit 7B base fits one GPU, so train "
                         "it with DDP (configs/accelerate/ddp-lora-7b.yaml), or set quantize: none to shard the base")
    if config.stage == 1 and config.quantize == "auto" and torch.cuda.is_available():
        log("FSDP: the base is sharded unquantized (quantize: auto -> none)")
        return replace(config, quantize="none")
    return config


def saved_by_save_lvlm(name: str) -> bool:
    """The LVLM tensors a model folder holds: LoRA weights (trained or, in stage 2, frozen) and the connector."""
    return name.startswith("connector.") or ".lora_" in name


def train(config: InstructConfig, log: Callable[[str], None] = print) -> Path:
    """Run one stage to the end (resuming from the newest checkpoint); returns the model folder.
    Under torchrun / accelerate every rank trains its shard; rank 0 writes (``train/distributed.py``)."""
    from somelvlm.models.lvlm import image_features, save_lvlm
    from somelvlm.train.distributed import distributed_run
    from somelvlm.train.instruct_vlm import is_hf_vlm, train_vlm

    if is_hf_vlm(config.base if config.stage == 1 else config.init):
        return train_vlm(config, log)
    with distributed_run(config.sharding) as dist:
        log = dist.main_only(log)
        torch.set_num_threads(config.num_threads)
        torch.manual_seed(config.seed)
        out = Path(config.out)
        out.mkdir(parents=True, exist_ok=True)
        if dist.is_main:
            (out / "config.json").write_text(json.dumps(asdict(config), indent=1) + "\n", encoding="utf-8")
        records = load_records(config)
        if dist.fsdp:
            config = fsdp_quantize(config, log)
        model, tokenizer, base = build_model(config)
        device = dist.device
        if not dist.fsdp:  # FSDP moves the model to the device layer by layer as it shards it
            model.to(device)
        items = [tokenize_record(tokenizer, r, model.num_image_tokens, config) for r in records]
        if config.stage == 2:
            feats = image_features([Path(config.data_root) / r["image"] for r in records])
            for it, f in zip(items, feats):
                it["feats"] = f
        cut = sum(bool(it["truncated"]) for it in items)
        log(f"stage {config.stage}: {len(items)} records ({cut} prompts truncated to fit {config.max_len} tokens)")
        forward = dist.wrap(model)  # before the optimizer: under FSDP its parameters are the shards
        trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
        log_setup(log, config, trainable, dist)
        optimizer, schedule, per_epoch, total, step = optimizer_and_resume(config, out, trainable, len(items), log,
                                                                           dist=dist)
        model.train()
        if config.stage == 2:
            model.lm.eval()  # the frozen LM runs as at inference (no LoRA dropout); only the connector trains

        def batch_loss(indices: list[int]) -> torch.Tensor:
            batch = {k: v.to(device) for k, v in collate([items[i] for i in indices], tokenizer.pad_token_id).items()}
            return sum(lm_loss(forward, batch).values())

        run_steps(config, out, items, trainable, optimizer, schedule, per_epoch, total, step, batch_loss, dist)
        folder = out / "model"
        weights = dist.gather(model, saved_by_save_lvlm)  # FSDP: the adapter and connector whole on rank 0
        if dist.is_main:
            meta = {"name": config.name, "base": base, "max_prompt_tokens": config.max_prompt_tokens,
                    "training": training_record(config, records, out)}
            meta["training"]["world"] = dist.world
            if config.stage == 2:
                from somelvlm.models import read_model_config

                prev = read_model_config(config.init)
                meta["training"] = {"stage1": prev.get("training", {}).get("stage1", prev.get("training")),
                                    "stage2": meta["training"]}
            else:
                meta["training"] = {"stage1": meta["training"]}
            if weights is None:
                model.to("cpu")
            save_lvlm(folder, model, tokenizer, meta, weights)
        dist.barrier()  # the model folder is written before any rank returns it
        return folder
