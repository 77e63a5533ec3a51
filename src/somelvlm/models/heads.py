"""The compact multi-task network: one shared encoder pass, one small head per task.

Classification heads output one logit per label; regression heads one number; ``stance`` has one
three-way head per target topic (TweetEval's five) on the same embedding, so a single encoder
pass serves every task.
"""

from __future__ import annotations

import torch
from torch import nn

from somelvlm.models.encoder import mean_pool
from somelvlm.taxonomy.heads import STANCE_TARGETS, HeadSpec  # noqa: F401 - re-exported


class MultiTaskNet(nn.Module):
    """Encoder + heads. ``forward`` returns the pooled embedding (batch, dim) and, per task asked
    for, the head's output: logits (batch, labels) or (batch, groups, labels), numbers (batch,)."""

    def __init__(self, encoder: nn.Module, specs: list[HeadSpec], dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = encoder
        self.specs = {s.task: s for s in specs}
        dim = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.heads = nn.ModuleDict({s.task: nn.Linear(dim, s.width) for s in specs})

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(hidden, attention_mask)  # (batch, dim)

    def head(self, task: str, emb: torch.Tensor) -> torch.Tensor:
        spec = self.specs[task]
        out = self.heads[task](self.dropout(emb))  # (batch, width)
        if spec.kind == "regression":
            return out.squeeze(-1)  # (batch,)
        if spec.groups:
            return out.view(-1, len(spec.groups), len(spec.labels))  # (batch, groups, labels)
        return out

    def forward(self, input_ids, attention_mask, tasks: list[str]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        emb = self.embed(input_ids, attention_mask)
        return emb, {t: self.head(t, emb) for t in tasks}
