"""Every transfer pair of the LMM-RGCL cross-domain protocol in one table, with the issue's target per pair.

    python benchmarks/lmm_rgcl_pairs.py        # reads results/lmm_rgcl*.json, writes results/lmm_rgcl_pairs.{json,md}

Target (issue 16): with RKC and 50 target-domain memes, beat the frozen-feature RGCL (its best row) and
the zero-shot LMM by >= 5 AUROC points, on at least two pairs. Nothing is run here: each pair's numbers
come from the run that wrote its results file (the command is at the top of that file).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from lmm_rgcl import verdict  # noqa: E402

from somelvlm.atomic import atomic_write_text  # noqa: E402

RUNS = ["lmm_rgcl", "lmm_rgcl_harm_p_harm_c", "lmm_rgcl_fhm_mami_multioff", "lmm_rgcl_fhm_cm_memes",
        "lmm_rgcl_harm_c_more", "lmm_rgcl_fhm_more"]
"""Results files of the protocol, in the order they were run (``results/<name>.json``)."""


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", nargs="+", default=RUNS)
    p.add_argument("--out", type=Path, default=HERE / "results" / "lmm_rgcl_pairs")
    args = p.parse_args(argv)
    pairs = {}
    for name in args.runs:
        path = HERE / "results" / f"{name}.json"
        if not path.is_file():
            print(f"{path}: missing, skipped", file=sys.stderr)
            continue
        res = json.loads(path.read_text())
        for pair, r in res["pairs"].items():
            seeds = len(r["per_seed"])
            pairs[pair] = {"file": f"results/{name}.md", "seeds": seeds, "steps": res["args"]["steps"],
                           "max_train": res["args"]["max_train"], **verdict(r["summary"]["target"])}
    met = [p for p, v in pairs.items() if v["met"]]
    lines = ["# LMM-RGCL: every transfer pair against the cross-domain target", "",
             "`python benchmarks/lmm_rgcl_pairs.py`. AUROC on the target domain's test memes, mean over seeds. Target: "
             "RKC with 50 target memes >= 5 points over both the zero-shot LMM and the best row of the frozen-feature "
             "RGCL floor (its MLP, its RKC, its RKC + 50 target memes), on at least two pairs.", "",
             f"Pairs meeting it: **{len(met)} of {len(pairs)}**" + (f" ({', '.join(met)})." if met else "."), "",
             "| pair | RKC + 50 | zero-shot | best floor (row) | over zero-shot | over floor | met | seeds | steps / memes | file |",
             "|---|---:|---:|---|---:|---:|---|---:|---|---|"]
    for pair, v in pairs.items():
        if v.get("met") is None:
            lines.append(f"| {pair} | | | | | | not measurable | {v['seeds']} | {v['steps']} / {v['max_train']} | {v['file']} |")
            continue
        lines.append(f"| {pair} | {v['rkc50']:.1f} | {v['zero_shot']:.1f} | {v['floor']:.1f} ({v['floor_row']}) | "
                     f"{v['over_zero_shot']:+.1f} | {v['over_floor']:+.1f} | {'**yes**' if v['met'] else 'no'} | "
                     f"{v['seeds']} | {v['steps']} / {v['max_train']} | {v['file']} |")
    atomic_write_text(args.out.with_suffix(".json"), json.dumps({"pairs": pairs, "met": met}, indent=1))
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
