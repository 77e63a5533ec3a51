"""The training commands: each takes its recipe's own config dataclass, so a recipe YAML
(``--config``), the flags and the Python API share one signature. Training logs go to stderr, the
results to stdout."""

from __future__ import annotations

import json
from pathlib import Path

from somelvlm.cli.common import Progress, console, err_console, require_data_root


def train_heads(cfg) -> None:  # cfg: somelvlm.train.heads.HeadsConfig
    """Train the compact model's encoder (LoRA) and task heads; resumes from OUT/checkpoint.pt."""
    from somelvlm.train.heads import train

    require_data_root(cfg.data_root)
    state = train(cfg, log=err_console.log)
    console.print(f"best validation mean {state['best']:.2f}; model in {Path(cfg.out) / 'model'}")


def train_instruct(cfg) -> None:  # cfg: somelvlm.train.instruct.InstructConfig
    """SoMeLVLM's two-step instruction tuning; resumes from OUT/checkpoints, logs OUT/train_log.jsonl."""
    from somelvlm.train.instruct import train

    folder = train(cfg, log=err_console.log)
    console.print(f"model in {folder}")


def train_multimodal(cfg) -> None:  # cfg: somelvlm.train.multimodal.MultimodalConfig
    """Train an image+text classifier on frozen features with the ITC / ITM auxiliary losses."""
    from somelvlm.train.multimodal import train

    _print_recipe_result(train(cfg, table=_feature_table(cfg), log=err_console.log))


def train_rgcl(cfg) -> None:  # cfg: somelvlm.train.rgcl.RGCLConfig
    """Retrieval-guided contrastive learning (FAISS hard negatives each epoch); also scores RKC."""
    from somelvlm.train.rgcl import train

    _print_recipe_result(train(cfg, table=_feature_table(cfg), log=err_console.log))


def train_lmm_rgcl(cfg) -> None:  # cfg: somelvlm.train.lmm_rgcl.LMMRGCLConfig
    """LMM-RGCL: stage 1 (LoRA + MLP head, LM + BCE) or stage 2 (the head with RGCL on the frozen LMM)."""
    from somelvlm.train.lmm_rgcl_run import train

    result = train(cfg, log=err_console.log)
    console.print(f"stage {cfg.stage}: model in {result}")


def _feature_table(cfg):
    """The recipe's frozen-feature table, its extraction shown as progress bars."""
    from somelvlm.train.multimodal import load_table

    require_data_root(cfg.data_root)
    with Progress() as bar:
        return load_table(cfg, progress=bar.update)


def _print_recipe_result(result: dict) -> None:
    rounded = lambda d: json.dumps({k: round(v, 2) for k, v in d.items()})
    console.print(f"best epoch {result['best_epoch']}: val {rounded(result['val'])}")
    for key in ("test", "val_rkc", "test_rkc"):
        if result.get(key):
            console.print(f"{key}: {rounded(result[key])}")
