"""Recipe: a multimodal classifier on frozen image + text features with ITC / ITM auxiliary losses.

    somelvlm train multimodal --config configs/mm-cm_memes.yaml

``L = (1 - b_itc - b_itm) * CE_w + b_itc * ITC + b_itm * ITM`` (Sanchez Villegas et al., arXiv
2309.07794). ITC and ITM use only the batch's posts that have both an image and a text. Features
come from ``features.mm_table.build_table`` (cached), so an epoch is a few small matrix products. After each
epoch the model is scored on val; the best epoch (val macro-F1) is kept, scored on test and saved.

Departures from upstream, on purpose: lr 1e-3 instead of 1e-5 (upstream fine-tunes whole encoders;
here only ~0.5M head weights train on frozen features), dropout 0.2 (0.05 overfits these small
datasets; selected on cm_memes val).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from somelvlm.train.mm_config import FrozenFeaturesConfig


@dataclass
class MultimodalConfig(FrozenFeaturesConfig):
    """Options of ``somelvlm train multimodal`` (the YAML config holds the same keys)."""

    b_itc: float = 0.1
    """Weight of the ITC loss (0 switches it off)."""
    b_itm: float = 0.1
    """Weight of the ITM loss (0 switches it off)."""
    itm_p: float = 0.5
    """Probability that ITM swaps a post's text for another in-batch text."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.b_itc < 0 or self.b_itm < 0 or self.b_itc + self.b_itm >= 1:
            raise ValueError("`b_itc` and `b_itm` must be >= 0 and sum to less than 1")


# -- shared by the multimodal and rgcl recipes -----------------------------------------------------
def as_tensors(table) -> dict:
    """The table's arrays as torch tensors: image, text (float32), y (int64), both (bool)."""
    import torch

    return {"image": torch.from_numpy(table.image), "text": torch.from_numpy(table.text),
            "y": torch.from_numpy(table.y), "both": torch.from_numpy(table.has_image & table.has_text)}


def predict(model, data: dict, rows: np.ndarray, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """``(probs (n, classes), g (n, hidden))`` for ``rows``, model in eval mode."""
    import torch

    model.eval()
    probs, gs = [], []
    with torch.no_grad():
        for s in range(0, len(rows), batch_size):
            r = torch.from_numpy(rows[s:s + batch_size])
            out = model(data["image"][r], data["text"][r])
            probs.append(out["logits"].softmax(-1).numpy())
            gs.append(out["g"].numpy())
    hidden = model.config.hidden
    if not probs:
        return np.zeros((0, model.config.num_classes), np.float32), np.zeros((0, hidden), np.float32)
    return np.concatenate(probs), np.concatenate(gs)


def classification_metrics(y: np.ndarray, probs: np.ndarray, labels: tuple[str, ...],
                           scores: np.ndarray | None = None) -> dict[str, float]:
    """macro-F1 and accuracy of argmax(probs) (or of ``scores >= 0.5`` given binary ``scores``), and
    AUROC for a binary task (positive = the last label, scored by probs[:, -1] or ``scores``)."""
    from somelvlm.evaluate.metrics import score

    gold = [labels[i] for i in y]
    if scores is not None:
        pred = [labels[int(s >= 0.5)] for s in scores]
    else:
        pred = [labels[i] for i in probs.argmax(-1)]
    out = {"macro_f1": score("macro_f1", gold, pred, labels), "accuracy": score("accuracy", gold, pred, labels)}
    if len(labels) == 2:
        s = scores if scores is not None else probs[:, -1]
        out["auroc"] = score("auroc", gold, pred, labels, [float(v) for v in s])
    return out


def build_model(config, num_classes: int):
    """A fresh classifier with the config's shape."""
    from somelvlm.models.multimodal import MMConfig, build_classifier

    return build_classifier(MMConfig(num_classes=num_classes, proj_dim=config.proj_dim, hidden=config.hidden,
                                     fusion=config.fusion, dropout=config.dropout))


def load_table(config, progress=None):
    """The dataset's cached feature table for a recipe config; ``progress(stage, done, total)``
    follows the feature extraction."""
    from somelvlm.features.mm_table import build_table

    return build_table(config.data_root, config.dataset, text=config.text_encoder, ocr=config.ocr,
                       num_threads=config.threads, max_train=config.max_train, progress=progress)


# -- the recipe ------------------------------------------------------------------------------------
def train(config: MultimodalConfig, table=None, log=print) -> dict:
    """Train, select the epoch on val, score test; returns metrics, history and the model."""
    import torch

    from somelvlm.train.loop import BestEpoch, apply_step, format_row
    from somelvlm.train.losses import aux_loss, class_weights, itc_loss, itm_loss, itm_shuffle, weighted_ce

    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    table = table if table is not None else load_table(config)
    data = as_tensors(table)
    train_rows, val_rows, test_rows = (table.rows(s) for s in ("train", "val", "test"))
    if len(train_rows) == 0 or len(val_rows) == 0:
        raise ValueError(f"{config.dataset}: needs train and val items, got {len(train_rows)} / {len(val_rows)}")
    k = len(table.labels)
    model = build_model(config, k)
    weight = class_weights(table.y[train_rows], k, config.class_weight_power)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    multimodal = config.fusion not in ("text", "image")
    use_itc, use_itm = multimodal and config.b_itc > 0, multimodal and config.b_itm > 0
    history, kept = [], BestEpoch("val_macro_f1")
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = rng.permutation(train_rows)
        sums: dict[str, float] = {}
        for s in range(0, len(order), config.batch_size):
            r = torch.from_numpy(order[s:s + config.batch_size])
            if len(r) < 2:
                continue
            img, txt, y = data["image"][r], data["text"][r], data["y"][r]
            out = model(img, txt)
            ce = weighted_ce(out["logits"], y, weight)["ce"]
            itc = itm = None
            both = data["both"][r]
            if (use_itc or use_itm) and int(both.sum()) >= 2:
                i, t = out["image"][both], out["text"][both]
                if use_itc:
                    itc = itc_loss(i, t, model.logit_scale)["itc"]
                if use_itm:
                    idx, match = itm_shuffle(len(i), config.itm_p, generator=gen)
                    g_swapped = model.fuse(i, t[idx])
                    itm = itm_loss(model.match(g_swapped), match)["itm"]
            terms = aux_loss(ce, itc, itm, config.b_itc if use_itc else 0.0, config.b_itm if use_itm else 0.0)
            terms["loss"].backward()
            apply_step(opt)
            with torch.no_grad():
                model.logit_scale.clamp_(0, 4.6052)  # CLIP caps the inverse temperature at 100
            for name, v in terms.items():
                sums[name] = sums.get(name, 0.0) + float(v.detach()) * len(r)
        probs, _ = predict(model, data, val_rows)
        val = classification_metrics(table.y[val_rows], probs, table.labels)
        row = {"epoch": epoch, **{f"train_{n}": v / len(order) for n, v in sums.items()},
               **{f"val_{n}": v for n, v in val.items()}}
        history.append(row)
        kept.update(row, model)
        log(format_row(row))
    kept.restore(model)
    best = kept.row
    model.eval()
    test = classification_metrics(table.y[test_rows], predict(model, data, test_rows)[0], table.labels) \
        if len(test_rows) else {}
    result = {"config": asdict(config), "best_epoch": best["epoch"],
              "val": {n[4:]: v for n, v in best.items() if n.startswith("val_")}, "test": test,
              "history": history, "seconds": time.perf_counter() - start}
    if config.out:
        from somelvlm.models.multimodal import save_classifier

        save_classifier(model, Path(config.out), list(table.labels),
                        {"task": table.task, "dataset": table.dataset, "encoders": table.encoders,
                         "val": result["val"], "test": test, "best_epoch": best["epoch"]})
        log(f"saved {config.out}")
    result["model"] = model
    return result
