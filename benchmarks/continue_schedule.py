"""Finish SoMe-mini's training schedule from its shipped epoch: write a resume checkpoint, then train.

some-mini was shipped after epoch 1 of its configured 2 (the run was stopped for time and its run
folder, with the optimizer state, is gone). This script rebuilds the recipe's state at the start of
epoch 2 from the epoch-1 model folder (git: ``0414a2c:src/somelvlm/assets/some-mini``, before any
head was refit): the LoRA and the 27 trained heads as the weights, a fresh AdamW (its moments are
lost; they rebuild within a few hundred steps), and the learning-rate schedule advanced to the first
step of epoch 2. It writes ``RUN/checkpoint.pt`` in the recipe's own format, so the ordinary command
resumes it and runs epoch 2 exactly as the recipe would (same batches, same schedule, same val):

    git show 0414a2c:src/somelvlm/assets/some-mini/model.safetensors > EPOCH1/model.safetensors  # + config.json
    python benchmarks/continue_schedule.py EPOCH1 --out RUN
    somelvlm train heads --config configs/some-mini.yaml --out RUN   # resumes at epoch 2

``RUN/model`` is then epoch 2 (saved whatever its val, since the run starts without a best);
``RUN/history.json`` has its validation metrics, to compare with epoch 1's in ``EPOCH1/config.json``.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("epoch_folder", type=Path, help="the compact model folder saved after the epoch")
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "some-mini.yaml")
    parser.add_argument("--out", type=Path, required=True, help="the run folder to resume in")
    parser.add_argument("--data-root", default=None)
    args = parser.parse_args(argv)

    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    from somelvlm.data.head_items import cap, load_items
    from somelvlm.data.report import DataReport
    from somelvlm.models.encoder import load_encoder
    from somelvlm.models.heads import MultiTaskNet
    from somelvlm.taxonomy.heads import head_spec
    from somelvlm.train.heads import HeadsConfig
    from somelvlm.train.loop import save_file_checkpoint, warmup_linear

    overrides = {"out": str(args.out)} | ({"data_root": args.data_root} if args.data_root else {})
    config = HeadsConfig.from_yaml(args.config, **overrides)
    saved = json.loads((args.epoch_folder / "config.json").read_text(encoding="utf-8"))
    done = int(saved["trained"]["epoch"])
    if saved["trained"]["config"]["tasks"] != list(config.tasks):
        raise ValueError("the epoch folder was trained on other tasks than the config names")
    if done >= config.epochs:
        raise ValueError(f"the folder is epoch {done} of {config.epochs}: nothing left to train")

    # the recipe's own steps per epoch (the same sampling code as train/heads.py)
    import random

    data = load_items(Path(config.data_root), config.tasks, DataReport())
    specs = [head_spec(t) for t in config.tasks]
    rng = random.Random(config.seed * 1000)
    steps_per_epoch = 0
    for spec in specs:
        limit = config.max_per_task_overrides.get(spec.task, config.max_per_task)
        n = len(cap(data[spec.task]["train"], limit, seed=rng.randrange(1 << 30)))
        steps_per_epoch += math.ceil(n / config.batch_size)
    total = steps_per_epoch * config.epochs

    _, base = load_encoder(config.encoder)
    encoder = get_peft_model(base, LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha,
                                              lora_dropout=config.lora_dropout,
                                              target_modules=list(config.lora_targets)))
    tensors = load_file(str(args.epoch_folder / "model.safetensors"))
    set_peft_model_state_dict(encoder, {k[5:]: v.float() for k, v in tensors.items() if k.startswith("lora.")})
    net = MultiTaskNet(encoder, specs, dropout=config.head_dropout)
    for task, head in net.heads.items():
        head.weight.data = tensors[f"head.{task}.weight"].float()
        head.bias.data = tensors[f"head.{task}.bias"].float()

    params = [
        {"params": [p for p in net.encoder.parameters() if p.requires_grad], "lr": config.lr_encoder},
        {"params": list(net.heads.parameters()), "lr": config.lr_heads},
    ]
    opt = torch.optim.AdamW(params, weight_decay=config.weight_decay)
    sched = warmup_linear(opt, max(1, int(config.warmup * total)), total, decay="after_warmup")
    for _ in range(done * steps_per_epoch):  # the schedule's position at the start of the next epoch
        opt.step()  # no gradients yet: a no-op that keeps torch's "optimizer before scheduler" order
        sched.step()
    trainable = {k: v for k, v in net.state_dict().items() if "lora_" in k or k.startswith("heads.")}
    state = {"epoch": done, "step": 0, "best": -math.inf, "history": [],
             "continued_from": {"folder": str(args.epoch_folder), "epoch": done,
                                "val_mean": float(np.nanmean([m["primary"] for m in saved["trained"]["val"].values()]))}}
    args.out.mkdir(parents=True, exist_ok=True)
    save_file_checkpoint(args.out / "checkpoint.pt", trainable, opt, sched, state)
    lr = [g["lr"] for g in opt.param_groups]
    print(f"wrote {args.out / 'checkpoint.pt'}: epoch {done} done, {steps_per_epoch} steps/epoch, "
          f"lr now {lr[0]:.2e} (encoder) / {lr[1]:.2e} (heads); resume with "
          f"`somelvlm train heads --config {args.config} --out {args.out}`")
    return args.out / "checkpoint.pt"


if __name__ == "__main__":
    main()
