"""The instruction recipe on a pretrained Hugging Face VLM (LLaVA, Qwen2-VL, InstructBLIP, ...).

``somelvlm train instruct`` comes here when ``base`` (stage 1) or ``init`` (stage 2) is an
image-text-to-text model. Same recipe as ours: stage 1 puts LoRA (peft) on the language model's
linear layers (QLoRA: NF4 base on CUDA) and trains on SoMeData records, text-only and (by default)
with an image, through the model's own processor and chat template; labels are -100 on the prompt.
Stage 2 tunes the model's own projector (``PROJECTORS``) on records with an image, the LM and its
stage-1 adapter frozen. Checkpoints, resume, train_log.jsonl and progress bar as in ``instruct``,
and like it on several processes under torchrun / accelerate (DDP; rank 0 writes).

The saved ``OUT/model`` holds ``config.json`` (``backend: hf_vlm``, the base's name and digest), the
peft ``adapter/`` and, after stage 2, ``projector.safetensors``: ``HFVisionGenerator(OUT/model)``
or ``load_generator(OUT/model)`` loads it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from somelvlm.models.hf_vlm import NEEDS_IMAGE, PROJECTORS
from somelvlm.models.hf_vlm_batch import collate, encode_record
from somelvlm.train.instruct_config import InstructConfig, load_records, training_record
from somelvlm.train.loop import log_setup, optimizer_and_resume, run_steps

"""Processor outputs with one entry per token: extended over the answer and padded like the ids."""


def is_hf_vlm(name: str | Path | None) -> bool:
    """True for a trained ``hf_vlm`` folder or a base whose config has a vision part (a local folder,
    or a hub id already in the local Hugging Face cache); never downloads."""
    from somelvlm.models.base_lm import GGUF_BASES
    from somelvlm.models.hf_vlm import read_trained

    if not name or str(name) in GGUF_BASES:
        return False
    path = Path(name).expanduser()
    if read_trained(path) is not None:
        return True
    if (path / "config.json").is_file():
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    else:
        try:
            from transformers import AutoConfig

            config = AutoConfig.from_pretrained(str(name), local_files_only=True).to_dict()
        except (OSError, ValueError):
            return False
    return "vision_config" in config


def load_vlm(config: InstructConfig):
    """(model with the stage's trainable weights, processor, base record, trained meta of ``init``)."""
    from transformers import AutoModelForImageTextToText

    from somelvlm.digests import base_weights_digest
    from somelvlm.models.base_lm import check_base
    from somelvlm.models.hf_vlm import add_lm_lora, lm_lora_targets, load_processor, read_trained

    if config.stage == 2:
        prev = read_trained(config.init)
        if prev is None:
            raise ValueError(f"init {config.init} is not a stage-1 model trained on a Hugging Face VLM "
                             f"(its config.json must say backend: hf_vlm)")
        source = prev["base"]["name"]
    else:
        prev, source = None, str(config.base)
    quantize = config.stage == 1 and (config.quantize == "nf4" or
                                      (config.quantize == "auto" and torch.cuda.is_available()))
    try:
        processor = load_processor(source)
        if quantize:
            model = load_quantized_vlm(source)
        else:
            model = AutoModelForImageTextToText.from_pretrained(source, dtype=torch.float32, use_safetensors=True)
    except OSError as e:
        raise FileNotFoundError(f"cannot load the VLM {source!r} (a local folder, or a hub id already in the "
                                f"Hugging Face cache; nothing is downloaded here): {e}") from e
    for p in model.parameters():
        p.requires_grad_(False)
    if config.stage == 1:
        base = {"name": source, "digest": None, "quantized": "nf4"} if quantize else \
            {"name": source, "digest": base_weights_digest(model), "dtype": "float32"}
        layers = None
        if config.lora_layers:
            n = model.config.get_text_config().num_hidden_layers
            layers = list(range(max(0, n - config.lora_layers), n))
        model = add_lm_lora(model, r=config.lora_r, alpha=config.lora_alpha, dropout=config.lora_dropout,
                            targets=lm_lora_targets(list(config.lora_targets)), layers=layers)
        return model, processor, base, None
    from peft import PeftModel

    check_base(prev["base"], model, config.init)
    model = PeftModel.from_pretrained(model, Path(config.init) / prev["adapter"])  # frozen (not trainable)
    if prev.get("projector"):
        from somelvlm.models.hf_vlm import apply_trained

        apply_trained(model.base_model.model, Path(config.init), {**prev, "adapter": None, "base": {}})
    pieces = PROJECTORS.get(model.config.model_type)
    if pieces is None:
        raise ValueError(f"stage 2 does not know the projector of model type {model.config.model_type!r} "
                         f"(known: {', '.join(PROJECTORS)}); add its parameter names to PROJECTORS in hf_vlm.py")
    for n, p in model.named_parameters():
        if any(f".{piece}." in f".{n}." or n.endswith(f".{piece}") for piece in pieces):
            p.requires_grad_(True)
    return model, processor, prev["base"], prev


def load_quantized_vlm(source: str):
    """QLoRA's base: the VLM in 4-bit NF4 (double quantisation, bf16 compute), its projector and
    LM head kept in full precision, ready for k-bit training, on this process's GPU (``LOCAL_RANK``
    under torchrun / accelerate, else GPU 0)."""
    if not torch.cuda.is_available():
        raise RuntimeError("quantize: nf4 needs a CUDA GPU; use quantize: none on CPU")
    try:
        from peft import prepare_model_for_kbit_training
        from transformers import AutoConfig, AutoModelForImageTextToText, BitsAndBytesConfig
    except ImportError as e:
        raise ImportError("QLoRA needs the qlora extra: pip install 'somelvlm[qlora]'") from e
    from somelvlm.train.distributed import local_rank

    model_type = AutoConfig.from_pretrained(source).model_type
    keep = [p.split(".")[-1] for p in PROJECTORS.get(model_type, ())] + ["lm_head"]
    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                             bnb_4bit_compute_dtype=torch.bfloat16, llm_int8_skip_modules=keep)
    model = AutoModelForImageTextToText.from_pretrained(source, quantization_config=bnb, device_map={"": local_rank()},
                                                        use_safetensors=True)
    return prepare_model_for_kbit_training(model)


def train_vlm(config: InstructConfig, log: Callable[[str], None] = print) -> Path:
    """Run one stage on a Hugging Face VLM to the end (resuming from the newest checkpoint); returns
    the model folder. Under torchrun / accelerate every rank trains its shard; rank 0 writes."""
    from somelvlm.train.distributed import distributed_run

    with distributed_run(config.sharding, supported=("ddp",)) as dist:  # FSDP: our LVLM only, for now
        folder = _train_vlm(config, dist.main_only(log), dist)
        dist.barrier()  # the model folder is written before any rank returns it
        return folder


def _train_vlm(config: InstructConfig, log: Callable[[str], None], dist) -> Path:
    """``train_vlm``'s body on one rank of ``dist``."""
    from dataclasses import asdict

    from PIL import Image

    from somelvlm.posts import PostError, load_image

    torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    if dist.is_main:
        (out / "config.json").write_text(json.dumps(asdict(config), indent=1) + "\n", encoding="utf-8")
    records = load_records(config, both=config.stage == 1 and config.stage1_images)
    model, processor, base, prev = load_vlm(config)
    tokenizer = getattr(processor, "tokenizer", processor)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    device = dist.device
    quantized = config.stage == 1 and bool(base.get("quantized"))  # stage 2 loads the base unquantized
    if not quantized:  # a 4-bit base is already placed on the GPU by from_pretrained
        model.to(device)
    blank = Image.new("RGB", (224, 224), (127, 127, 127)) if any(
        m in model.config.model_type for m in NEEDS_IMAGE) else None

    def image_of(r: dict):
        return load_image(Path(config.data_root) / r["image"]) if "image" in r else blank

    items, kept, bad = [], [], []
    for r in records:
        try:
            it = encode_record(processor, r, image_of(r), config)
        except PostError as e:
            bad.append(f"{r['id']}: {e}")
            continue
        it["record"] = r
        items.append(it)
        kept.append(r)
    if bad:
        log(f"{len(bad)} records skipped for a bad image (first: {bad[0]})")
    if not items:
        raise ValueError(f"no usable records in {config.data}")
    cut = sum(bool(it["truncated"]) for it in items)
    with_image = sum("image" in it["record"] for it in items)
    log(f"stage {config.stage} on {model.config.model_type}: {len(items)} records, {with_image} with an image "
        f"({cut} prompts truncated to fit {config.max_len} tokens)")
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    log_setup(log, config, trainable, dist)
    optimizer, schedule, per_epoch, total, step = optimizer_and_resume(config, out, trainable, len(items), log,
                                                                       world=dist.world)
    if config.stage == 2:  # the frozen LM and adapter run as at inference; only the projector trains
        model.eval()
        for name, module in model.named_modules():
            if any(name.endswith(piece) for piece in PROJECTORS[model.config.model_type]):
                module.train()
    else:
        model.train()
    image_processor = getattr(processor, "image_processor", None)
    forward = dist.wrap(model)

    def pixels_of(it: dict) -> dict | None:
        image = image_of(it["record"])
        if image is None:
            return None
        enc = image_processor(images=[image], return_tensors="pt")
        return {k: enc[k] for k in it["image_keys"]}

    def batch_loss(indices: list[int]) -> torch.Tensor:
        chosen = [items[i] for i in indices]
        pixels = [p for p in map(pixels_of, chosen) if p is not None]
        batch = {k: v.to(device) for k, v in collate(chosen, pixels, tokenizer.pad_token_id).items()}
        return forward(**batch).loss                                 # next-token CE on the answers

    run_steps(config, out, items, trainable, optimizer, schedule, per_epoch, total, step, batch_loss, dist)
    folder = out / "model"
    if not dist.is_main:
        return folder
    record = training_record(config, kept, out)
    record["world"] = dist.world
    training = {"stage1": record} if config.stage == 1 else \
        {"stage1": prev.get("training", {}).get("stage1"), "stage2": record}
    meta = {"backend": "hf_vlm", "name": config.name, "base": base, "adapter": "adapter",
            "projector": "projector.safetensors" if config.stage == 2 else None,
            "max_prompt_tokens": config.max_prompt_tokens, "training": training}
    if not quantized:
        model.to("cpu")
    return save_vlm(folder, model, meta, trainable if config.stage == 2 else None)


def save_vlm(folder: Path, model, meta: dict, projector: dict | None = None) -> Path:
    """Write ``config.json``, the peft adapter (safetensors) and the tuned projector (by the base
    model's own parameter names) into ``folder``, atomically."""
    from safetensors.torch import save_file

    from somelvlm.atomic import atomic_dir

    folder = Path(folder)
    with atomic_dir(folder) as tmp:
        model.save_pretrained(tmp / "adapter", safe_serialization=True)
        if projector is not None:
            save_file({n.removeprefix("base_model.model."): p.detach().float().contiguous()
                       for n, p in projector.items()}, str(tmp / "projector.safetensors"))
        (tmp / "config.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    return folder
