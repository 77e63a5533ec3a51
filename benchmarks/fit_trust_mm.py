"""Fit applicability for the image+text heads (some-mini-mm) and measure it: each head gets a domain
classifier on its joint image+text features (``models.applicability.joint_features``), its training
posts against those of the other image datasets, threshold = the 5th percentile of its own
VALIDATION posts' scores. Only train and val choose anything; test splits are only scored.

    nice -n 10 python benchmarks/fit_trust_mm.py              # the shipped some-mini-mm
    nice -n 10 python benchmarks/fit_trust_mm.py --no-write   # measure only

Writes ``applicability.safetensors`` into each head's folder (atomically), ``results/applicability_mm.{json,md}``
and the same table as a section of ``results/quality.md`` and of the some-mini-mm card. Only posts with
an image count (the pipeline sends only those to an image+text head).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _trust_data import DATA

RESULTS = Path(__file__).resolve().parent / "results"


def features(table, split: str, cap: int, seed: int = 0) -> np.ndarray:
    """(n, 1280 + 384) joint features of the table's posts with an image in ``split`` (at most ``cap``)."""
    from somelvlm.models.applicability import joint_features

    rows = np.flatnonzero((table.split == split) & table.has_image)
    if len(rows) > cap:
        rows = np.sort(np.random.default_rng(seed).choice(rows, cap, replace=False))
    return joint_features(table.image[rows], table.text[rows])


def main(argv: list[str] | None = None) -> None:
    from somelvlm.features.mm_table import MM_DATASETS, build_table
    from somelvlm.models.applicability import Applicability, HeadDomain, fit_head, model_digest
    from somelvlm.models.mm_runtime import MM_ASSETS, head_meta

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from calibration import put_section

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=MM_ASSETS, help="a folder of image+text head folders")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--train-cap", type=int, default=1500, help="own training posts per head")
    ap.add_argument("--background", type=int, default=750, help="training posts of each other image dataset")
    ap.add_argument("--quantile", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-write", action="store_true", help="measure, but leave the model folders as they are")
    args = ap.parse_args(argv)

    heads = sorted(p for p in args.model.iterdir() if (p / "config.json").is_file() and (p / "model.safetensors").is_file())
    tables: dict[tuple[str, str], object] = {}

    def table(dataset: str, text: str):
        if (dataset, text) not in tables:
            print(f"features of {dataset} ({text})", file=sys.stderr, flush=True)
            tables[dataset, text] = build_table(args.data, dataset, text=text, num_threads=args.threads,
                                                max_train=max(args.train_cap, args.background))
        return tables[dataset, text]

    report: dict = {"quantile": args.quantile, "heads": {}}
    for folder in heads:
        meta = head_meta(folder)
        task, own_name = meta["task"], meta["dataset"]
        text = meta["encoders"]["text"].partition("|")[0]
        own = table(own_name, text)
        others = [d for d in MM_DATASETS if d != own_name]
        background = np.concatenate([features(table(d, text), "train", args.background) for d in others])
        weights, threshold = fit_head(features(own, "train", args.train_cap), background,
                                      features(own, "val", 10**9), quantile=args.quantile)
        app = Applicability(model_digest=model_digest(folder))
        app.weights[task] = weights
        app.heads[task] = HeadDomain(threshold=round(threshold, 6), quantile=args.quantile,
                                     n_train=min(args.train_cap, int(((own.split == "train") & own.has_image).sum())),
                                     n_val=int(((own.split == "val") & own.has_image).sum()),
                                     n_background=len(background), background=others,
                                     contrast="the other image datasets")
        flagged = {}
        for name in [own_name, *others]:
            x = features(table(name, text), "test", 10**9)
            flagged[name] = {"n": len(x), "flagged": round(100 * float((app.scores(task, x) < threshold).mean()), 1)}
        report["heads"][task] = {"folder": folder.name, "dataset": own_name, "threshold": round(threshold, 6),
                                 "background": others, "test": flagged}
        print(task, report["heads"][task], file=sys.stderr, flush=True)
        if not args.no_write:
            print(f"wrote {app.save(folder)}", file=sys.stderr)

    datasets = list(MM_DATASETS)
    lines = ["| head | trained on | " + " | ".join(f"{d} test" for d in datasets) + " |",
             "|---|---|" + "---:|" * len(datasets)]
    for task, r in report["heads"].items():
        cells = [f"**{r['test'][d]['flagged']}** (own)" if d == r["dataset"] else f"{r['test'][d]['flagged']}"
                 for d in datasets]
        lines.append(f"| {task} (image+text) | {r['dataset']} | " + " | ".join(cells) + " |")
    section = ("Share of posts with an image (%) each image+text head flags as out of its domain, on the TEST splits of "
               "the three image datasets here. Domain classifier: a logistic regression on the head's own frozen "
               "features (EfficientNet-Lite0 image vector and MiniLM text vector, each scaled to unit length, side by "
               "side), its training posts against the other two datasets' training posts; threshold: the "
               f"{100 * args.quantile:.0f}th percentile of its own validation posts' scores. Reproduce: "
               "`python benchmarks/fit_trust_mm.py`.\n\n" + "\n".join(lines) + "\n")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "applicability_mm.json").write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    (RESULTS / "applicability_mm.md").write_text("# Applicability of the image+text heads\n\n" + section, encoding="utf-8")
    title = "Applicability of the image+text heads (share of posts flagged out of domain)"
    put_section(RESULTS / "quality.md", title, section, name="applicability-mm")
    card = args.model / "README.md"
    if not args.no_write and card.is_file():
        put_section(card, title, section, name="applicability-mm")
    print(section)


if __name__ == "__main__":
    main()
