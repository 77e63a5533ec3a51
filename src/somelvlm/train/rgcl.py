"""Recipe: retrieval-guided contrastive learning (RGCL, Mei et al. ACL 2024) on frozen features.

    somelvlm train rgcl --config configs/rgcl-cm_memes.yaml

Each epoch: embed every training post with the current model (detached, eval mode), build a FAISS
inner-product index over the L2-normalised embeddings g, and search the top ``k`` for each post.
The first neighbours with another label are its hard negatives (``hard_negatives`` of them), the
first with the same label (never the post itself) its pseudo-gold positive. Then, batch by batch,
the positive and negatives are re-embedded with gradients and the hybrid loss
``(1 - w) * RGCL + w * CE_w`` is minimised (RGCL contrastive, or the triplet form). The epoch with
the best val macro-F1 is kept. At the end RKC (``retrieval.rkc``) is scored too: the training
posts' embeddings are the memory, val / test posts the queries.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from somelvlm.train.mm_config import FrozenFeaturesConfig


@dataclass
class RGCLConfig(FrozenFeaturesConfig):
    """Options of ``somelvlm train rgcl`` (the YAML config holds the same keys)."""

    fusion: str = "product"
    """RGCL fuses by element-wise product; concat / cross_attention also work."""
    lr: float = 1e-3
    """1e-3, not the paper's 1e-4: on cm_memes val, 30 epochs at 1e-4 underfit (val macro-F1 64.7 vs 78.1)."""
    weight_decay: float = 1e-4
    out: str | None = None
    """Folder for the best model and, under ``out/index``, the training posts' retrieval index."""
    k: int = 12
    """Neighbours searched per training post when mining positives / hard negatives."""
    hard_negatives: int = 1
    """Hard negatives per post (the first ones found among the k)."""
    form: str = "contrastive"
    """contrastive (the RGCL loss) or triplet."""
    margin: float = 0.5
    """Triplet margin (triplet form only)."""
    temperature: float = 1.0
    """Similarities are cosine / temperature in the contrastive form (1: the paper's plain cosine)."""
    ce_weight: float = 0.5
    """w in (1 - w) * RGCL + w * CE."""
    rkc_k: int = 20
    """Neighbours RKC votes with."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.form not in ("contrastive", "triplet"):
            raise ValueError(f"`form` must be contrastive or triplet, got {self.form!r}")
        if not 0 <= self.ce_weight <= 1:
            raise ValueError(f"`ce_weight` must be in [0, 1], got {self.ce_weight}")
        if self.k < 2 or self.hard_negatives < 1 or self.hard_negatives > self.k:
            raise ValueError("`k` must be >= 2 and 1 <= `hard_negatives` <= `k`")
        if self.rkc_k < 1:
            raise ValueError(f"`rkc_k` must be >= 1, got {self.rkc_k}")


def mine(g: np.ndarray, y: np.ndarray, k: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Positives and hard negatives by retrieval over the rows of ``g`` (n, hidden).

    Returns ``(pos (n,), neg (n, m))`` as row positions, -1 where none was found in the top ``k``
    (the row itself excluded). Uses an exact FAISS inner-product index over L2-normalised g.
    """
    from somelvlm.retrieval.index import MemoryIndex

    n = len(g)
    index = MemoryIndex.build(g, {"id": [str(i) for i in range(n)], "label": [str(v) for v in y]},
                              stamp={}, kind="flat")
    _, nb = index.search(g, k, exclude=[str(i) for i in range(n)])
    pos = -np.ones(n, np.int64)
    neg = -np.ones((n, m), np.int64)
    for i in range(n):
        row = nb[i][nb[i] >= 0]
        same = row[y[row] == y[i]]
        other = row[y[row] != y[i]][:m]
        if len(same):
            pos[i] = same[0]
        neg[i, :len(other)] = other
    return pos, neg


def rkc_metrics(g_memory: np.ndarray, y_memory: np.ndarray, g_query: np.ndarray, y_query: np.ndarray,
                labels: tuple[str, ...], k: int = 20) -> dict[str, float]:
    """RKC scored on queries against a memory of labelled embeddings (exact FAISS search)."""
    from somelvlm.retrieval.index import MemoryIndex
    from somelvlm.retrieval.rkc import rkc_scores
    from somelvlm.train.multimodal import classification_metrics

    index = MemoryIndex.build(g_memory, {"id": [str(i) for i in range(len(g_memory))],
                                         "label": [str(v) for v in y_memory]}, stamp={})
    sims, pos = index.search(g_query, k)
    nb_y = np.where(pos >= 0, np.asarray(y_memory)[np.maximum(pos, 0)], -1)
    scores = rkc_scores(sims, nb_y, len(labels))
    if len(labels) == 2:
        return classification_metrics(y_query, scores, labels, scores=1 / (1 + np.exp(-scores[:, 1])))
    return classification_metrics(y_query, scores, labels)


def train(config: RGCLConfig, table=None, log=print) -> dict:
    """Train with the hybrid loss, select on val, score test with the head and with RKC."""
    import torch

    from somelvlm.train.loop import BestEpoch, apply_step, format_row
    from somelvlm.train.losses import class_weights, hybrid_loss, rgcl_loss, weighted_ce
    from somelvlm.train.multimodal import as_tensors, build_model, classification_metrics, load_table, predict

    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    table = table if table is not None else load_table(config)
    data = as_tensors(table)
    train_rows, val_rows, test_rows = (table.rows(s) for s in ("train", "val", "test"))
    if len(train_rows) < 2 or len(val_rows) == 0:
        raise ValueError(f"{config.dataset}: needs train and val items, got {len(train_rows)} / {len(val_rows)}")
    num_classes = len(table.labels)
    model = build_model(config, num_classes)
    weight = class_weights(table.y[train_rows], num_classes, config.class_weight_power)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    y_train = table.y[train_rows]
    history, kept = [], BestEpoch("val_macro_f1")
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        _, g_train = predict(model, data, train_rows)  # detached, eval mode: the epoch's index
        pos, neg = mine(g_train, y_train, config.k, config.hard_negatives)
        model.train()
        order = rng.permutation(len(train_rows))  # positions within train_rows
        sums: dict[str, float] = {}
        for s in range(0, len(order), config.batch_size):
            b = order[s:s + config.batch_size]
            if len(b) < 2:
                continue
            rows = torch.from_numpy(train_rows[b])
            out = model(data["image"][rows], data["text"][rows])
            p_rows = torch.from_numpy(train_rows[np.maximum(pos[b], 0)])
            n_rows = torch.from_numpy(train_rows[np.maximum(neg[b], 0)].reshape(-1))
            g_pos = model(data["image"][p_rows], data["text"][p_rows])["g"]  # (batch, hidden)
            g_neg = model(data["image"][n_rows], data["text"][n_rows])["g"].reshape(len(b), config.hard_negatives, -1)
            r = rgcl_loss(out["g"], data["y"][rows], g_pos, g_neg,
                          hard_neg_mask=torch.from_numpy(neg[b] >= 0), pos_mask=torch.from_numpy(pos[b] >= 0),
                          form=config.form, margin=config.margin, temperature=config.temperature)
            ce = weighted_ce(out["logits"], data["y"][rows], weight)["ce"]
            terms = hybrid_loss(r["rgcl"], ce, config.ce_weight)
            terms["loss"].backward()
            apply_step(opt)
            for name, v in {**terms, "pos_sim": r["pos_sim"], "neg_sim": r["neg_sim"]}.items():
                sums[name] = sums.get(name, 0.0) + float(v.detach()) * len(b)
        val = classification_metrics(table.y[val_rows], predict(model, data, val_rows)[0], table.labels)
        row = {"epoch": epoch, **{f"train_{n}": v / len(order) for n, v in sums.items()},
               **{f"val_{n}": v for n, v in val.items()}}
        history.append(row)
        kept.update(row, model)
        log(format_row(row))
    kept.restore(model)
    best = kept.row
    model.eval()
    _, g_train = predict(model, data, train_rows)
    result = {"config": asdict(config), "best_epoch": best["epoch"],
              "val": {n[4:]: v for n, v in best.items() if n.startswith("val_")}, "history": history}
    _, g_val = predict(model, data, val_rows)
    result["val_rkc"] = rkc_metrics(g_train, y_train, g_val, table.y[val_rows], table.labels, config.rkc_k)
    if len(test_rows):
        probs, g_test = predict(model, data, test_rows)
        result["test"] = classification_metrics(table.y[test_rows], probs, table.labels)
        result["test_rkc"] = rkc_metrics(g_train, y_train, g_test, table.y[test_rows], table.labels, config.rkc_k)
    result["seconds"] = time.perf_counter() - start
    if config.out:
        from somelvlm.digests import head_state_digest
        from somelvlm.models.multimodal import save_classifier
        from somelvlm.retrieval.index import MemoryIndex

        extra = {"task": table.task, "dataset": table.dataset, "encoders": table.encoders, "recipe": "rgcl",
                 "val": result["val"], "test": result.get("test", {}), "best_epoch": best["epoch"]}
        save_classifier(model, Path(config.out), list(table.labels), extra)
        stamp = {"encoders": {k: table.encoders[k] for k in ("image", "text")},
                 "head_digest": head_state_digest(model), "embedding": "g", "task": table.task,
                 "model": str(Path(config.out).resolve())}
        meta = {"id": [table.ids[i] for i in train_rows], "label": [table.labels[v] for v in y_train],
                "task": [table.task] * len(train_rows), "source": [table.dataset] * len(train_rows),
                "text": [table.texts[i] for i in train_rows]}
        MemoryIndex.build(g_train, meta, stamp).save(Path(config.out) / "index")
        log(f"saved {config.out} and its index")
    result["model"] = model
    return result
