"""A multimodal classifier over frozen image and text features, and its save / load format.

    image (batch, 1280) --Linear+dropout--> L2 --\
                                                  fusion --> MLP --> g (batch, hidden) --> head (batch, classes)
    text  (batch, 384)  --Linear+dropout--> L2 --/

Fusions (``FUSIONS``, selected by name): ``concat`` ([i; t]), ``product`` (i * t * sqrt(proj_dim),
as RGCL; the scale puts its entries on the scale of concat's, else it learns ~10x slower),
``cross_attention`` (the text attends over image tokens: the 7x7 EfficientNet grid when given,
else the pooled vector; [t; attended; i]), and the single-modality baselines ``text`` / ``image``.
``g``, the embedding before the last layer, is what the RGCL recipe indexes in FAISS. An ITM head
(``match``) scores whether an image and a text belong together (auxiliary loss only).

The saved form is a folder: ``config.json`` (``MMConfig`` + labels + the feature extractors the
model was trained on) and ``model.safetensors``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

FUSIONS = ("concat", "product", "cross_attention", "text", "image")
ITC_INIT_LOGIT_SCALE = 2.6592
"""ln(1 / 0.07): CLIP's initial (log) inverse temperature, the start of ``logit_scale``."""


@dataclass
class MMConfig:
    """Shape of a ``MultimodalClassifier``."""

    num_classes: int
    """Output classes (the task's labels, in order)."""
    image_dim: int = 1280
    """Input image feature size (EfficientNet-Lite0 pooled / grid token)."""
    text_dim: int = 384
    """Input text feature size (MiniLM / multilingual e5)."""
    proj_dim: int = 256
    """Size of each modality's projection (and of the ITC space)."""
    hidden: int = 256
    """Size of g, the fused embedding before the classification layer."""
    fusion: str = "concat"
    """One of FUSIONS."""
    dropout: float = 0.2
    """Dropout after each projection and inside the MLP."""
    heads: int = 4
    """Attention heads of the cross_attention fusion (must divide proj_dim)."""

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ValueError(f"fusion must be one of {FUSIONS}, got {self.fusion!r}")
        if self.num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {self.num_classes}")
        if self.fusion == "cross_attention" and self.proj_dim % self.heads:
            raise ValueError(f"heads ({self.heads}) must divide proj_dim ({self.proj_dim})")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def build_classifier(config: MMConfig):
    """A new ``MultimodalClassifier`` (torch imported here, not at module import)."""
    import torch
    from torch import nn
    import torch.nn.functional as F

    class MultimodalClassifier(nn.Module):
        """Projections + fusion + MLP + head, with an ITM head and an ITC logit scale."""

        def __init__(self, cfg: MMConfig) -> None:
            super().__init__()
            self.config = cfg
            p = cfg.proj_dim
            self.image_proj = nn.Sequential(nn.Linear(cfg.image_dim, p), nn.Dropout(cfg.dropout))
            self.text_proj = nn.Sequential(nn.Linear(cfg.text_dim, p), nn.Dropout(cfg.dropout))
            fused = {"concat": 2 * p, "product": p, "cross_attention": 3 * p, "text": p, "image": p}[cfg.fusion]
            if cfg.fusion == "cross_attention":
                self.attn = nn.MultiheadAttention(p, cfg.heads, dropout=cfg.dropout, batch_first=True)
            self.mlp = nn.Sequential(nn.Linear(fused, cfg.hidden), nn.ReLU(), nn.Dropout(cfg.dropout))
            self.head = nn.Linear(cfg.hidden, cfg.num_classes)
            self.match = nn.Linear(cfg.hidden, 2)
            self.logit_scale = nn.Parameter(torch.tensor(ITC_INIT_LOGIT_SCALE))

        def project(self, image, text, image_tokens=None):
            """L2-normalised projections: image (batch, p), text (batch, p), tokens (batch, t, p)|None."""
            i = F.normalize(self.image_proj(image), dim=-1)
            t = F.normalize(self.text_proj(text), dim=-1)
            tok = F.normalize(self.image_proj(image_tokens), dim=-1) if image_tokens is not None else None
            return i, t, tok

        def fuse(self, i, t, tok=None):
            """g (batch, hidden) from projected image i and text t (and image tokens for attention)."""
            f = self.config.fusion
            if f == "concat":
                x = torch.cat([i, t], -1)
            elif f == "product":
                x = i * t * self.config.proj_dim ** 0.5  # unit vectors: entries ~1/p, scaled to ~1/sqrt(p) as concat's
            elif f == "text":
                x = t
            elif f == "image":
                x = i
            else:  # cross_attention: the text queries the image tokens
                keys = tok if tok is not None else i[:, None, :]  # (batch, tokens, p)
                attended, _ = self.attn(t[:, None, :], keys, keys, need_weights=False)  # (batch, 1, p)
                x = torch.cat([t, attended[:, 0], i], -1)
            return self.mlp(x)

        def forward(self, image, text, image_tokens=None) -> dict[str, Any]:
            """``{"logits": (batch, classes), "g": (batch, hidden), "image": .., "text": .., "tokens": ..}``."""
            i, t, tok = self.project(image, text, image_tokens)
            g = self.fuse(i, t, tok)
            return {"logits": self.head(g), "g": g, "image": i, "text": t, "tokens": tok}

    return MultimodalClassifier(config)


def save_classifier(model, folder: Path, labels: list[str], extra: dict | None = None, half: bool = False) -> Path:
    """Write ``config.json`` + ``model.safetensors`` into ``folder`` (atomically, file by file).

    ``half``: store float16 weights (half the size; loading casts back to float32)."""
    from safetensors.torch import save_file

    from somelvlm.atomic import atomic_path, atomic_write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"backend": "image_text", "config": asdict(model.config), "labels": list(labels), **(extra or {})}
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file(state, str(tmp))
    atomic_write_text(folder / "config.json", json.dumps(meta, indent=2))
    return folder


def load_classifier(folder: Path | str) -> tuple[Any, dict]:
    """``(model in eval mode, its config.json as a dict)`` from a folder ``save_classifier`` wrote."""
    from safetensors.torch import load_file

    from somelvlm.models import read_model_config

    folder = Path(folder)
    if not (folder / "config.json").is_file() or not (folder / "model.safetensors").is_file():
        raise FileNotFoundError(f"{folder} is not a multimodal head folder (needs config.json and model.safetensors)")
    meta = read_model_config(folder)
    known = {f.name for f in fields(MMConfig)}
    model = build_classifier(MMConfig(**{k: v for k, v in meta["config"].items() if k in known}))
    model.load_state_dict(load_file(folder / "model.safetensors"), strict=True)
    return model.eval(), meta


__all__ = ["FUSIONS", "ITC_INIT_LOGIT_SCALE", "MMConfig", "build_classifier", "load_classifier", "save_classifier"]
