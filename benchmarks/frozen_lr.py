"""Every some-mini head beside a frozen-encoder baseline: the frozen all-MiniLM-L6-v2 (no LoRA) + a
logistic regression (ridge for the ratings), fit on the same number of training posts the head's
training took per epoch, C and class weights chosen on VALIDATION by the head's primary metric, then
scored once on TEST. Per target for stance. The issue's bar: every head above it on test.

    nice -n 10 python benchmarks/frozen_lr.py [--data-root ../shared/data] [--test-cap 10000]

The head's test score comes from ``results/quality.json`` (full test split); the baseline's test is the
full split too, except sentiment and emoji, cut to ``--test-cap`` posts (a fixed sample; the n column
says so). Writes ``results/frozen_lr.{json,md}`` and a section of ``results/quality.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
REPO = HERE.parent
sys.path.insert(0, str(HERE))


def train_cap(config: dict, task: str, refits: dict | None = None) -> int | None:
    """How many training posts the head was fit on: the refit's (``trained.head_select``, ``n_train``)
    when ``head_select.py`` replaced it on more posts, else how many it saw per epoch (``max_per_task``
    and its overrides)."""
    n = (refits or {}).get(task, {}).get("n_train")
    return n if n else config.get("max_per_task_overrides", {}).get(task, config.get("max_per_task"))


def fit_task(task: str, spec, X: dict, y: dict, g: dict) -> dict:
    """The baseline chosen on val: ``{"C", "class_weight", "val", "test"}`` by the primary metric."""
    from sklearn.linear_model import LogisticRegression, Ridge

    from somelvlm.evaluate.metrics import head_metrics, metric_key
    from somelvlm.taxonomy.registry import get_task

    key = metric_key(get_task(task).primary_metric)
    lower = spec.kind == "regression"  # rmse
    best: dict | None = None
    grid = [(a, None) for a in (0.1, 1.0, 10.0, 100.0)] if lower else \
        [(c, cw) for c in (0.1, 0.3, 1.0, 3.0, 10.0) for cw in (None, "balanced")]
    for c, cw in grid:
        out = {}
        for s in ("val", "test"):
            out[s] = np.zeros(len(y[s])) if lower else np.zeros((len(y[s]), len(spec.labels)))
        for grp in (sorted(set(g["train"])) if spec.groups else [-1]):
            tr = g["train"] == grp
            if lower:
                model = Ridge(alpha=c).fit(X["train"][tr], y["train"][tr])
            else:
                model = LogisticRegression(C=c, class_weight=cw, max_iter=3000).fit(X["train"][tr], y["train"][tr])
            for s in out:
                m = g[s] == grp
                if not m.any():
                    continue
                if lower:
                    out[s][m] = model.predict(X[s][m])
                else:
                    out[s][np.ix_(m, model.classes_)] = model.predict_proba(X[s][m])
        val = head_metrics(task, spec, y["val"], out["val"])[key]
        test = head_metrics(task, spec, y["test"], out["test"])[key]
        if best is None or (val < best["val"] if lower else val > best["val"]):
            best = {"C" if not lower else "alpha": c, "class_weight": cw, "val": round(val, 3), "test": round(test, 3),
                    "_test_out": out["test"]}
    return {"metric": key, "lower_is_better": lower, **best}


def head_test_outputs(model, task: str, items: list) -> np.ndarray:
    """The shipped head's raw outputs on ``items``: (n, labels) probabilities (each post's own target's row for
    a per-target head) or (n,) numbers."""
    p = model._proba(model.embed([it.text for it in items]), [task], calibrated=False)[task]
    return p[np.arange(len(p)), [it.group for it in items]] if p.ndim == 3 else p


def paired_bootstrap(task: str, spec, y: np.ndarray, ours: np.ndarray, base: np.ndarray, *, n: int = 1000,
                     seed: int = 0) -> dict:
    """The head's primary metric minus the baseline's on the same test posts, and its 95% percentile interval
    over ``n`` resamples of the posts (with replacement; the same resample for both). ``ours`` / ``base``:
    (n_posts, labels) probabilities or (n_posts,) numbers."""
    from _bootstrap import head_paired

    return head_paired(task, spec, y, ours, [base], draws=n, seed=seed)


def main(argv: list[str] | None = None) -> dict:
    from somelvlm.data.head_items import cap, load_items
    from somelvlm.features import FeatureCache, get_extractor
    from somelvlm.models.compact import ASSETS
    from somelvlm.taxonomy.heads import HeadSpec

    sys.path.insert(0, str(HERE))
    from calibration import put_section

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--val-cap", type=int, default=2000)
    ap.add_argument("--test-cap", type=int, default=10000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=REPO / "out" / "frozen-cache")
    ap.add_argument("--bootstrap", type=int, default=1000, help="resamples of the test posts for the paired interval")
    args = ap.parse_args(argv)

    config = json.loads((ASSETS / "some-mini" / "config.json").read_text(encoding="utf-8"))
    specs = {h["task"]: HeadSpec.from_dict(h) for h in config["heads"]}
    trained = config["trained"]["config"]
    quality = json.loads((RESULTS / "quality.json").read_text(encoding="utf-8"))["ours"]["tasks"]
    data = load_items(args.data_root, list(specs))
    cache, minilm = FeatureCache(args.cache), get_extractor("minilm", num_threads=args.threads)
    from somelvlm.models.compact import CompactModel

    model = CompactModel(ASSETS / "some-mini", threads=args.threads)
    rows = {}
    for task, spec in specs.items():
        refits = config["trained"].get("head_select", {}).get("heads", {})
        items = {"train": cap(data[task].get("train", []), train_cap(trained, task, refits), seed=0),
                 "val": cap(data[task].get("val", []), args.val_cap, seed=0),
                 "test": cap(data[task].get("test", []), args.test_cap, seed=0)}
        if not all(items.values()):
            print(f"{task}: a split is empty, skipped", file=sys.stderr)
            continue
        X = {s: np.stack(cache.get_many(minilm, [it.text for it in v])) for s, v in items.items()}
        y = {s: np.array([it.target for it in v], dtype=float if spec.kind == "regression" else int) for s, v in items.items()}
        g = {s: np.array([it.group for it in v]) for s, v in items.items()}
        row = fit_task(task, spec, X, y, g)
        row["n"] = {s: len(v) for s, v in items.items()}
        row["paired"] = paired_bootstrap(task, spec, y["test"], head_test_outputs(model, task, items["test"]),
                                         row.pop("_test_out"), n=args.bootstrap)
        head = quality.get(task, {}).get(row["metric"])
        row["head_test"] = head
        row["head_beats"] = None if head is None else bool(head < row["test"] if row["lower_is_better"] else head > row["test"])
        rows[task] = row
        print(task, row, file=sys.stderr, flush=True)

    below = [t for t, r in rows.items() if r["head_beats"] is False]
    worse = lambda r: r["paired"]["ci95"][0] > 0 if r["lower_is_better"] else r["paired"]["ci95"][1] < 0  # noqa: E731
    clearly = [t for t in below if worse(rows[t])]
    lines = ["| head | metric | n train / val / test | some-mini test | frozen MiniLM + LR test | (its val) | head above "
             "| head - LR on the same test posts [95% CI] |",
             "|---|---|---|---:|---:|---:|---|---|"]
    for t, r in rows.items():
        n = r["n"]
        lines.append(f"| {t} | {r['metric']}{' (lower is better)' if r['lower_is_better'] else ''} | "
                     f"{n['train']} / {n['val']} / {n['test']} | {r['head_test']} | {r['test']:.2f} | {r['val']:.2f} | "
                     f"{'yes' if r['head_beats'] else '**no**'} | {r['paired']['diff']:+.2f} "
                     f"[{r['paired']['ci95'][0]:+.2f}, {r['paired']['ci95'][1]:+.2f}] |")
    section = ("Each some-mini head beside the frozen all-MiniLM-L6-v2 (the encoder before our LoRA) + logistic "
               "regression (ridge for ratings; per target for stance), trained on as many training posts as the head "
               "saw per epoch, C and class weights chosen on validation, scored once on test. Reproduce: "
               f"`python benchmarks/frozen_lr.py`. Heads at or below it on test: {len(below)} of {len(rows)} "
               f"({', '.join(below) or 'none'}); of these, clearly below (the paired bootstrap's 95% interval of the "
               f"difference on the same test posts, {args.bootstrap} resamples, excludes 0): {len(clearly)} "
               f"({', '.join(clearly) or 'none'}). The interval is on the test posts the baseline is scored on "
               "(sentiment and emoji: a sample of --test-cap), so its difference can differ slightly from the "
               "columns' full-split numbers.\n\n" + "\n".join(lines) + "\n")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "frozen_lr.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    (RESULTS / "frozen_lr.md").write_text("# some-mini's heads beside frozen MiniLM + LR\n\n" + section, encoding="utf-8")
    put_section(RESULTS / "quality.md", "Every head beside frozen MiniLM + LR", section, name="frozen-lr")
    print(section)
    return rows


if __name__ == "__main__":
    main()
