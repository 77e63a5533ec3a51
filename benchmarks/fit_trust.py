"""Fit calibration (per-head temperatures) and applicability (per-head domain classifiers and in-domain
thresholds) for a compact model folder, from the TRAIN and VALIDATION splits of ../shared/data only. A
head refit on several datasets (``trained.multi_source``) is calibrated on the val posts of all of them.

    nice -n 10 python benchmarks/fit_trust.py                       # the shipped some-mini
    nice -n 10 python benchmarks/fit_trust.py --model runs/some-mini --train-cap 1500

Writes ``calibration.json`` and ``applicability.safetensors`` into the model folder (atomically) and a
summary to stdout. Run it again after every retrain: a folder whose files were fit on other weights
refuses to load until they are refit. Embeddings are cached under out/trust-cache (keyed by the
weights digest), so calibration.py and transfer.py reuse them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _trust_data import DATA, EmbeddingStore, load_head_items, sample


def head_logits(model, task: str, emb: np.ndarray) -> np.ndarray:
    """Raw head outputs for embeddings (n, dim): (n, labels), (n, groups, labels) or (n,)."""
    import torch

    with torch.inference_mode():
        return model.net.head(task, torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32))).numpy()


def fit_calibration(model, val: dict[str, tuple[np.ndarray, list]], digest: str):
    """Temperatures per classification head (per target for stance) on validation embeddings + items."""
    from somelvlm.models.calibration import Calibration, fit_temperature, nll

    temps: dict = {}
    fit: dict = {"split": "val", "method": "temperature scaling, NLL minimised by golden-section search",
                 "heads": {}}
    for task, (emb, items) in val.items():
        spec = model.specs[task]
        if spec.kind != "classification" or not items:
            continue
        z = head_logits(model, task, emb)
        y = np.array([int(it.target) for it in items])
        if spec.groups:
            g = np.array([it.group for it in items])
            temps[task], fit["heads"][task] = {}, {}
            for j, name in enumerate(spec.groups):
                mask = g == j
                if mask.sum() < 10:
                    continue
                zj = z[mask, j]  # (n_j, labels)
                t = fit_temperature(zj, y[mask])
                temps[task][name] = round(t, 4)
                fit["heads"][task][name] = {"n": int(mask.sum()), "nll_before": round(nll(zj, y[mask]), 4),
                                            "nll_after": round(nll(zj / t, y[mask]), 4)}
        else:
            t = fit_temperature(z, y)
            temps[task] = round(t, 4)
            fit["heads"][task] = {"n": len(y), "nll_before": round(nll(z, y), 4), "nll_after": round(nll(z / t, y), 4)}
    return Calibration(temps, fit, digest)


def fit_applicability(train: dict[str, tuple[np.ndarray, list]], val: dict[str, tuple[np.ndarray, list]],
                      digest: str, *, quantile: float, per_background_head: int, c: float,
                      plain: dict[str, np.ndarray] | None = None, topic_background: int | None = None,
                      topic_c: float | None = None):
    """A domain classifier per head: the training posts ``domain_heads`` puts on each side (its own,
    plus up to ``per_background_head`` of each other head there); threshold from the validation posts
    of the positive side (its own, plus as many of each same-genre head's): the share flagged is then
    about ``quantile`` of the genre's posts, not of one collection's. ``plain[task]`` (k, dim): embeddings
    of the head's training posts without handles and links (``plain_copy``), added to the positives of
    a genre head and of its genre's heads (the threshold still comes from the posts as they are). Not
    for topic-bound heads: with the links gone, the news-event head took in 8 points more of ordinary
    tweets (91.1% -> 83.4% flagged) and an insult from the demo. A topic-bound head may take a larger
    background (``topic_background`` posts of each other dataset) and its own ``topic_c``: chosen on
    validation posts by benchmarks/domain_sweep.py (a topic is narrower than a genre, so more of the
    ordinary posts around it sharpen its edge)."""
    from somelvlm.models.applicability import Applicability, HeadDomain, domain_heads, fit_head
    from somelvlm.taxonomy.registry import get_task

    app = Applicability(model_digest=digest)
    texts = {t: {it.text for it in items} for t, (_, items) in train.items()}
    for task, (emb, items) in train.items():
        v_emb = val[task][0]
        if len(emb) == 0 or len(v_emb) == 0:
            print(f"  {task}: no train or val posts, no applicability", file=sys.stderr)
            continue
        same, others, rule = domain_heads(task, [u for u in train if len(train[u][0])], texts)
        topic = get_task(task).topic_bound
        copies = {} if topic else (plain or {})  # a topic is content; a genre is no markup
        n_back = (topic_background or per_background_head) if topic else per_background_head
        extra = [copies[u][:per_background_head] for u in same if u in copies]
        positives = np.concatenate([emb, copies.get(task, emb[:0])] + [train[u][0][:per_background_head] for u in same] + extra)
        background = np.concatenate([train[u][0][:n_back] for u in others])
        v_emb = np.concatenate([v_emb] + [val[u][0][:per_background_head] for u in same])
        app.weights[task], threshold = fit_head(positives, background, v_emb, quantile=quantile,
                                                c=(topic_c or c) if topic else c)
        app.heads[task] = HeadDomain(threshold=round(threshold, 6), quantile=quantile, n_train=len(positives),
                                     n_val=len(v_emb), n_background=len(background), background=others,
                                     contrast=rule, positives=same)
    return app


def with_related_val(model, items: dict, val: dict[str, tuple[np.ndarray, list]], store, cap: int | None,
                     seed: int) -> dict[str, tuple[np.ndarray, list]]:
    """``val`` with, for each head refit on several datasets (``trained.multi_source`` in config.json, by
    ``benchmarks/multisource_heads.py``), the val posts of its other sources added, their labels mapped
    onto the head's: such a head's temperature is fit on every source it was trained and chosen on."""
    from somelvlm.data.head_items import Item

    heads = model.config.get("trained", {}).get("multi_source", {}).get("heads", {})
    out = dict(val)
    for task, record in heads.items():
        if task not in val:
            continue
        emb, own = val[task]
        labels = model.specs[task].labels
        for related, mapping in record.get("mapping", {}).items():
            if related not in model.specs or related not in items:
                continue
            rel_labels = model.specs[related].labels
            chosen = sample(items[related].get("val", []), cap, seed)
            added = [Item(it.text, labels.index(mapping[rel_labels[int(it.target)]])) for it in chosen]
            emb, own = np.concatenate([emb, store([it.text for it in added])]), own + added
        out[task] = (emb, own)
        print(f"  {task}: temperature fit on {len(own)} val posts of {len(record.get('mapping', {})) + 1} sources",
              file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> None:
    from somelvlm.models.applicability import model_digest, plain_copy
    from somelvlm.models.compact import ASSETS, CompactModel

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ASSETS / "some-mini", help="compact model folder to write into")
    ap.add_argument("--data", type=Path, default=DATA, help="the data root (train and val splits are read)")
    ap.add_argument("--train-cap", type=int, default=1000, help="training posts sampled per head (its domain classifier)")
    ap.add_argument("--val-cap", type=int, default=1500, help="validation posts per head (temperatures, thresholds)")
    ap.add_argument("--background", type=int, default=200,
                    help="training posts of each other dataset's head in a head's background (negatives)")
    ap.add_argument("--c", type=float, default=1.0, help="inverse L2 strength of the domain classifiers")
    ap.add_argument("--topic-background", type=int, default=1000,
                    help="background posts per other dataset for a topic-bound head (chosen on val: domain_sweep.py)")
    ap.add_argument("--topic-c", type=float, default=4.0, help="C of a topic-bound head's domain classifier (ditto)")
    ap.add_argument("--quantile", type=float, default=0.05,
                    help="threshold = this quantile of the head's val scores (about this share of its posts is flagged)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    for stale in ("calibration.json", "applicability.safetensors"):  # rewritten below; a stale one would refuse to load
        (args.model / stale).unlink(missing_ok=True)
    model = CompactModel(args.model, threads=args.threads)
    digest = model_digest(args.model)
    store = EmbeddingStore(model, digest)
    items = load_head_items(args.data, model.tasks)
    splits = {}
    for split, cap in (("val", args.val_cap), ("train", args.train_cap)):
        chosen = {t: sample(items[t].get(split, []), cap, args.seed) for t in model.tasks}
        print(f"{split}: {sum(map(len, chosen.values()))} posts over {len(chosen)} heads", file=sys.stderr)
        emb = store([it.text for t in model.tasks for it in chosen[t]])
        out, at = {}, 0
        for t in model.tasks:
            out[t] = (emb[at:at + len(chosen[t])], chosen[t])
            at += len(chosen[t])
        splits[split] = out

    plain = {}
    for t, (_, chosen) in splits["train"].items():  # the training posts without handles and links
        changed = [q for it in chosen if (q := plain_copy(it.text)) and q != it.text]
        plain[t] = store(changed) if changed else np.zeros((0, model.net.encoder.config.hidden_size), np.float32)
    print(f"plain copies: {sum(map(len, plain.values()))} training posts without handles or links", file=sys.stderr)
    calibration = fit_calibration(model, with_related_val(model, items, splits["val"], store, args.val_cap, args.seed), digest)
    app = fit_applicability(splits["train"], splits["val"], digest, quantile=args.quantile,
                            per_background_head=args.background, c=args.c, plain=plain,
                            topic_background=args.topic_background, topic_c=args.topic_c)
    print(f"wrote {calibration.save(args.model)}")
    print(f"wrote {app.save(args.model)} ({(args.model / 'applicability.safetensors').stat().st_size / 1e3:.0f} kB)")
    for task in model.tasks:
        t = calibration.temperatures.get(task, "-")
        h = app.heads.get(task)
        print(f"  {task:18s} T={t}  threshold={h.threshold if h else '-'}  background={h.n_background if h else '-'}")


if __name__ == "__main__":
    main()
