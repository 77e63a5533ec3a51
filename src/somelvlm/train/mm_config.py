"""Options shared by the recipes that train on frozen image + text features (multimodal, rgcl)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class FrozenFeaturesConfig:
    """Data, model shape and optimiser options common to ``train multimodal`` and ``train rgcl``."""

    dataset: str = "cm_memes"
    """cm_memes (offensive_meme), memotion (meme_sentiment) or mediaeval2016 (verify_post)."""
    data_root: str = "../shared/data"
    """Folder holding the upstream sources."""
    text_encoder: str = "minilm"
    """Frozen text features: minilm (English) or e5 (multilingual e5-small)."""
    ocr: bool = True
    """Read text off the image for posts without text."""
    max_train: int | None = None
    """Cap on training posts (a fixed sample; val / test are never cut): mediaeval has 13k."""
    fusion: str = "concat"
    """concat, product, cross_attention, or the single-modality baselines text / image."""
    proj_dim: int = 256
    hidden: int = 256
    dropout: float = 0.2
    epochs: int = 40
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 2.5e-4
    class_weight_power: float = 1.0
    """Class weights (n / (k n_c)) ** power: 1 balanced, 0 plain CE."""
    seed: int = 0
    threads: int = 1
    """torch threads (1 is fastest on a shared CPU for these small models)."""
    out: str | None = None
    """Folder to save the best model (config.json + model.safetensors); None: do not save."""

    def __post_init__(self) -> None:
        from somelvlm.models.multimodal import FUSIONS
        from somelvlm.features.mm_table import MM_DATASETS

        if self.dataset not in MM_DATASETS:
            raise ValueError(f"`dataset` must be one of {sorted(MM_DATASETS)}, got {self.dataset!r}")
        if self.fusion not in FUSIONS:
            raise ValueError(f"`fusion` must be one of {FUSIONS}, got {self.fusion!r}")
        if self.text_encoder not in ("minilm", "e5"):
            raise ValueError(f"`text_encoder` must be minilm or e5, got {self.text_encoder!r}")
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError("`epochs` must be >= 1 and `batch_size` >= 2")

    @classmethod
    def from_yaml(cls, path: Path | str, **overrides):
        from somelvlm.train.config import config_from_yaml

        return config_from_yaml(cls, path, **overrides)
