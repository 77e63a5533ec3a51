"""Experiment: can SoMe-mini's five TweetEval heads do better as logistic regressions refit on its own
embeddings (C and class weights chosen on VAL by the official metric), or on the concatenation of its
embeddings with the frozen MiniLM's (two encoder passes)? Also the frozen MiniLM alone with the same
val selection (the issue's "frozen MiniLM + LR" reference), and the frozen all-mpnet-base-v2 (the
``mpnet`` packaged encoder, 8x MiniLM's FLOPs): is a stronger frozen encoder a route to the target?

    python benchmarks/head_refit.py embed          # saves embeddings under --work (slow: 3 x 40k tweets)
    python benchmarks/head_refit.py embed mpnet    # only the named kinds (int8 fp32 frozen mpnet)
    python benchmarks/head_refit.py fit int8 fp32 frozen int8+frozen fp32+frozen mpnet fp32+mpnet heads+mpnet

``L<k>``: the mean-pooled hidden states of layer k (0 = the token embeddings, 6 = the last: ``L6`` is ``fp32``)
of the shipped encoder, all from one pass: does a head on several layers of the same pass do better?

``heads+<kind>``: the shipped heads' probabilities averaged with an LR's on ``<kind>`` (the weight chosen
on val too): what a second, frozen encoder adds to the model as it is.

Writes benchmarks/results/head_refit.json and .md. Test splits are only scored, never used to choose.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

FIVE = ["emotion", "hate", "irony", "offensive", "stance"]
SPLITS = ("train", "val", "test")
HERE = Path(__file__).resolve().parent


FROZEN = {"frozen": "minilm", "mpnet": "mpnet"}
"""Embedding kind -> the frozen feature extractor that makes it."""


def embed(data, work: Path, kinds: list[str], threads: int) -> None:
    import torch

    from somelvlm.features import FeatureCache, get_extractor
    from somelvlm.models.compact import CompactModel

    torch.set_num_threads(threads)
    models = {"int8": lambda: CompactModel(runtime="torch-int8", int8=True, threads=threads),
              "fp32": lambda: CompactModel(runtime="torch", threads=threads)}
    for name in kinds:
        if name in models:
            model = models[name]()
            vectors = lambda texts: model.embed(texts)  # noqa: E731
        else:
            cache, extractor = FeatureCache(work / "cache"), get_extractor(FROZEN[name], num_threads=threads)
            vectors = lambda texts: np.stack(cache.get_many(extractor, texts))  # noqa: E731
        for t in FIVE:
            for s in SPLITS:
                if not (work / f"{name}_{t}_{s}.npy").is_file():
                    np.save(work / f"{name}_{t}_{s}.npy", vectors([it.text for it in data[t][s]]))
                    print(f"embedded {name} {t} {s}", flush=True)


def embed_layers(data, work: Path, threads: int) -> None:
    """Saves ``L<k>_<task>_<split>.npy`` (n, dim): every layer's mean-pooled hidden states, one fp32 pass."""
    import torch

    from somelvlm.models.compact import CompactModel

    torch.set_num_threads(threads)
    model = CompactModel(runtime="torch", threads=threads)
    enc, layers = model.net.encoder, model.net.encoder.config.num_hidden_layers + 1
    for t in FIVE:
        for s in SPLITS:
            if (work / f"L{layers - 1}_{t}_{s}.npy").is_file():
                continue
            texts = [it.text for it in data[t][s]]
            order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
            out = np.zeros((layers, len(texts), enc.config.hidden_size), np.float32)
            with torch.inference_mode():
                for a in range(0, len(order), 64):
                    idx = order[a:a + 64]
                    b = model.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                        max_length=model.max_length, return_tensors="pt")
                    hidden = enc(**b, output_hidden_states=True).hidden_states  # layers x (batch, seq, dim)
                    mask = b["attention_mask"].unsqueeze(-1).float()  # (batch, seq, 1)
                    for k, h in enumerate(hidden):
                        out[k, idx] = ((h * mask).sum(1) / mask.sum(1)).numpy()
            for k in range(layers):
                np.save(work / f"L{k}_{t}_{s}.npy", out[k])
            print(f"embedded layers {t} {s}", flush=True)


def shipped_probs(work: Path, data, t: str, s: str) -> np.ndarray:
    """(n, labels) raw softmax of the shipped head on its fp32 embeddings (stance: each post's target)."""
    from somelvlm.models.compact import CompactModel

    global _MODEL
    if "_MODEL" not in globals():
        _MODEL = CompactModel(runtime="torch", threads=1)
    p = _MODEL._proba(np.load(work / f"fp32_{t}_{s}.npy"), [t], calibrated=False)[t]
    if p.ndim == 3:
        p = p[np.arange(len(p)), [it.group for it in data[t][s]]]
    return p


def lr_probs(spec, X: dict, y: dict, g: dict, C: float, cw, splits=("val", "test")) -> dict[str, np.ndarray]:
    """``split -> (n, labels)`` probabilities of a logistic regression fit on ``X["train"]`` (n, dim) and
    ``y["train"]``; per-target heads (stance) get one per target (``g``: each post's target index)."""
    from sklearn.linear_model import LogisticRegression

    probs = {s: np.zeros((len(y[s]), len(spec.labels))) for s in splits}
    for grp in (sorted(set(g["train"])) if spec.groups else [-1]):
        tr = g["train"] == grp
        clf = LogisticRegression(C=C, class_weight=cw, max_iter=3000).fit(X["train"][tr], y["train"][tr])
        for s in probs:
            m = g[s] == grp
            if m.any():
                probs[s][np.ix_(m, clf.classes_)] = clf.predict_proba(X[s][m])
    return probs


def fit(data, work: Path, kinds: list[str]) -> dict:
    """Per kind and task: the LR (C, class weights; for ``heads+<kind>`` also the weight of the shipped
    heads' probabilities in an average with the LR's) chosen by the official metric on val."""
    from somelvlm.evaluate.metrics import score
    from somelvlm.taxonomy.registry import get_task
    from somelvlm.taxonomy.heads import head_spec

    def load(kind: str, t: str, s: str) -> np.ndarray:  # (n, sum of the parts' dims), each part L2-normalised
        parts = [np.load(work / f"{k}_{t}_{s}.npy") for k in kind.split("+")]
        return np.concatenate([p / np.linalg.norm(p, axis=1, keepdims=True) for p in parts], 1)

    res: dict = {}
    for kind in kinds:
        res[kind] = {}
        ensemble = kind.startswith("heads+")
        base = kind.removeprefix("heads+")
        for t in FIVE:
            spec, metric = head_spec(t), get_task(t).metrics[0]
            X = {s: load(base, t, s) for s in SPLITS}
            y = {s: np.array([it.target for it in data[t][s]]) for s in SPLITS}
            g = {s: np.array([it.group for it in data[t][s]]) for s in SPLITS}
            heads = {s: shipped_probs(work, data, t, s) for s in ("val", "test")} if ensemble else None
            lab = lambda a: [spec.labels[i] for i in a]  # noqa: E731
            best = (-1.0, None)
            for C in (0.1, 0.3, 1.0, 3.0, 10.0):
                for cw in (None, "balanced"):
                    probs = lr_probs(spec, X, y, g, C, cw)
                    for w in ((0.25, 0.5, 0.75) if ensemble else (0.0,)):
                        pred = {s: (w * heads[s] + (1 - w) * probs[s] if ensemble else probs[s]).argmax(1)
                                for s in probs}
                        v = score(metric.name, lab(y["val"]), lab(pred["val"]), metric.labels)
                        te = score(metric.name, lab(y["test"]), lab(pred["test"]), metric.labels)
                        if v > best[0]:
                            best = (v, {"C": C, "class_weight": cw, "val": round(v, 2), "test": round(te, 2),
                                        **({"heads_weight": w} if ensemble else {})})
            res[kind][t] = best[1]
            print(kind, t, best[1], flush=True)
        res[kind]["average"] = round(float(np.mean([res[kind][t]["test"] for t in FIVE])), 2)
    return res


def main(argv: list[str] | None = None) -> None:
    from somelvlm.data.head_items import load_items

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["embed", "fit"])
    parser.add_argument("kinds", nargs="*", default=None,
                        help="embed: int8 fp32 frozen mpnet layers (default the first three); fit: any '+' joins "
                             "of them (layers: L0 .. L6)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "head_refit",
                        help="results path without suffix (.json and .md are written)")
    parser.add_argument("--train-cap", type=int, default=None,
                        help="at most this many training posts per task (a fixed sample), for embed and fit alike")
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--work", type=Path, default=Path("runs/head_refit"))
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    data = load_items(args.data_root, FIVE)
    if args.train_cap:
        from somelvlm.data.head_items import cap

        for t in FIVE:
            data[t]["train"] = cap(data[t]["train"], args.train_cap, seed=0)
    if args.step == "embed":
        kinds = args.kinds or ["int8", "fp32", "frozen"]
        if "layers" in kinds:
            embed_layers(data, args.work, args.threads)
        embed(data, args.work, [k for k in kinds if k != "layers"], args.threads)
        return
    kinds = args.kinds or ["int8", "fp32", "frozen", "int8+frozen", "fp32+frozen"]
    res = fit(data, args.work, kinds)
    args.out.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    cap_flag = f" --train-cap {args.train_cap}" if args.train_cap else ""
    lines = ["# Refitting SoMe-mini's TweetEval heads by logistic regression (C, class weights on val)", "",
             f"`python benchmarks/head_refit.py embed{cap_flag} && python benchmarks/head_refit.py fit {' '.join(kinds)}"
             f"{cap_flag}`. Test, official metrics; the val average is what a choice may look at.", "",
             "| embeddings | " + " | ".join(FIVE) + " | average | val average |", "|---|" + "---:|" * 7]
    for kind, row in res.items():
        val = np.mean([row[t]["val"] for t in FIVE])
        lines.append(f"| {kind} | " + " | ".join(f"{row[t]['test']:.1f}" for t in FIVE)
                     + f" | {row['average']:.1f} | {val:.2f} |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
