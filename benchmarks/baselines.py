"""Every shipped head beside the trivial baselines: majority class and stratified random guessing.

    nice -n 10 python benchmarks/baselines.py [--data-root ../shared/data] [--val-cap 5000] [--ship]
    python benchmarks/baselines.py --reuse [--ship]    # rewrite the tables (and configs) from baselines.json

Baselines are sklearn ``DummyClassifier`` fit on the head's TRAIN labels (``most_frequent``;
``stratified`` with seeds 0-4, the score averaged over the five), per stance target for the per-target
head, and ``DummyRegressor`` (train mean) for rating heads; scored with the head's primary metric on
its VAL and TEST splits (the same items the model card uses: ``data.head_items`` for some-mini, the
image datasets for some-mini-mm).

The head's own scores: TEST from ``benchmarks/results/quality.json`` (some-mini, default runtime) and
the heads' ``config.json`` (some-mini-mm); VAL measured here through the one Pipeline (some-mini;
at most ``--val-cap`` items per task, a fixed sample, the baselines on the same items) or read from
``config.json`` (some-mini-mm).

Decision rule (VALIDATION only): a head is withheld when its val primary metric does not beat BOTH
baselines' val scores by more than the val posts' sampling noise: a paired bootstrap (``_bootstrap.py``,
1,000 resamples of the val posts, the same resample for head and baseline) of head minus baseline
must have its 95% interval above 0 (below 0 for RMSE). ``--ship`` writes ``withheld`` (task -> reason) into the model folders'
``config.json`` (the Pipeline then does not serve those heads by default). Test is reported, never used
to decide. Writes benchmarks/results/baselines.{json,md} and a section of quality.md and of each card.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SEEDS = (0, 1, 2, 3, 4)
BOOTSTRAP = 1000
sys.path.insert(0, str(HERE))


def dummy_predictions(spec, train: list, items: list) -> dict:
    """The baselines' answers on ``items``: ``{"majority": (n,), "stratified": [(n,) per seed]}``, class
    indices (per stance target for the per-target head) or, for ratings, the train mean (no stratified).

    ``train`` / ``items``: ``(target, group)`` pairs (group -1 when the head has no targets)."""
    from sklearn.dummy import DummyClassifier, DummyRegressor

    if spec.kind == "regression":
        mean = DummyRegressor(strategy="mean").fit(np.zeros((len(train), 1)), [t for t, _ in train])
        return {"majority": mean.predict(np.zeros((len(items), 1))), "stratified": []}

    def predict(strategy: str, seed: int) -> np.ndarray:
        pred = np.zeros(len(items), dtype=int)
        for g in sorted({g for _, g in items}):
            tr = [t for t, gg in train if gg == g]
            te = [k for k, (_, gg) in enumerate(items) if gg == g]
            clf = DummyClassifier(strategy=strategy, random_state=seed).fit(np.zeros((len(tr), 1)), tr)
            pred[te] = clf.predict(np.zeros((len(te), 1)))
        return pred

    return {"majority": predict("most_frequent", 0), "stratified": [predict("stratified", s) for s in SEEDS]}


def as_outputs(spec, pred: np.ndarray) -> np.ndarray:
    """Head-shaped outputs of predictions: one-hot (n, labels) of class indices; ratings unchanged."""
    return pred if spec.kind == "regression" else np.eye(len(spec.labels), dtype=np.float32)[pred]


def dummy_scores(task: str, spec, train: list, items: list, key: str | None = None) -> dict:
    """``{"majority": score, "stratified": mean over SEEDS, "stratified_runs": [...]}`` on ``items``, by
    the metric ``key`` (default the task's primary)."""
    from somelvlm.evaluate.metrics import head_metrics, metric_key
    from somelvlm.taxonomy.registry import get_task

    key = key or metric_key(get_task(task).primary_metric)
    gold = [t for t, _ in items]
    preds = dummy_predictions(spec, train, items)
    majority = head_metrics(task, spec, gold, as_outputs(spec, preds["majority"]))[key]
    if spec.kind == "regression":
        return {"majority": round(majority, 3), "stratified": None, "majority_is": "train mean"}
    runs = [head_metrics(task, spec, gold, as_outputs(spec, p))[key] for p in preds["stratified"]]
    return {"majority": round(majority, 2), "stratified": round(float(np.mean(runs)), 2),
            "stratified_runs": [round(r, 2) for r in runs]}


def intervals(task: str, spec, train: list, items: list, head_out: np.ndarray, metric=None) -> dict:
    """Paired bootstrap (``_bootstrap.head_paired``, BOOTSTRAP resamples of ``items``) of the head's
    metric minus each baseline's: ``{"majority": {"diff", "ci95"}, "stratified": ...}`` (the stratified
    guesser's metric averaged over its seeds on each resample). ``head_out``: the head's outputs on
    ``items`` ((n, labels), each post's own target's row; or (n,) ratings); ``metric``: a ``Metric``
    (default the task's primary)."""
    from _bootstrap import head_paired

    gold = [t for t, _ in items]
    preds = dummy_predictions(spec, train, items)
    out = {"majority": head_paired(task, spec, gold, head_out, [as_outputs(spec, preds["majority"])], metric, BOOTSTRAP)}
    if preds["stratified"]:
        out["stratified"] = head_paired(task, spec, gold, head_out, [as_outputs(spec, p) for p in preds["stratified"]],
                                        metric, BOOTSTRAP)
    return out


def clearly(ci: dict, lower_is_better: bool) -> bool:
    """Every baseline's 95% interval of (head - baseline) lies on the better side of 0."""
    return all(c["ci95"][1] < 0 if lower_is_better else c["ci95"][0] > 0 for c in ci.values())


def beats(value: float | None, base: dict, lower_is_better: bool) -> bool:
    """Whether ``value`` is strictly better than every baseline in ``base``."""
    others = [v for k, v in base.items() if k in ("majority", "stratified") and v is not None]
    if value is None:
        return False
    return all(value < o if lower_is_better else value > o for o in others)


def pairs(items: list) -> list[tuple]:
    """``(target, group)`` of head items."""
    return [(it.target, it.group) for it in items]


def compact_rows(data_root: Path, val_cap: int, threads: int) -> dict:
    """Rows of some-mini's heads: val measured here, test from quality.json, baselines on both."""
    from somelvlm.data.head_items import cap, load_items
    from somelvlm.evaluate.harness import head_outputs
    from somelvlm.evaluate.metrics import get_metric, head_metrics, metric_key
    from somelvlm.pipeline import Pipeline
    from somelvlm.taxonomy.registry import get_task
    from somelvlm.taxonomy.task import Metric

    pipe = Pipeline("some-mini", multimodal=False, withheld=True, threads=threads)
    tasks = list(pipe.classifier.specs)
    quality = json.loads((RESULTS / "quality.json").read_text(encoding="utf-8"))["ours"]["tasks"]
    data = load_items(data_root, tasks)
    rows = {}
    for task in tasks:
        spec = pipe.spec(task)
        m = get_task(task).primary_metric
        key = metric_key(m)
        train = pairs(data[task].get("train", []))
        val_items = cap(data[task].get("val", []), val_cap, seed=0)
        val_out = head_outputs(pipe, task, val_items)  # what `somelvlm eval --split val` scores
        val = {k: round(v, 2) for k, v in head_metrics(task, spec, [it.target for it in val_items], val_out).items()}
        row = {"model": "some-mini", "metric": key, "lower_is_better": not get_metric(m.name).higher_is_better,
               "test": {"head": quality.get(task, {}).get(key), "n": quality.get(task, {}).get("n"),
                        **dummy_scores(task, spec, train, pairs(data[task].get("test", [])))},
               "val": {"head": val.get(key), "n": len(val_items), **dummy_scores(task, spec, train, pairs(val_items)),
                       "paired": intervals(task, spec, train, pairs(val_items), val_out)}}
        if m.labels:  # a one-class F1 (irony, sarcasm, stance): also macro-F1 over all classes
            for split, source, items in (("val", {task: val}, val_items), ("test", quality, data[task].get("test", []))):
                row[split]["macro_f1"] = {"head": source.get(task, {}).get("macro_f1"),
                                          **dummy_scores(task, spec, train, pairs(items), key="macro_f1")}
            row["val"]["macro_f1"]["paired"] = intervals(task, spec, train, pairs(val_items), val_out, Metric("macro_f1"))
        rows[task] = row
        print(task, row, flush=True)
    return rows


def mm_rows(data_root: Path, threads: int) -> dict:
    """Rows of some-mini-mm's heads: test from config.json; val measured here through the Pipeline's
    image+text route on the val posts with an image (as ``image_helps.py`` reads them), the baselines on
    the same posts."""
    from image_helps import image_posts

    from somelvlm.evaluate.metrics import head_metrics
    from somelvlm.features.mm_table import load_examples
    from somelvlm.models.mm_runtime import MM_ASSETS
    from somelvlm.pipeline import Pipeline
    from somelvlm.taxonomy.heads import head_spec

    pipe = Pipeline("some-mini", threads=threads, withheld=True)
    pipe.image_heads.image_helps = {t: True for t in pipe.image_heads.specs}  # the image+text route, always
    rows = {}
    for folder in sorted(p for p in MM_ASSETS.glob("*") if (p / "config.json").is_file()):
        meta = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        task, spec = meta["task"], head_spec(meta["task"])
        labels = list(meta["labels"])
        examples = load_examples(data_root, meta["dataset"])
        def split(name: str, labels=labels, examples=examples) -> list[tuple]:
            return [(labels.index(e.target), -1) for e in examples if e.split == name]

        posts, gold, _ = image_posts(data_root, task, "val")
        val_out = pipe.head_probs([pipe.read(p)[0] for p in posts], task)
        val_items = [(g, -1) for g in gold]
        rows[task] = {"model": "some-mini-mm", "metric": "macro_f1", "lower_is_better": False,
                      "test": {"head": round(meta["test"]["macro_f1"], 2), "n": len(split("test")),
                               **dummy_scores(task, spec, split("train"), split("test"))},
                      "val": {"head": round(head_metrics(task, spec, gold, val_out)["macro_f1"], 2), "n": len(gold),
                              **dummy_scores(task, spec, split("train"), val_items),
                              "paired": intervals(task, spec, split("train"), val_items, val_out)}}
        print(task, rows[task], flush=True)
    return rows


def split_beats(r: dict, split: str) -> bool:
    """The head beats both baselines on ``split`` by its primary metric, or, where that metric scores only
    some classes (F1 of the ironic / sarcastic class, of favor and against), by macro-F1 over all classes:
    always answering the common positive class can top a one-class F1 without telling classes apart."""
    s = r[split]
    if beats(s["head"], s, r["lower_is_better"]):
        return True
    return "macro_f1" in s and beats(s["macro_f1"]["head"], s["macro_f1"], False)


def clearly_beats_val(r: dict) -> bool:
    """Like ``split_beats`` on val, by a margin beyond the sampling noise of the val posts: each
    baseline's paired 95% interval of (head - baseline) excludes 0, on the primary metric or (one-class
    F1 primaries) on macro-F1."""
    v = r["val"]
    if clearly(v["paired"], r["lower_is_better"]):
        return True
    return "macro_f1" in v and clearly(v["macro_f1"]["paired"], False)


def decide(rows: dict) -> None:
    """Add ``beats_val``, ``clearly_val``, ``beats_test`` and ``withheld`` (decided on val) to every row."""
    for r in rows.values():
        r["beats_val"] = split_beats(r, "val")
        r["clearly_val"] = r["beats_val"] and clearly_beats_val(r)
        r["beats_test"] = split_beats(r, "test")
        r["withheld"] = not r["clearly_val"]
        if r["withheld"]:
            v = r["val"]
            strat = "" if v["stratified"] is None else f", stratified {v['stratified']}"
            also = (f"; macro-F1 {v['macro_f1']['head']} vs {v['macro_f1']['majority']} / {v['macro_f1']['stratified']}"
                    if "macro_f1" in v else "")
            ci = "; ".join(f"{b} {c['diff']:+.2f} [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}]" for b, c in v["paired"].items())
            verdict = "does not beat" if not r["beats_val"] else "is not clearly above (95% interval of the difference includes 0)"
            r["reason"] = (f"on validation its {r['metric']} {v['head']} {verdict} the majority ({v['majority']})"
                           f"{strat} baselines{also}; head - baseline: {ci} (benchmarks/results/baselines.md)")


def fmt(x) -> str:
    return "-" if x is None else f"{x:.2f}" if isinstance(x, float) else str(x)


def val_verdict(r: dict) -> str:
    """The val column: clearly above both baselines, above within the noise (the closest interval), or not."""
    if r.get("clearly_val", r["beats_val"]):
        return "yes"
    if not r["beats_val"]:
        return "**no**"
    paired = r["val"]["paired"]
    b = min(paired, key=lambda k: paired[k]["ci95"][0] if not r["lower_is_better"] else -paired[k]["ci95"][1])
    c = paired[b]
    return f"**within noise**: vs {b} {c['diff']:+.2f} [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}]"


def table(rows: dict) -> str:
    lines = ["| model | head | metric | n test | test: head | majority | stratified (5 seeds) | beats both (test) | "
             "val: head | majority | stratified | beats both (val; paired 95% interval) | served |",
             "|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---|---|"]
    for task, r in rows.items():
        t, v = r["test"], r["val"]
        lines.append(f"| {r['model']} | {task} | {r['metric']} | {fmt(t['n'])} | **{fmt(t['head'])}** | {fmt(t['majority'])} | "
                     f"{fmt(t['stratified'])} | {'yes' if r['beats_test'] else '**no**'} | {fmt(v['head'])} | "
                     f"{fmt(v['majority'])} | {fmt(v['stratified'])} | {val_verdict(r)} | "
                     f"{'**withheld**' if r['withheld'] else 'yes'} |")
        if "macro_f1" in t:
            tm, vm = t["macro_f1"], v["macro_f1"]
            lines.append(f"| | ↳ same head | macro_f1 | | {fmt(tm['head'])} | {fmt(tm['majority'])} | {fmt(tm['stratified'])} "
                         f"| | {fmt(vm['head'])} | {fmt(vm['majority'])} | {fmt(vm['stratified'])} | | |")
    return "\n".join(lines)


def markdown(result: dict) -> str:
    rows = result["heads"]
    withheld = [f"{r['model']}/{t}" for t, r in rows.items() if r["withheld"]]
    fail_test = [f"{r['model']}/{t}" for t, r in rows.items() if not r["beats_test"]]
    return "\n".join([
        "Each head's primary metric beside two trivial baselines fit on its TRAIN labels: majority class "
        "(`DummyClassifier(strategy='most_frequent')`; train mean for ratings, scored by RMSE, lower is better) and "
        "stratified random guessing (`strategy='stratified'`, averaged over seeds 0-4); per stance target for the "
        "per-target head. some-mini test scores: `quality.json` (default runtime); its val scores measured by "
        f"`benchmarks/baselines.py` through the Pipeline (at most {result['val_cap']} items per task, the baselines "
        "on the same items). some-mini-mm: test from its config.json, val measured through the Pipeline's image+text "
        "route on the val posts with an image. Rule, on VALIDATION only: a head that does not beat both baselines "
        "on val by more than the val posts' sampling noise (a paired bootstrap of the head minus each baseline on the "
        f"same val posts, {BOOTSTRAP} resamples: its 95% interval must exclude 0) is **withheld** (`withheld` in its "
        "model's config.json: not "
        "served by default; naming its task says why; `withheld=True` / `--withheld` serves it anyway). Where the "
        "primary metric is the F1 of some classes only (irony, sarcasm, stance), beating both baselines on macro-F1 "
        "over all classes (the ↳ row) also counts: always answering the common positive class tops a one-class F1 "
        "without telling classes apart. A task whose text head is withheld but whose image+text head serves is "
        "answered on posts with an image; a post without one gets a `withheld` record naming why. "
        "Reproduce: `nice -n 10 python benchmarks/baselines.py --ship`.", "",
        table(rows), "",
        f"Withheld (val): {', '.join(withheld) or 'none'}. Below a baseline on test: {', '.join(fail_test) or 'none'}.",
        "",
        "Caveat: val is also where each head's epoch was chosen (some-mini: by the mean over all its heads; "
        "some-mini-mm: per head), so val scores lean high, most for the image+text heads; test is the honest "
        "number, reported but never used to decide.", ""])


def write_sections(result: dict) -> None:
    """The table as a section of quality.md and of both cards (their rows only)."""
    from calibration import put_section

    from somelvlm.models.compact import ASSETS

    md = markdown(result)
    put_section(RESULTS / "quality.md", "Baselines beside every head (majority, stratified)", md, name="baselines")
    for model in ("some-mini", "some-mini-mm"):
        own = {t: r for t, r in result["heads"].items() if r["model"] == model}
        put_section(ASSETS / model / "README.md", "Baselines beside every head (majority, stratified)",
                    markdown({**result, "heads": own}), name="baselines")


def ship(result: dict) -> None:
    """``withheld`` (task -> reason) into each model folder's config.json (the heads decided on val)."""
    from somelvlm.atomic import atomic_write_text
    from somelvlm.models.compact import ASSETS

    for model in ("some-mini", "some-mini-mm"):
        path = ASSETS / model / "config.json"
        config = json.loads(path.read_text(encoding="utf-8"))
        withheld = {r["task"]: r["reason"] for r in result["heads"].values() if r["model"] == model and r["withheld"]}
        if withheld:
            config["withheld"] = withheld
        else:
            config.pop("withheld", None)
        atomic_write_text(path, json.dumps(config, indent=1) + "\n")
        print("wrote", path, "withheld:", sorted(withheld))


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", type=Path, default=Path(os.environ.get("SOMELVLM_DATA", "../shared/data")))
    ap.add_argument("--val-cap", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ship", action="store_true", help="write the val decision (withheld) into the config.json files")
    ap.add_argument("--reuse", action="store_true", help="do not measure: rewrite the outputs from baselines.json")
    args = ap.parse_args(argv)
    from somelvlm.atomic import atomic_write_text

    if args.reuse:
        result = json.loads((RESULTS / "baselines.json").read_text(encoding="utf-8"))
    else:
        root = args.data_root.resolve()
        heads = {**compact_rows(root, args.val_cap, args.threads)}
        mm = mm_rows(root, args.threads)
        heads.update({f"{t} (image+text)" if t in heads else t: r for t, r in mm.items()})
        decide(heads)
        for name in list(heads):  # keep the task id as the key the config uses
            heads[name]["task"] = name.removesuffix(" (image+text)")
        result = {"seeds": list(SEEDS), "val_cap": args.val_cap,
                  "rule": "withheld = not (val head > majority and > stratified, by the primary metric or, for "
                          "one-class F1 primaries, by macro-F1, with each paired bootstrap 95% interval of the "
                          "difference on the val posts above 0)",
                  "bootstrap": BOOTSTRAP,
                  "heads": heads}
    RESULTS.mkdir(exist_ok=True)
    atomic_write_text(RESULTS / "baselines.json", json.dumps(result, indent=1) + "\n")
    atomic_write_text(RESULTS / "baselines.md", "# Heads beside trivial baselines\n\n" + markdown(result))
    write_sections(result)
    if args.ship:
        ship(result)
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
