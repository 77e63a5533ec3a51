"""Which of two some-mini models to ship, decided on VALIDATION: compare their final head selections.

Each input is a ``head_select.py`` results file (``.json``) of one model after its last selection
round: per head, the validation and test score of the head it keeps (trained or refit). The model
with the higher mean validation primary metric over the classification heads wins; the rating heads
(RMSE, lower is better) and the TweetEval five-task val average are reported beside it, and test is
reported, never used.

    python benchmarks/compare_heads.py benchmarks/results/head_select_all.json RUN/select-3.json \\
        --names "epoch 1 (shipped)" "epoch 2" --out benchmarks/results/finish_schedule
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

FIVE = ("emotion", "hate", "irony", "offensive", "stance")


def kept(row: dict, split: str) -> float:
    """The score on ``split`` of the head a selection round kept."""
    return row["refit"][split] if row["chosen"] == "refit" else row["shipped"][split]


def summary(rows: dict) -> dict:
    """Mean val / test primary over the classification heads, TweetEval five, and the ratings' RMSE."""
    cls = [t for t, r in rows.items() if not r["lower_is_better"]]
    five = [t for t in FIVE if t in rows]
    return {s: {"classification_mean": round(float(np.mean([kept(rows[t], s) for t in cls])), 2),
                "tweeteval_five": round(float(np.mean([kept(rows[t], s) for t in five])), 2) if five else None,
                "rating_rmse": {t: kept(r, s) for t, r in rows.items() if r["lower_is_better"]}}
            for s in ("val", "test")}


def compare(a: dict, b: dict, names: tuple[str, str]) -> tuple[dict, list[str]]:
    """``(result, markdown lines)``: per head and on average, ``b`` against ``a``; b wins on val mean."""
    tasks = [t for t in a if t in b]
    sa, sb = summary({t: a[t] for t in tasks}), summary({t: b[t] for t in tasks})
    winner = names[1] if sb["val"]["classification_mean"] > sa["val"]["classification_mean"] else names[0]
    better = [t for t in tasks if (kept(b[t], "val") < kept(a[t], "val")) == a[t]["lower_is_better"]
              and kept(b[t], "val") != kept(a[t], "val")]
    lines = [f"| head | val: {names[0]} → {names[1]} | test: {names[0]} → {names[1]} |", "|---|---:|---:|"]
    for t in tasks:
        lines.append(f"| {t} | {kept(a[t], 'val')} → {kept(b[t], 'val')} | {kept(a[t], 'test')} → {kept(b[t], 'test')} |")
    lines += ["", f"| average | val: {names[0]} | val: {names[1]} | test: {names[0]} | test: {names[1]} |",
              "|---|---:|---:|---:|---:|"]
    for key, label in (("classification_mean", f"{sum(not a[t]['lower_is_better'] for t in tasks)} classification heads"),
                       ("tweeteval_five", "TweetEval five")):
        lines.append(f"| {label} | {sa['val'][key]} | {sb['val'][key]} | {sa['test'][key]} | {sb['test'][key]} |")
    for t in sa["val"]["rating_rmse"]:
        lines.append(f"| {t} (RMSE) | {sa['val']['rating_rmse'][t]} | {sb['val']['rating_rmse'][t]} | "
                     f"{sa['test']['rating_rmse'][t]} | {sb['test']['rating_rmse'][t]} |")
    lines += ["", f"{names[1]} is better on val for {len(better)} of {len(tasks)} heads. Chosen on the val mean of "
              f"the classification heads: **{winner}**."]
    return {"names": list(names), names[0]: sa, names[1]: sb, "better_on_val": better, "chosen": winner}, lines


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path, help="head_select results (.json) of the model shipped now")
    ap.add_argument("b", type=Path, help="head_select results (.json) of the candidate")
    ap.add_argument("--names", nargs=2, default=("shipped", "candidate"))
    ap.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    ap.add_argument("--title", default="Which model to ship, decided on validation")
    ap.add_argument("--intro", default="", help="a paragraph under the title: what the two models are")
    args = ap.parse_args(argv)
    load = lambda p: json.loads(p.read_text(encoding="utf-8"))  # noqa: E731
    result, lines = compare(load(args.a), load(args.b), tuple(args.names))
    head = [f"# {args.title}", ""] + ([args.intro, ""] if args.intro else []) + [
        f"Inputs: `{args.a}` ({args.names[0]}) and `{args.b}` ({args.names[1]}), each a `head_select.py` "
        "results file after the model's last selection round (the kept head per task). Val decides; test "
        "(at most 1,500 posts per head) is reported, never used.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    args.out.with_suffix(".md").write_text("\n".join(head + lines) + "\n", encoding="utf-8")
    print("\n".join(head + lines))
    return result


if __name__ == "__main__":
    main()
