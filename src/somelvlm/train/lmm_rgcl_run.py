"""``somelvlm train lmm-rgcl --stage 1|2``: one stage of LMM-RGCL to the end, on our compose LVLM
(``train.lmm_rgcl``) or on a Hugging Face VLM (``train.lmm_rgcl_vlm``), chosen by the model it starts from."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from somelvlm.train.lmm_rgcl import LMMRGCLConfig, stage1_folder, stage_dir, train_stage1, train_stage2


def train(config: LMMRGCLConfig, log: Callable[[str], None] = print) -> Path:
    """Run one stage to the end (stage 1 resumes from its newest checkpoint); returns the model folder."""
    import torch

    from somelvlm.models.lmm_rgcl import init_kind
    from somelvlm.train.instruct_vlm import is_hf_vlm
    from somelvlm.train.lmm_rgcl_vlm import train_stage1_vlm, train_stage2_vlm

    torch.set_num_threads(config.num_threads)
    torch.manual_seed(config.seed)
    out = stage_dir(config)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(asdict(config), indent=1) + "\n", encoding="utf-8")
    if config.stage == 1:
        return (train_stage1_vlm if is_hf_vlm(config.init) else train_stage1)(config, log)
    stage1 = stage1_folder(config)
    if init_kind(stage1) == "hf_vlm":
        return train_stage2_vlm(config, stage1, log)
    return train_stage2(config, log)
