"""Loss curves of the LMM-RGCL runs behind the cross-domain protocol: the evidence the issue asks for when a
small CPU model does not show the method's effect.

    python benchmarks/lmm_rgcl_curves.py --source harm-c=runs/lmm-rgcl-bench/harm-c --source fhm=...

Reads each source's runs folder as ``benchmarks/lmm_rgcl.py`` leaves it (``lmm-seed<k>/stage1`` and
``stage2``, ``sft-seed<k>/stage1``, each with ``train_log.jsonl``) and writes
``results/lmm_rgcl_curves.{png,md,json}``: stage 1's LM and BCE terms (plain SFT: LM only) by step, stage 2's
RGCL and CE terms, the cosine of each meme's g with its mined positive and hard negative, and source-val
macro-F1 by epoch, per seed. Nothing is trained here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from somelvlm.atomic import atomic_write_text  # noqa: E402


def read_log(path: Path) -> list[dict]:
    """The rows of a ``train_log.jsonl`` (empty when the run has none)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def collect(folder: Path) -> dict:
    """``{seed: {"stage1": rows, "stage2": rows, "sft": rows}}`` for one source's runs folder."""
    out = {}
    for run in sorted(folder.glob("lmm-seed*")):
        seed = run.name.removeprefix("lmm-seed")
        out[seed] = {"stage1": read_log(run / "stage1" / "train_log.jsonl"),
                     "stage2": read_log(run / "stage2" / "train_log.jsonl"),
                     "sft": read_log(folder / f"sft-seed{seed}" / "stage1" / "train_log.jsonl")}
    return out


def plot(curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("stage 1: LM / BCE by step", "stage1", "step", ("lm", "bce")),
              ("plain SFT: LM by step", "sft", "step", ("lm",)),
              ("stage 2: RGCL / CE by epoch", "stage2", "epoch", ("train_rgcl", "train_ce")),
              ("stage 2: cos(g, positive) / cos(g, hard negative)", "stage2", "epoch", ("train_pos_sim", "train_neg_sim")),
              ("stage 2: source-val macro-F1 by epoch", "stage2", "epoch", ("val_macro_f1",))]
    fig, axes = plt.subplots(len(curves), len(panels), figsize=(4 * len(panels), 3.2 * len(curves)), squeeze=False)
    for r, (source, seeds) in enumerate(curves.items()):
        for c, (title, stage, x, keys) in enumerate(panels):
            ax = axes[r][c]
            for seed, logs in seeds.items():
                rows = logs[stage]
                for k, style in zip(keys, ("-", "--")):
                    pts = [(row[x], row[k]) for row in rows if k in row]
                    if pts:
                        ax.plot(*zip(*pts), style, label=f"{k} s{seed}")
            ax.set_title(f"{source}: {title}", fontsize=8)
            ax.set_xlabel(x, fontsize=7)
            ax.tick_params(labelsize=7)
            ax.legend(fontsize=5)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def first_last(rows: list[dict], key: str) -> str:
    vals = [row[key] for row in rows if key in row]
    return f"{vals[0]:.3f} → {vals[-1]:.3f}" if vals else "-"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", action="append", required=True, help="NAME=FOLDER (a source's runs folder)")
    p.add_argument("--out", type=Path, default=HERE / "results" / "lmm_rgcl_curves")
    args = p.parse_args(argv)
    curves = {name: collect(Path(folder)) for name, folder in (s.split("=", 1) for s in args.source)}
    for name, seeds in curves.items():
        if not seeds:
            raise SystemExit(f"{name}: no lmm-seed* runs under its folder")
    plot(curves, args.out.with_suffix(".png"))
    lines = ["# LMM-RGCL loss curves (CPU scale)", "",
             "`python benchmarks/lmm_rgcl_curves.py " + " ".join(f"--source {s}" for s in args.source) + "`. "
             f"Figure: `{args.out.with_suffix('.png').name}`. First → last logged value per seed (stage 1 logs every "
             "10 steps; stage 2 once per epoch).", "",
             "| source | seed | stage 1 LM | stage 1 BCE | SFT LM | stage 2 RGCL | stage 2 CE | cos(g, pos) | cos(g, hard neg) "
             "| source-val macro-F1 (stage 2) |", "|---|---:|---|---|---|---|---|---|---|---|"]
    for name, seeds in curves.items():
        for seed, logs in seeds.items():
            lines.append(f"| {name} | {seed} | {first_last(logs['stage1'], 'lm')} | {first_last(logs['stage1'], 'bce')} | "
                         f"{first_last(logs['sft'], 'lm')} | {first_last(logs['stage2'], 'train_rgcl')} | "
                         f"{first_last(logs['stage2'], 'train_ce')} | {first_last(logs['stage2'], 'train_pos_sim')} | "
                         f"{first_last(logs['stage2'], 'train_neg_sim')} | {first_last(logs['stage2'], 'val_macro_f1')} |")
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(curves, indent=1))
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
