"""Calibration of the compact model's classification heads on TEST: expected calibration error (15 bins,
top label) and NLL before (raw softmax) and after (the validation-fit temperatures of calibration.json).

    nice -n 10 python benchmarks/calibration.py                  # the shipped some-mini
    nice -n 10 python benchmarks/calibration.py --test-cap 1500

Writes benchmarks/results/calibration.{json,md}, and the same table as a section of
benchmarks/results/quality.md and of the model folder's card (card.md or README.md). The temperatures
come from benchmarks/fit_trust.py (train / val only); this script only scores the test split.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _trust_data import DATA, EmbeddingStore, load_head_items, sample

RESULTS = Path(__file__).resolve().parent / "results"


def head_probs(model, task: str, emb: np.ndarray, items: list, calibrated: bool) -> np.ndarray:
    """(n, labels) probabilities of each item's own distribution (its target's, for stance)."""
    import torch

    from somelvlm.models.calibration import softmax

    spec = model.specs[task]
    with torch.inference_mode():
        z = model.net.head(task, torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32))).numpy()
    if calibrated and model.calibration is not None:
        z = model.calibration.scale(task, z, spec.groups)
    if spec.groups:
        z = z[np.arange(len(items)), [it.group for it in items]]  # (n, labels)
    return softmax(z.astype(np.float64))


def measure(model, store, items: dict, cap: int, seed: int) -> dict:
    from somelvlm.models.calibration import expected_calibration_error, nll

    rows = {}
    for task in model.tasks:
        if model.specs[task].kind != "classification":
            continue
        chosen = sample(items[task].get("test", []), cap, seed)
        if not chosen:
            continue
        emb = store([it.text for it in chosen])
        y = np.array([int(it.target) for it in chosen])
        row = {"n": len(chosen), "n_available": len(items[task]["test"])}
        for name, cal in (("before", False), ("after", True)):
            p = head_probs(model, task, emb, chosen, cal)
            row[f"ece_{name}"] = round(100 * expected_calibration_error(p, y), 2)
            row[f"nll_{name}"] = round(nll(np.log(np.clip(p, 1e-12, 1)), y), 4)
            row[f"confidence_{name}"] = round(100 * float(p.max(axis=1).mean()), 1)
        row["accuracy"] = round(100 * float((p.argmax(axis=1) == y).mean()), 1)
        t = (model.calibration.temperatures.get(task) if model.calibration else None)
        row["temperature"] = t
        rows[task] = row
    return rows


def markdown(rows: dict, model_name: str) -> str:
    big = [r for r in rows.values() if r["n"] >= 500]
    lines = [
        f"ECE (%, 15 equal-width bins, top label) of {model_name}'s classification heads on their TEST split "
        "(up to the cap shown in n), before (raw softmax) and after temperature scaling fit on VALIDATION only "
        "(`benchmarks/fit_trust.py`; stance: one temperature per target). Labels do not change; accuracy is "
        "the same before and after. Reproduce: `python benchmarks/fit_trust.py && python benchmarks/calibration.py`.",
        "",
        "| head | n test | T | accuracy | mean confidence before → after | ECE before | ECE after | NLL before | NLL after |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for task, r in rows.items():
        t = r["temperature"]
        t = "per target" if isinstance(t, dict) else ("1 (none)" if t is None else f"{t:.2f}")
        lines.append(f"| {task} | {r['n']} | {t} | {r['accuracy']} | {r['confidence_before']} → {r['confidence_after']} | "
                     f"{r['ece_before']} | **{r['ece_after']}** | {r['nll_before']} | {r['nll_after']} |")
    if big:
        under = sum(r["ece_after"] <= 5 for r in big)
        lines += ["", f"Heads with >= 500 test items: {len(big)}; ECE <= 5 after calibration on {under} of them "
                      f"(before: {sum(r['ece_before'] <= 5 for r in big)}). Mean ECE over all heads: "
                      f"{np.mean([r['ece_before'] for r in rows.values()]):.2f} before, "
                      f"{np.mean([r['ece_after'] for r in rows.values()]):.2f} after."]
        worse = [t for t, r in rows.items() if r["ece_after"] > r["ece_before"]]
        if worse:
            lines.append(f"ECE rose on test for: {', '.join(worse)} (the val-fit temperature does not transfer "
                         "to those test splits; their val and test distributions differ).")
    return "\n".join(lines) + "\n"


def put_section(path: Path, title: str, body: str, name: str = "calibration") -> None:
    """Replace (or append) the section between ``<!-- name:begin -->`` and ``<!-- name:end -->`` of a
    markdown file, atomically; the rest of the file is kept."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    section = f"{begin}\n## {title}\n\n{body}{end}\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        rest = rest.split(end, 1)[1].lstrip("\n")
        text = head + section + ("\n" + rest if rest else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    from somelvlm.models.applicability import model_digest
    from somelvlm.models.compact import ASSETS, CompactModel

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=ASSETS / "some-mini")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--test-cap", type=int, default=1500, help="test items per head (a fixed random subset)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-card", action="store_true", help="do not write the section into the model card")
    args = ap.parse_args(argv)

    model = CompactModel(args.model, threads=args.threads)
    if model.calibration is None:
        sys.exit(f"{args.model} has no calibration.json: run benchmarks/fit_trust.py --model {args.model} first")
    store = EmbeddingStore(model, model_digest(args.model))
    rows = measure(model, store, load_head_items(args.data, model.tasks), args.test_cap, args.seed)
    RESULTS.mkdir(exist_ok=True)
    name = args.model.name
    (RESULTS / "calibration.json").write_text(json.dumps(
        {"model": name, "split": "test", "bins": 15, "test_cap": args.test_cap, "seed": args.seed,
         "temperatures_fit_on": "val", "heads": rows}, indent=1) + "\n", encoding="utf-8")
    md = markdown(rows, name)
    (RESULTS / "calibration.md").write_text(f"# Calibration ({name}, test split)\n\n{md}", encoding="utf-8")
    put_section(RESULTS / "quality.md", f"Calibration ({name}, ECE on test before / after)", md)
    if not args.no_card:
        card = next((args.model / n for n in ("README.md", "card.md") if (args.model / n).is_file()), None)
        if card is not None:
            put_section(card, "Calibration (ECE on test, before / after temperature scaling)", md)
    print(md)


if __name__ == "__main__":
    main()
