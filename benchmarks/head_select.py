"""Per-head selection on VALIDATION between the trained head and a linear probe refit on the same
embedding (same encoder pass, same output shape: a ``Linear`` head either way).

some-mini's heads were trained jointly with the LoRA encoder for one epoch of a two-epoch schedule,
at a still-high learning rate; 17 of its 27 heads score at or below a frozen MiniLM + logistic
regression on test (``results/frozen_lr.md``). Here each head gets a candidate refit on the SHIPPED
encoder's embeddings (standardised; logistic regression with C and class weights, ridge for ratings,
per target for stance), on as many training posts as the head saw per epoch. Every choice is made on
validation: the refit replaces the head only when it scores strictly higher there on the head's
primary metric. Test (at most ``--test-cap`` posts per head) is scored and reported, never used.

    python benchmarks/head_select.py                  # measure: results/head_select.{json,md}
    python benchmarks/head_select.py --ship           # also write the chosen heads into the model folder

``--ship`` rewrites ``head.<task>.weight/bias`` in ``model.safetensors`` (atomically; the LoRA is
untouched) and records the choice in ``config.json`` (``trained.head_select``). The weights digest
changes, so calibration and applicability must be refit after (``benchmarks/fit_trust.py``); the
embedding cache is carried over (the encoder did not change).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

from _trust_data import CACHE, DATA, EmbeddingStore, load_head_items, sample


def head_outputs(model, task: str, emb: np.ndarray) -> np.ndarray:
    """The shipped head's raw outputs: (n, labels), (n, groups, labels) or (n,)."""
    import torch

    with torch.inference_mode():
        return model.net.head(task, torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32))).numpy()


def own_rows(out: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Each item's own target's row for per-target heads; ``out`` unchanged otherwise."""
    return out if groups is None else out[np.arange(len(out)), groups]


def refit(spec, X: np.ndarray, y: np.ndarray, g: np.ndarray | None, c: float, cw,
          sample_weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(weight (width, dim), bias (width,))`` of a linear head on raw embeddings ``X`` (n, dim): the
    model is fit on standardised X and folded back (w / sd, b - w . mean / sd). Binary LR's one logit
    becomes [0, z]; a label missing from a target's training posts gets bias -30. ``sample_weight`` (n,):
    per-post weights (classification without targets only)."""
    from sklearn.linear_model import LogisticRegression, Ridge

    mean, sd = X.mean(0), X.std(0) + 1e-6
    Z = (X - mean) / sd
    dim = X.shape[1]
    if spec.kind == "regression":
        m = Ridge(alpha=c).fit(Z, y)
        w = (m.coef_ / sd)[None, :]
        return w.astype(np.float32), np.array([m.intercept_ - float(m.coef_ @ (mean / sd))], np.float32)
    k = len(spec.labels)
    parts = list(range(len(spec.groups))) if spec.groups else [None]
    W = np.zeros((k * len(parts), dim), np.float32)
    B = np.zeros(k * len(parts), np.float32)
    for j, part in enumerate(parts):
        rows = np.ones(len(y), bool) if part is None else g == part
        sw = None if sample_weight is None else sample_weight[rows]
        m = LogisticRegression(C=c, class_weight=cw, max_iter=3000).fit(Z[rows], y[rows], sample_weight=sw)
        coef, icpt = m.coef_, m.intercept_
        if len(m.classes_) == 2:
            coef, icpt = np.vstack([np.zeros_like(coef), coef]), np.r_[0.0, icpt]
        B[j * k:(j + 1) * k] = -30.0
        for r, cls in enumerate(m.classes_):
            W[j * k + cls] = coef[r] / sd
            B[j * k + cls] = icpt[r] - float(coef[r] @ (mean / sd))
    return W, B


def primary(task: str, spec, y: np.ndarray, out: np.ndarray) -> float:
    from somelvlm.evaluate.metrics import head_metrics, metric_key
    from somelvlm.taxonomy.registry import get_task

    return head_metrics(task, spec, list(y), out)[metric_key(get_task(task).primary_metric)]


def main(argv: list[str] | None = None) -> dict:
    import torch

    from somelvlm.models.applicability import model_digest
    from somelvlm.models.compact import ASSETS, CompactModel

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ASSETS / "some-mini")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--val-cap", type=int, default=2000)
    ap.add_argument("--test-cap", type=int, default=1500)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ship", action="store_true")
    ap.add_argument("--train-cap", type=int, default=None,
                    help="training posts per head for the refit (default: as many as the head saw per epoch; 0: all)")
    ap.add_argument("--out", type=Path, default=None,
                    help="write results/<out>.{json,md} only (an experiment: quality.md and the card untouched)")
    args = ap.parse_args(argv)

    model = CompactModel(args.model, threads=args.threads)
    digest = model_digest(args.model)
    store = EmbeddingStore(model, digest)
    trained = model.config["trained"]["config"]
    items = load_head_items(args.data, model.tasks)
    rows, new_heads = {}, {}
    for task, spec in model.specs.items():
        cap = trained.get("max_per_task_overrides", {}).get(task, trained.get("max_per_task"))
        if args.train_cap is not None:
            cap = args.train_cap or None
        split = {"train": sample(items[task].get("train", []), cap, 0), "val": sample(items[task].get("val", []), args.val_cap, 0),
                 "test": sample(items[task].get("test", []), args.test_cap, 0)}
        if not all(split.values()):
            continue
        X = {s: store([it.text for it in v]) for s, v in split.items()}
        y = {s: np.array([it.target for it in v], dtype=float if spec.kind == "regression" else int) for s, v in split.items()}
        g = {s: np.array([it.group for it in v]) if spec.groups else None for s, v in split.items()}
        lower = spec.kind == "regression"
        better = (lambda a, b: a < b - 1e-9) if lower else (lambda a, b: a > b + 1e-9)
        shipped = {s: primary(task, spec, y[s], own_rows(head_outputs(model, task, X[s]), g[s])) for s in ("val", "test")}
        best = None
        grid = [(a, None) for a in (1.0, 10.0, 100.0, 1000.0)] if lower else \
            [(c, cw) for c in (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0) for cw in (None, "balanced")]
        for c, cw in grid:
            W, B = refit(spec, X["train"], y["train"], g["train"], c, cw)
            out = {s: X[s] @ W.T + B for s in ("val", "test")}
            if spec.kind == "regression":
                out = {s: o[:, 0] for s, o in out.items()}
            elif spec.groups:
                out = {s: o.reshape(len(o), len(spec.groups), len(spec.labels)) for s, o in out.items()}
            score = {s: primary(task, spec, y[s], own_rows(out[s], g[s])) for s in out}
            if best is None or better(score["val"], best["val"]):
                best = {"C" if not lower else "alpha": c, "class_weight": cw, **score, "W": W, "B": B}
        chosen = better(best["val"], shipped["val"])
        rows[task] = {"metric": spec.kind == "regression" and "rmse" or "primary", "lower_is_better": lower,
                      "n": {s: len(v) for s, v in split.items()},
                      "shipped": {s: round(v, 2) for s, v in shipped.items()},
                      "refit": {k: (round(v, 2) if k in ("val", "test") else v) for k, v in best.items() if k not in ("W", "B")},
                      "chosen": "refit" if chosen else "shipped"}
        if chosen:
            new_heads[task] = (best["W"], best["B"])
        print(task, rows[task], file=sys.stderr, flush=True)

    five = [t for t in ("emotion", "hate", "irony", "offensive", "stance") if t in rows]
    pick = lambda r, s: r["refit"][s] if r["chosen"] == "refit" else r["shipped"][s]  # noqa: E731
    lines = ["# Per-head selection on validation: trained head or linear refit on the same embedding", "",
             __doc__.split("\n\n")[1], "", "Reproduce: `python benchmarks/head_select.py" + "".join(" " + a for a in (argv if argv is not None else sys.argv[1:])) + "`.", "",
             "| head | n train / val / test | val: trained → refit | test: trained → refit | chosen (on val) | test of the chosen |",
             "|---|---|---:|---:|---|---:|"]
    for t, r in rows.items():
        n = r["n"]
        lines.append(f"| {t} | {n['train']} / {n['val']} / {n['test']} | {r['shipped']['val']} → {r['refit']['val']} | "
                     f"{r['shipped']['test']} → {r['refit']['test']} | {r['chosen']} | **{pick(r, 'test')}** |")
    changed = [t for t, r in rows.items() if r["chosen"] == "refit"]
    up = [t for t in changed if (rows[t]["refit"]["test"] < rows[t]["shipped"]["test"]) == rows[t]["lower_is_better"]]
    lines += ["", f"Chosen on val: the refit for {len(changed)} of {len(rows)} heads ({', '.join(changed) or 'none'}); on "
              f"test it is better for {len(up)} of them. TweetEval five on these test samples: "
              f"{np.mean([rows[t]['shipped']['test'] for t in five]):.2f} (trained) → "
              f"{np.mean([pick(rows[t], 'test') for t in five]):.2f} (chosen)."]
    RESULTS.mkdir(exist_ok=True)
    out = args.out or RESULTS / "head_select"
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if args.out is not None:  # an experiment: the results file, and the heads only into the folder named
        print("\n".join(lines))
        if args.ship and new_heads:
            ship(args.model, new_heads, digest, record=selection_record(new_heads, rows))
        return rows
    from calibration import put_section

    section = "\n".join(lines[2:]) + "\n"
    put_section(RESULTS / "quality.md", "Heads refit on validation (benchmarks/head_select.py)", section, name="head-select")
    if args.ship:
        put_section(args.model / "README.md", "Heads refit on validation", section, name="head-select")
    print("\n".join(lines))
    if args.ship and new_heads:
        ship(args.model, new_heads, digest, record=selection_record(new_heads, rows))
    return rows


def selection_record(new_heads: dict, rows: dict) -> dict:
    """What config.json keeps of each refit chosen here."""
    return {t: {"val_trained": rows[t]["shipped"]["val"], "val_refit": rows[t]["refit"]["val"], "n_train": rows[t]["n"]["train"],
                **{k: rows[t]["refit"][k] for k in ("C", "alpha", "class_weight") if k in rows[t]["refit"]}}
            for t in new_heads}


def ship(folder: Path, new_heads: dict, old_digest: str, record: dict, key: str = "head_select",
         rule: str = "linear refit on the shipped embedding replaces the trained head when strictly better on val",
         written_by: str = "benchmarks/head_select.py --ship") -> None:
    """Write the chosen heads into ``folder/model.safetensors`` and record the choice in config.json
    (``trained.<key>``: the rule, and ``record`` merged over earlier rounds' heads)."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    from somelvlm.atomic import atomic_path, atomic_write_text
    from somelvlm.models.applicability import model_digest

    path = folder / "model.safetensors"
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    for task, (W, B) in new_heads.items():
        assert tensors[f"head.{task}.weight"].shape == W.shape, (task, W.shape)
        tensors[f"head.{task}.weight"], tensors[f"head.{task}.bias"] = W.astype(np.float32), B.astype(np.float32)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    before = config["trained"].get(key, {}).get("heads", {})  # earlier rounds' choices stay on record
    config["trained"][key] = {"rule": rule, "written_by": written_by, "heads": {**before, **record}}
    atomic_write_text(folder / "config.json", json.dumps(config, indent=1) + "\n")
    new_digest = model_digest(folder)
    for suffix in ("-emb.npy", "-texts.json"):  # the encoder is unchanged: so are the embeddings
        if (CACHE / f"{old_digest}{suffix}").is_file():
            shutil.copy(CACHE / f"{old_digest}{suffix}", CACHE / f"{new_digest}{suffix}")
    print(f"wrote {len(new_heads)} heads into {path}; now refit: python benchmarks/fit_trust.py", file=sys.stderr)


if __name__ == "__main__":
    main()
