"""Training losses of the multimodal recipes, each returning its named terms.

- ``weighted_ce``: class-weighted cross-entropy (``CE_w``).
- ``itc_loss``: Image-Text Contrastive, CLIP's symmetric InfoNCE over the batch (Sanchez Villegas
  et al., arXiv 2309.07794; Radford et al. 2021).
- ``itm_loss``: Image-Text Matching, cross-entropy of a match / mismatch head (same paper).
- ``aux_loss``: ``(1 - b_itc - b_itm) * CE_w + b_itc * ITC + b_itm * ITM``.
- ``rgcl_loss``: Retrieval-Guided Contrastive Learning (Mei et al., ACL 2024), contrastive form
  (``-log(e^{s+} / (e^{s+} + mean_hn e^{s_hn} + sum_{in-batch j, y_j != y} e^{s_j}))``) or triplet
  form (``max(0, margin - s+ + s_hn)``), and the hybrid ``(1 - w) * RGCL + w * CE``.

Every function returns a dict of scalar tensors; ``"loss"`` is the one to back-propagate, the
others are its parts, for logging.

>>> import torch
>>> terms = itc_loss(torch.randn(4, 8), torch.randn(4, 8), torch.tensor(2.6592))
>>> sorted(terms)
['i2t', 'itc', 'loss', 't2i']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from somelvlm.models.multimodal import ITC_INIT_LOGIT_SCALE  # noqa: F401 - the model's init, re-exported here

if TYPE_CHECKING:
    from torch import Tensor


def class_weights(y, num_classes: int, power: float = 1.0):
    """Inverse-frequency class weights ``(n / (k * count_c)) ** power`` as a float32 tensor (k,).

    ``power`` 1 balances the classes fully, 0 gives plain CE; a class absent from ``y`` gets 1.
    """
    import torch

    y = torch.as_tensor(y).long()
    counts = torch.bincount(y, minlength=num_classes).float()
    w = torch.where(counts > 0, y.numel() / (num_classes * counts.clamp(min=1)), torch.ones_like(counts))
    return w.pow(power)


def weighted_ce(logits: Tensor, y: Tensor, weight: Tensor | None = None) -> dict[str, Tensor]:
    """Class-weighted cross-entropy: ``sum_i w_{y_i} * -log p_i(y_i) / sum_i w_{y_i}``.

    logits: (batch, classes); y: (batch,) int; weight: (classes,) or None (plain mean CE).
    """
    import torch.nn.functional as F

    ce = F.cross_entropy(logits, y, weight=weight)
    return {"loss": ce, "ce": ce}


def itc_loss(image: Tensor, text: Tensor, logit_scale: Tensor) -> dict[str, Tensor]:
    """Symmetric InfoNCE between the batch's images and texts (the i-th image matches the i-th text).

    image, text: (batch, dim) embeddings (L2-normalised here); logit_scale: a scalar tensor, the
    log of the inverse temperature (learnable, initialised to ``ITC_INIT_LOGIT_SCALE``).
    ``itc = (CE(S, arange) + CE(S^T, arange)) / 2`` with ``S = exp(logit_scale) * img @ txt^T``.
    """
    import torch
    import torch.nn.functional as F

    image = F.normalize(image, dim=-1)
    text = F.normalize(text, dim=-1)
    logits = logit_scale.exp() * image @ text.t()  # (batch, batch): image i vs text j
    target = torch.arange(image.shape[0], device=image.device)
    i2t = F.cross_entropy(logits, target)
    t2i = F.cross_entropy(logits.t(), target)
    itc = (i2t + t2i) / 2
    return {"loss": itc, "itc": itc, "i2t": i2t, "t2i": t2i}


def itm_shuffle(batch: int, p: float = 0.5, generator=None, device=None) -> tuple[Tensor, Tensor]:
    """Which text each image is paired with for ITM: ``(text_index (batch,), is_match (batch,))``.

    Each item keeps its own text with probability ``1 - p``; otherwise it takes another in-batch
    text (never its own, so a "mismatch" label is always true). A batch of one stays matched.
    """
    import torch

    index = torch.arange(batch, device=device)
    if batch < 2:
        return index, torch.ones(batch, dtype=torch.long, device=device)
    swap = torch.rand(batch, generator=generator, device=device) < p
    offset = torch.randint(1, batch, (batch,), generator=generator, device=device)  # 1..batch-1
    index = torch.where(swap, (index + offset) % batch, index)
    return index, (~swap).long()


def itm_loss(match_logits: Tensor, is_match: Tensor) -> dict[str, Tensor]:
    """Image-Text Matching: cross-entropy of the match head.

    match_logits: (batch, 2), column 1 = "matched"; is_match: (batch,) 1 for a true pair, 0 for a
    swapped one. Also reports the head's accuracy (``itm_acc``, detached).
    """
    import torch.nn.functional as F

    itm = F.cross_entropy(match_logits, is_match)
    acc = (match_logits.argmax(-1) == is_match).float().mean().detach()
    return {"loss": itm, "itm": itm, "itm_acc": acc}


def aux_loss(ce: Tensor, itc: Tensor | None = None, itm: Tensor | None = None, b_itc: float = 0.1,
             b_itm: float = 0.1) -> dict[str, Tensor]:
    """``(1 - b_itc - b_itm) * CE_w + b_itc * ITC + b_itm * ITM``; a missing term counts 0 and its
    weight moves nowhere (pass b=0 to switch a term off and give its weight back to CE)."""
    if b_itc < 0 or b_itm < 0 or b_itc + b_itm >= 1:
        raise ValueError(f"b_itc ({b_itc}) and b_itm ({b_itm}) must be >= 0 with b_itc + b_itm < 1")
    loss = (1 - b_itc - b_itm) * ce
    terms = {"ce": ce}
    if itc is not None and b_itc > 0:
        loss = loss + b_itc * itc
        terms["itc"] = itc
    if itm is not None and b_itm > 0:
        loss = loss + b_itm * itm
        terms["itm"] = itm
    return {"loss": loss, **terms}


def rgcl_loss(g: Tensor, y: Tensor, pos: Tensor, hard_neg: Tensor, hard_neg_mask: Tensor | None = None,
              pos_mask: Tensor | None = None, form: str = "contrastive", margin: float = 0.5,
              temperature: float = 1.0) -> dict[str, Tensor]:
    """Retrieval-guided contrastive loss over a batch.

    g: (batch, dim) embeddings; y: (batch,) labels; pos: (batch, dim) pseudo-gold positive of each
    item (retrieved, same label, not itself); hard_neg: (batch, m, dim) retrieved hard negatives
    (opposite label); hard_neg_mask: (batch, m) bool, which of them exist; pos_mask: (batch,) bool,
    which items have a positive (others are left out of the mean). s = cosine / temperature.

    contrastive: ``-log(e^{s(g,g+)} / (e^{s(g,g+)} + mean_hn e^{s(g,hn)} + sum_{j: y_j != y} e^{s(g,g_j)}))``
    triplet: ``max(0, margin - s(g,g+) + mean_hn s(g,hn))`` (cosines, no temperature).
    Returns ``{"loss", "rgcl", "pos_sim", "neg_sim"}`` (the last two detached means, for logging).
    """
    import torch
    import torch.nn.functional as F

    if form not in ("contrastive", "triplet"):
        raise ValueError(f"rgcl form must be 'contrastive' or 'triplet', got {form!r}")
    b, m = hard_neg.shape[0], hard_neg.shape[1]
    if hard_neg_mask is None:
        hard_neg_mask = torch.ones(b, m, dtype=torch.bool, device=g.device)
    if pos_mask is None:
        pos_mask = torch.ones(b, dtype=torch.bool, device=g.device)
    gn = F.normalize(g, dim=-1)
    s_pos = (gn * F.normalize(pos, dim=-1)).sum(-1)  # (batch,)
    s_hn = torch.einsum("bd,bmd->bm", gn, F.normalize(hard_neg, dim=-1))  # (batch, m)
    hn_count = hard_neg_mask.sum(-1)  # (batch,)
    if form == "triplet":
        mean_hn = (s_hn * hard_neg_mask).sum(-1) / hn_count.clamp(min=1)
        per_item = F.relu(margin - s_pos + mean_hn)
        per_item = torch.where(hn_count > 0, per_item, torch.zeros_like(per_item))
    else:
        s_batch = gn @ gn.t()  # (batch, batch)
        other = (y[:, None] != y[None, :])  # in-batch negatives: a different label
        t = temperature
        e_pos = (s_pos / t).exp()
        e_hn = ((s_hn / t).exp() * hard_neg_mask).sum(-1) / hn_count.clamp(min=1)  # mean over real ones
        e_batch = ((s_batch / t).exp() * other).sum(-1)
        per_item = -torch.log(e_pos / (e_pos + e_hn + e_batch))
    keep = pos_mask.float()
    rgcl = (per_item * keep).sum() / keep.sum().clamp(min=1)
    with torch.no_grad():
        pos_sim = (s_pos * keep).sum() / keep.sum().clamp(min=1)
        neg_sim = (s_hn * hard_neg_mask).sum() / hard_neg_mask.sum().clamp(min=1)
    return {"loss": rgcl, "rgcl": rgcl, "pos_sim": pos_sim, "neg_sim": neg_sim}


def hybrid_loss(rgcl: Tensor, ce: Tensor, w: float = 0.5) -> dict[str, Tensor]:
    """RGCL's total: ``(1 - w) * RGCL + w * CE``."""
    if not 0 <= w <= 1:
        raise ValueError(f"ce_weight must be in [0, 1], got {w}")
    return {"loss": (1 - w) * rgcl + w * ce, "rgcl": rgcl, "ce": ce}
