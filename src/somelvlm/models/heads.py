"""The compact multi-task network: one shared encoder pass, one small head per task.

Classification heads output one logit per label; regression heads one number; ``stance`` has one
three-way head per target topic (TweetEval's five) on the same embedding, so a single encoder
pass serves every task.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from somelvlm.data.head_items import STANCE_TARGETS, groups_of, head_task
from somelvlm.models.encoder import mean_pool

__all__ = ["STANCE_TARGETS", "HeadSpec", "MultiTaskNet", "head_spec"]


@dataclass(frozen=True)
class HeadSpec:
    """What one head predicts: its task, kind and outputs (label ids, or one number)."""

    task: str
    kind: str
    """``classification`` or ``regression``."""
    labels: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    """For per-target heads (stance): the targets; outputs are ``len(groups) * len(labels)``."""

    @property
    def width(self) -> int:
        if self.kind == "regression":
            return 1
        return len(self.labels) * max(1, len(self.groups))


def head_spec(task_name: str) -> HeadSpec:
    """The head a task gets (its kind, labels and per-target groups); a ValueError for a task no
    head can predict (generation, ...), naming it."""
    task = head_task(task_name)
    return HeadSpec(task_name, task.kind, tuple(task.labels), groups_of(task_name))


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
