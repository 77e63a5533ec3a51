"""Vision-language connectors: frozen image-encoder features -> a short run of LM input embeddings.

Two connectors, looked up by name in ``CONNECTORS``:

* ``mlp`` (LLaVA-1.5 style): average-pool the encoder's grid to ``pool x pool`` cells, then a
  two-layer MLP (Linear, GELU, Linear) maps each cell to the LM's hidden size.
* ``qformer`` (as in SoMeLVLM / InstructBLIP, much smaller): ``num_queries`` learned queries
  cross-attend to the grid through a few transformer decoder layers, then a Linear maps each query
  to the LM's hidden size.

>>> import torch
>>> c = MLPProjector(ConnectorConfig(vision_dim=1280, lm_dim=576, grid=7, pool=2))
>>> c(torch.zeros(3, 49, 1280)).shape
torch.Size([3, 4, 576])
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from somelvlm.registry import Registry


@dataclass
class ConnectorConfig:
    """Shape of a connector; saved in the model's ``config.json`` under ``connector``."""

    vision_dim: int = 1280
    """Width of one image-encoder feature (EfficientNet-Lite0: 1280)."""
    lm_dim: int = 576
    """Hidden size of the language model (SmolLM2-135M: 576)."""
    grid: int = 7
    """The encoder's grid is ``grid x grid`` cells (EfficientNet-Lite0: 7)."""
    kind: str = "mlp"
    """``mlp`` or ``qformer``: option ``connector``."""
    pool: int = 2
    """mlp: the grid is average-pooled to ``pool x pool`` image tokens: option ``image_pool``."""
    hidden: int = 1024
    """mlp: hidden width of the projector; qformer: width of the query transformer."""
    num_queries: int = 8
    """qformer: number of learned queries = image tokens: option ``num_queries``."""
    layers: int = 2
    """qformer: number of cross-attention decoder layers."""
    heads: int = 8
    """qformer: attention heads (must divide ``hidden``)."""

    def __post_init__(self) -> None:
        if self.kind not in CONNECTORS:
            raise ValueError(f"connector must be one of {', '.join(CONNECTORS)}, got {self.kind!r}")
        if not 1 <= self.pool <= self.grid:
            raise ValueError(f"image_pool must be between 1 and the grid size {self.grid}, got {self.pool}")
        if self.kind == "qformer" and self.hidden % self.heads:
            raise ValueError(f"connector hidden {self.hidden} must be divisible by heads {self.heads}")

    @property
    def num_tokens(self) -> int:
        """How many LM positions one image takes."""
        return self.pool * self.pool if self.kind == "mlp" else self.num_queries

    def to_dict(self) -> dict:
        return asdict(self)


class MLPProjector(nn.Module):
    """Pooled grid cells -> LM embeddings through a two-layer MLP."""

    def __init__(self, config: ConnectorConfig) -> None:
        super().__init__()
        self.config = config
        self.norm = nn.LayerNorm(config.vision_dim)
        self.proj = nn.Sequential(nn.Linear(config.vision_dim, config.hidden), nn.GELU(),
                                  nn.Linear(config.hidden, config.lm_dim))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """feats: (batch, grid*grid, vision_dim) row-major cells -> (batch, pool*pool, lm_dim)."""
        b, n, d = feats.shape
        g = self.config.grid
        if n != g * g:
            raise ValueError(f"connector expects {g * g} grid cells, got {n}")
        grid = feats.transpose(1, 2).reshape(b, d, g, g)                        # (batch, dim, g, g)
        pooled = nn.functional.adaptive_avg_pool2d(grid, self.config.pool)     # (batch, dim, p, p)
        tokens = pooled.flatten(2).transpose(1, 2)                              # (batch, p*p, dim)
        return self.proj(self.norm(tokens))


class QFormerConnector(nn.Module):
    """Learned queries cross-attending to the grid (a small Q-Former), then a Linear to the LM."""

    def __init__(self, config: ConnectorConfig) -> None:
        super().__init__()
        self.config = config
        self.queries = nn.Parameter(torch.randn(config.num_queries, config.hidden) / math.sqrt(config.hidden))
        self.inp = nn.Sequential(nn.LayerNorm(config.vision_dim), nn.Linear(config.vision_dim, config.hidden))
        layer = nn.TransformerDecoderLayer(config.hidden, config.heads, dim_feedforward=2 * config.hidden,
                                           dropout=0.0, batch_first=True, norm_first=True)
        self.decoder = nn.TransformerDecoder(layer, config.layers)
        self.out = nn.Linear(config.hidden, config.lm_dim)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """feats: (batch, cells, vision_dim) -> (batch, num_queries, lm_dim)."""
        memory = self.inp(feats)                                                # (batch, cells, hidden)
        q = self.queries.unsqueeze(0).expand(feats.shape[0], -1, -1)           # (batch, queries, hidden)
        return self.out(self.decoder(q, memory))


CONNECTORS = Registry("connector", {
    "mlp": "somelvlm.models.connector:MLPProjector",
    "qformer": "somelvlm.models.connector:QFormerConnector",
})


def build_connector(config: ConnectorConfig) -> nn.Module:
    """The connector ``config.kind`` names, freshly initialised."""
    return CONNECTORS.get(config.kind)(config)
