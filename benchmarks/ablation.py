"""The ablation table of the multimodal methods on the three real image datasets, and the RKC
adaptation experiment (mediaeval events held out of training).

    SOMELVLM_CACHE=/work/runs/mm/cache python benchmarks/ablation.py --datasets cm_memes memotion mediaeval2016

Rows (3 seeds each, mean +- std of test macro-F1, and AUROC for binary tasks): text only, image
only, CE fusion, +ITC, +ITM, +ITC+ITM, RGCL, RGCL+RKC. Everything chosen is chosen on val:
the epoch (per run), the text encoder for cm_memes (MiniLM vs multilingual e5, by text-only val
macro-F1) and the fusion of the "CE fusion" row (concat vs product, by mean val macro-F1), which the
auxiliary-loss rows then use. Each run's result is a JSON under --runs (resumable: finished runs
are read back). Writes benchmarks/results/ablation.{json,md}.

RKC adaptation (mediaeval2016): RGCL models trained on the training events; for each held-out test
event, ``--adapt-n`` labelled posts of that event are added to the index (no retraining) and the
event's AUROC on its other posts is compared with the train-only index. Two variants: the added
posts chosen at random ("random"), or only posts whose image is not shared with any scored post
("new images"; posts of one event share images, so "random" is the easier case).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from somelvlm.atomic import atomic_write_text

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SETTINGS = {  # per dataset: recipe knobs shared by every row (fixed before looking at any test number)
    "cm_memes": {"epochs": 30, "batch_size": 64, "max_train": None},
    "memotion": {"epochs": 15, "batch_size": 256, "max_train": 2000},
    "mediaeval2016": {"epochs": 10, "batch_size": 256, "max_train": 4000},
}
ROWS = ("text only", "image only", "CE fusion", "+ITC", "+ITM", "+ITC+ITM", "RGCL", "RGCL+RKC")


def run_one(path: Path, recipe: str, table, **config) -> dict:
    """Train once (or read the finished run back) and keep the JSON-able part of the result."""
    if path.is_file():
        return json.loads(path.read_text())
    if recipe == "rgcl":
        from somelvlm.train.rgcl import RGCLConfig as Config, train
    else:
        from somelvlm.train.multimodal import MultimodalConfig as Config, train
    result = train(Config(**config), table=table, log=lambda *a: None)
    keep = {k: v for k, v in result.items() if k != "model"}
    atomic_write_text(path, json.dumps(keep, indent=1))
    print(f"{path.relative_to(path.parents[2])}: best epoch {keep['best_epoch']} val {keep['val']} "
          f"test {keep.get('test')} ({keep['seconds']:.0f} s)", flush=True)
    return keep


def mean_std(values: list[float]) -> dict:
    values = [v for v in values if v == v]
    if not values:
        return {"mean": float("nan"), "std": float("nan"), "n": 0}
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values)}


def ablate(dataset: str, data_root: Path, runs: Path, seeds: list[int]) -> dict:
    """Every row of the table for one dataset."""
    from somelvlm.features.mm_table import build_table

    s = SETTINGS[dataset]
    base = {"dataset": dataset, "data_root": str(data_root), "epochs": s["epochs"], "batch_size": s["batch_size"],
            "max_train": s["max_train"]}
    tables = {}

    def table(text: str):
        if text not in tables:
            tables[text] = build_table(data_root, dataset, text=text, max_train=s["max_train"])
        return tables[text]

    def runs_of(name: str, recipe: str = "multimodal", text: str = "minilm", **config) -> list[dict]:
        return [run_one(runs / dataset / name / f"seed{seed}.json", recipe, table(text),
                        **base, text_encoder=text, seed=seed, **config) for seed in seeds]

    def val_mean(results: list[dict]) -> float:
        return statistics.fmean(r["val"]["macro_f1"] for r in results)

    selection = {}
    text_runs = {"minilm": runs_of("text-minilm", fusion="text", b_itc=0, b_itm=0)}
    if dataset == "cm_memes":  # code-mixed: compare the multilingual encoder
        text_runs["e5"] = runs_of("text-e5", text="e5", fusion="text", b_itc=0, b_itm=0)
    text = max(text_runs, key=lambda t: val_mean(text_runs[t]))
    selection["text_encoder"] = {t: val_mean(r) for t, r in text_runs.items()}
    fusion_runs = {f: runs_of(f"ce-{f}-{text}", text=text, fusion=f, b_itc=0, b_itm=0) for f in ("concat", "product")}
    fusion = max(fusion_runs, key=lambda f: val_mean(fusion_runs[f]))
    selection["fusion"] = {f: val_mean(r) for f, r in fusion_runs.items()}
    rows = {
        "text only": text_runs[text],
        "image only": runs_of(f"image-{text}", text=text, fusion="image", b_itc=0, b_itm=0),
        "CE fusion": fusion_runs[fusion],
        "+ITC": runs_of(f"itc-{fusion}-{text}", text=text, fusion=fusion, b_itc=0.1, b_itm=0),
        "+ITM": runs_of(f"itm-{fusion}-{text}", text=text, fusion=fusion, b_itc=0, b_itm=0.1),
        "+ITC+ITM": runs_of(f"itcitm-{fusion}-{text}", text=text, fusion=fusion, b_itc=0.1, b_itm=0.1),
    }
    rgcl = [run_one(runs / dataset / f"rgcl-{text}" / f"seed{seed}.json", "rgcl", table(text), **base,
                    text_encoder=text, seed=seed, fusion="product",
                    out=str(runs / dataset / f"rgcl-{text}" / f"seed{seed}")) for seed in seeds]
    rows["RGCL"] = rgcl
    rows["RGCL+RKC"] = [{**r, "val": r["val_rkc"], "test": r["test_rkc"]} for r in rgcl]
    extra = {}
    if dataset == "cm_memes":
        other = "e5" if text == "minilm" else "minilm"
        extra[f"text only ({other})"] = text_runs[other]
        extra[f"CE fusion ({other})"] = runs_of(f"ce-{fusion}-{other}", text=other, fusion=fusion, b_itc=0, b_itm=0)
    metrics = ["macro_f1", "auroc"] if len(table(text).labels) == 2 else ["macro_f1"]
    summary = {}
    for name, results in {**rows, **extra}.items():
        summary[name] = {m: mean_std([r["test"][m] for r in results]) for m in metrics}
        summary[name]["val_macro_f1"] = mean_std([r["val"]["macro_f1"] for r in results])
        summary[name]["best_epochs"] = [r["best_epoch"] for r in results]
    t = table(text)
    counts = {sp: int(len(t.rows(sp))) for sp in ("train", "val", "test")}
    return {"dataset": dataset, "task": t.task, "labels": list(t.labels), "counts": counts,
            "settings": s, "selection": {**selection, "chosen_text": text, "chosen_fusion": fusion},
            "metrics": metrics, "rows": summary}


def adaptation(data_root: Path, runs: Path, seeds: list[int], n_add: int) -> dict:
    """RKC on held-out mediaeval events: AUROC with vs without ``n_add`` of the event's labelled posts."""
    import torch

    from somelvlm.features.mm_table import build_table
    from somelvlm.train.multimodal import as_tensors, predict
    from somelvlm.train.rgcl import RGCLConfig, rkc_metrics, train

    s = SETTINGS["mediaeval2016"]
    t = build_table(data_root, "mediaeval2016", text="minilm", max_train=s["max_train"])
    data = as_tensors(t)
    train_rows = t.rows("train")
    out: dict = {"n_add": n_add, "events": {}}
    groups = np.array(t.group)
    image_key = np.array([hashlib.sha1(v.tobytes()).hexdigest()[:12] if h else f"none{i}"
                          for i, (v, h) in enumerate(zip(t.image, t.has_image))])
    per: dict = {}
    for seed in seeds:
        folder = runs / "mediaeval2016" / "rgcl-minilm" / f"seed{seed}"  # the ablation's RGCL models
        if (folder / "model.safetensors").is_file():
            from somelvlm.models.multimodal import load_classifier

            model, _ = load_classifier(folder)
        else:
            torch.manual_seed(seed)
            model = train(RGCLConfig(dataset="mediaeval2016", data_root=str(data_root), epochs=s["epochs"],
                                     batch_size=s["batch_size"], max_train=s["max_train"], seed=seed,
                                     out=str(folder)), table=t, log=lambda *a: None)["model"]
        _, g = predict(model, data, np.arange(len(t.ids)))
        for event in sorted(set(groups[t.rows("test")])):
            rows = np.flatnonzero(groups == event)
            rng = np.random.default_rng(1000 + seed)
            for variant in ("random", "new images"):
                if variant == "random":
                    add = rng.choice(rows, size=min(n_add, len(rows) // 2), replace=False)
                    scored = np.setdiff1d(rows, add)
                else:  # the added posts' images never appear among the scored posts
                    keys = rng.permutation(sorted(set(image_key[rows])))
                    half = set(keys[: len(keys) // 2])
                    pool = np.array([r for r in rows if image_key[r] in half])
                    add = rng.choice(pool, size=min(n_add, len(pool)), replace=False) if len(pool) else pool
                    scored = np.array([r for r in rows if image_key[r] not in half])
                if len(set(t.y[scored])) < 2 or len(add) == 0:
                    continue
                base = rkc_metrics(g[train_rows], t.y[train_rows], g[scored], t.y[scored], t.labels)
                mem = np.concatenate([train_rows, add])
                adapted = rkc_metrics(g[mem], t.y[mem], g[scored], t.y[scored], t.labels)
                probs, _ = predict(model, data, scored)
                from somelvlm.train.multimodal import classification_metrics

                head = classification_metrics(t.y[scored], probs, t.labels)
                key = f"{event} / {variant}"
                per.setdefault(key, {"without": [], "with": [], "head": [], "n_scored": int(len(scored)),
                                     "n_added": int(len(add)), "added_fake": int((t.y[add] == 1).sum())})
                per[key]["without"].append(base["auroc"])
                per[key]["with"].append(adapted["auroc"])
                per[key]["head"].append(head["auroc"])
    for key, v in per.items():
        out["events"][key] = {"n_scored": v["n_scored"], "n_added": v["n_added"], "added_fake": v["added_fake"],
                              "rkc_auroc_without": mean_std(v["without"]), "rkc_auroc_with": mean_std(v["with"]),
                              "head_auroc": mean_std(v["head"])}
    return out


def scores(by_name: dict) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in by_name.items())


def fmt(ms: dict) -> str:
    return "n/a" if ms["n"] == 0 else f"{ms['mean']:.1f} ± {ms['std']:.1f}"


def markdown(results: dict) -> str:
    from _machine import cpu_name

    lines = ["# Multimodal ablation (test split; mean ± std over seeds)", "",
             f"Machine: {cpu_name()}, {results['threads']} torch thread(s). Seeds: {results['seeds']}. "
             "Frozen EfficientNet-Lite0 (pooled) + sentence features; epoch, text encoder and fusion "
             "selected on val only. Produced by `python benchmarks/ablation.py`.", ""]
    for d in results["datasets"]:
        lines += [f"## {d['dataset']} ({d['task']}: {', '.join(d['labels'])})", "",
                  f"Posts train / val / test: {d['counts']['train']} / {d['counts']['val']} / {d['counts']['test']}"
                  f" (train capped at {d['settings']['max_train']}). Selected on val: text encoder "
                  f"**{d['selection']['chosen_text']}** ({scores(d['selection']['text_encoder'])}),"
                  f" fusion **{d['selection']['chosen_fusion']}** ({scores(d['selection']['fusion'])}).", ""]
        cols = ["macro-F1"] + (["AUROC"] if "auroc" in d["metrics"] else []) + ["val macro-F1", "best epochs"]
        lines += ["| row | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for name, r in d["rows"].items():
            cells = [fmt(r["macro_f1"])] + ([fmt(r["auroc"])] if "auroc" in d["metrics"] else [])
            cells += [fmt(r["val_macro_f1"]), ",".join(map(str, r["best_epochs"]))]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    if results.get("adaptation"):
        a = results["adaptation"]
        lines += ["## RKC adaptation: held-out mediaeval events, no retraining", "",
                  f"RGCL models trained on the training events; {a['n_add']} labelled posts of a held-out "
                  "event are added to the index; AUROC on the event's other posts.", "",
                  "| event / added posts | scored | added (fake) | RKC AUROC without | RKC AUROC with | head AUROC |",
                  "|---|---|---|---|---|---|"]
        for key, v in a["events"].items():
            lines.append(f"| {key} | {v['n_scored']} | {v['n_added']} ({v['added_fake']}) | "
                         f"{fmt(v['rkc_auroc_without'])} | {fmt(v['rkc_auroc_with'])} | {fmt(v['head_auroc'])} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", type=Path, default=Path(os.environ.get("SOMELVLM_DATA", "../shared/data")))
    parser.add_argument("--datasets", nargs="*", default=list(SETTINGS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--runs", type=Path, default=Path("/work/runs/mm/ablation"))
    parser.add_argument("--out", type=Path, default=HERE / "results" / "ablation")
    parser.add_argument("--adapt-n", type=int, default=40)
    parser.add_argument("--no-adapt", action="store_true")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    start = time.perf_counter()
    fresh = {dataset: ablate(dataset, args.data_root, args.runs, args.seeds) for dataset in args.datasets}
    adapted = None if args.no_adapt else adaptation(args.data_root, args.runs, args.seeds, args.adapt_n)
    # merge with what other invocations (other datasets) wrote, read only now: they may run in parallel
    previous = json.loads(args.out.with_suffix(".json").read_text()) if args.out.with_suffix(".json").is_file() else {}
    done = {**{d["dataset"]: d for d in previous.get("datasets", [])}, **fresh}
    results = {"seeds": args.seeds, "threads": 1, "datasets": [done[d] for d in SETTINGS if d in done],
               "adaptation": adapted or previous.get("adaptation")}
    results["seconds"] = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    args.out.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
