"""Experiment: can SoMe-mini's five TweetEval heads do better as logistic regressions refit on its own
embeddings (C and class weights chosen on VAL by the official metric), or on the concatenation of its
embeddings with the frozen MiniLM's (two encoder passes)? Also the frozen MiniLM alone with the same
val selection (the issue's "frozen MiniLM + LR" reference).

    python benchmarks/head_refit.py embed          # saves embeddings under --work (slow: 3 x 40k tweets)
    python benchmarks/head_refit.py fit int8 fp32 frozen int8+frozen fp32+frozen

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


def embed(data, work: Path) -> None:
    import torch

    from somelvlm.features import FeatureCache, get_extractor
    from somelvlm.models.compact import CompactModel

    torch.set_num_threads(1)
    for name, model in [("int8", CompactModel(runtime="torch-int8", int8=True, threads=1)),
                        ("fp32", CompactModel(runtime="torch", threads=1))]:
        for t in FIVE:
            for s in SPLITS:
                np.save(work / f"{name}_{t}_{s}.npy", model.embed([it.text for it in data[t][s]]))
    cache, minilm = FeatureCache(work / "cache"), get_extractor("minilm")
    for t in FIVE:
        for s in SPLITS:
            np.save(work / f"frozen_{t}_{s}.npy", np.stack(cache.get_many(minilm, [it.text for it in data[t][s]])))


def fit(data, work: Path, kinds: list[str]) -> dict:
    from sklearn.linear_model import LogisticRegression

    from somelvlm.evaluate.metrics import score
    from somelvlm.taxonomy.registry import get_task
    from somelvlm.taxonomy.heads import head_spec

    def load(kind: str, t: str, s: str) -> np.ndarray:  # (n, 384 * parts), each part L2-normalised
        parts = [np.load(work / f"{k}_{t}_{s}.npy") for k in kind.split("+")]
        return np.concatenate([p / np.linalg.norm(p, axis=1, keepdims=True) for p in parts], 1)

    res: dict = {}
    for kind in kinds:
        res[kind] = {}
        for t in FIVE:
            spec, metric = head_spec(t), get_task(t).metrics[0]
            X = {s: load(kind, t, s) for s in SPLITS}
            y = {s: np.array([it.target for it in data[t][s]]) for s in SPLITS}
            g = {s: np.array([it.group for it in data[t][s]]) for s in SPLITS}
            best = (-1.0, None)
            for C in (0.1, 0.3, 1.0, 3.0, 10.0):
                for cw in (None, "balanced"):
                    preds = {s: np.zeros(len(y[s]), int) for s in ("val", "test")}
                    for grp in (sorted(set(g["train"])) if spec.groups else [-1]):  # stance: one LR per target
                        tr = g["train"] == grp
                        clf = LogisticRegression(C=C, class_weight=cw, max_iter=3000).fit(X["train"][tr], y["train"][tr])
                        for s in preds:
                            m = g[s] == grp
                            if m.any():
                                preds[s][m] = clf.predict(X[s][m])
                    lab = lambda a: [spec.labels[i] for i in a]  # noqa: E731
                    v = score(metric.name, lab(y["val"]), lab(preds["val"]), metric.labels)
                    te = score(metric.name, lab(y["test"]), lab(preds["test"]), metric.labels)
                    if v > best[0]:
                        best = (v, {"C": C, "class_weight": cw, "val": round(v, 2), "test": round(te, 2)})
            res[kind][t] = best[1]
            print(kind, t, best[1], flush=True)
        res[kind]["average"] = round(float(np.mean([res[kind][t]["test"] for t in FIVE])), 2)
    return res


def main(argv: list[str] | None = None) -> None:
    from somelvlm.data.head_items import load_items

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["embed", "fit"])
    parser.add_argument("kinds", nargs="*", default=["int8", "fp32", "frozen", "int8+frozen", "fp32+frozen"])
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--work", type=Path, default=Path("runs/head_refit"))
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    data = load_items(args.data_root, FIVE)
    if args.step == "embed":
        embed(data, args.work)
        return
    res = fit(data, args.work, args.kinds)
    (HERE / "results" / "head_refit.json").write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    lines = ["# Refitting SoMe-mini's TweetEval heads by logistic regression (C, class weights on val)", "",
             "`python benchmarks/head_refit.py embed && python benchmarks/head_refit.py fit`. Test, official metrics.", "",
             "| embeddings | " + " | ".join(FIVE) + " | average |", "|---|" + "---:|" * 6]
    for kind, row in res.items():
        lines.append(f"| {kind} | " + " | ".join(f"{row[t]['test']:.1f}" for t in FIVE) + f" | {row['average']:.1f} |")
    (HERE / "results" / "head_refit.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
