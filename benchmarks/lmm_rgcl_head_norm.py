"""Why LMM-RGCL's stage-2 embeddings g collapsed, and which head input fixes it, chosen on VALIDATION.

    nice -n 10 python benchmarks/lmm_rgcl_head_norm.py --stage1 RUN/stage1/model --source harm-c

1. **Diagnosis**: h (the frozen stage-1 LMM's last hidden state at the last prompt token) of the
   source's training memes: cosine between memes raw and after removing the training mean, the share of
   the mean squared norm held by the mean vector, by the top 1 / 3 / 10 channels, per-channel std
   spread; then g of the saved stage-1 head and of fresh heads.
2. **Selection**: a fresh head is trained by stage 2's loop (``train.lmm_rgcl.train_head_rgcl``:
   RGCL hybrid loss, index of g rebuilt each epoch) on h of the training memes, for every head input
   (``norm``: none / layer / standard; ``embed``: g after / before the GELU; ``pool``: the last prompt
   token / the mean over the prompt tokens), seeds 0-2. Reported: source-val AUROC and macro-F1 at the
   LAST epoch (no epoch picked on the numbers reported), and the g cosine statistics (mean cosine of
   every meme with its mined positive / hard negative, between all training memes).
   Target-domain memes are never read here.

Writes benchmarks/results/lmm_rgcl_head_norm.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from somelvlm.atomic import atomic_write_text

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))


def say(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def cosine_stats(x: np.ndarray) -> dict[str, float]:
    """Mean / 5th percentile / min cosine over all pairs of rows of x (n, d)."""
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    c = (x @ x.T)[np.triu_indices(len(x), 1)]
    return {"mean": round(float(c.mean()), 4), "p5": round(float(np.percentile(c, 5)), 4), "min": round(float(c.min()), 4)}


def h_anatomy(h: np.ndarray) -> dict:
    """How much of h is one shared vector, and how much a few channels."""
    sq = (h ** 2).mean(0)                                 # (d,) mean square per channel
    order = np.argsort(-sq)
    std = h.std(0)
    return {"cosine_raw": cosine_stats(h), "cosine_centred": cosine_stats(h - h.mean(0)),
            "mean_vector_share_of_sq_norm": round(float((h.mean(0) ** 2).sum() / (h ** 2).sum(1).mean()), 4),
            "top_channels": [int(i) for i in order[:5]],
            "top_k_share_of_sq_norm": {k: round(float(sq[order[:k]].sum() / sq.sum()), 3) for k in (1, 3, 10)},
            "top5_channel_mean": [round(float(v), 2) for v in h.mean(0)[order[:5]]],
            "top5_channel_std": [round(float(v), 3) for v in std[order[:5]]],
            "median_channel_std": round(float(np.median(std)), 3),
            "variance_share_top1_top10": [round(float(np.sort(std ** 2)[::-1][:k].sum() / (std ** 2).sum()), 3)
                                          for k in (1, 10)]}


def features(model: Path, memes: list, max_len: int) -> dict[str, np.ndarray]:
    """{"last": (n, d) h at the last prompt token, "mean": (n, d) mean over the prompt tokens} of the
    frozen stage-1 LMM (frozen bottom layers from the shared StateCache)."""
    import torch

    from somelvlm.models.lmm_rgcl import StateCache, collate_memes, decoder_layers, load_parts
    from somelvlm.taxonomy.registry import get_task
    from somelvlm.train.lmm_rgcl import LMMRGCLConfig, prepare_memes

    lvlm, tok, _, config = load_parts(model, merge=False)
    lvlm.eval()
    task = get_task(config["task"])
    items, _ = prepare_memes(memes, tok, task, 0, LMMRGCLConfig(stage=1, out="-", max_len=max_len), with_answers=False)
    upto = max(0, lvlm.lm.config.num_hidden_layers - (config.get("lora_layers") or 10 ** 6))
    if upto:
        StateCache(config["init"]["digest"], upto).fill(lvlm, items, tok.pad_token_id, log=say)
    out: dict[str, list] = {"last": [], "mean": []}
    decoder = lvlm.lm.get_decoder()
    with torch.inference_mode():
        for s in range(0, len(items), 16):
            batch = collate_memes(items[s:s + 16], tok.pad_token_id)
            if upto:
                with decoder_layers(decoder, upto, None):
                    hid = decoder(inputs_embeds=batch["states"], attention_mask=batch["attention_mask"],
                                  use_cache=False).last_hidden_state
            else:
                embeds = lvlm.embed(batch["input_ids"], batch["image_mask"], batch.get("image_feats"))
                hid = decoder(inputs_embeds=embeds, attention_mask=batch["attention_mask"], use_cache=False).last_hidden_state
            rows = torch.arange(len(hid))
            out["last"].append(hid[rows, batch["last"]].float().numpy())
            keep = (torch.arange(hid.shape[1])[None, :] <= batch["last"][:, None]).float()[..., None]
            out["mean"].append(((hid.float() * keep).sum(1) / keep.sum(1)).numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def g_pair_cosines(head, h: np.ndarray, y: np.ndarray, k: int, hard: int) -> dict[str, float]:
    """Mean cosine of each training meme's g with its mined pseudo-gold positive / hard negative (what
    RGCL pulls apart), and between all memes."""
    import torch

    from somelvlm.train.rgcl import mine

    head.eval()
    with torch.no_grad():
        g = head(torch.from_numpy(h))["g"].numpy()
    pos, neg = mine(g, y.astype(np.int64), k, hard)
    gn = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
    ps = [float(gn[i] @ gn[pos[i]]) for i in range(len(g)) if pos[i] >= 0]
    ns = [float(gn[i] @ gn[neg[i, 0]]) for i in range(len(g)) if neg[i, 0] >= 0]
    return {"pos": round(statistics.fmean(ps), 4), "hard_neg": round(statistics.fmean(ns), 4),
            "all_pairs": cosine_stats(g)["mean"]}


VARIANTS = [("none", "post", "last"), ("layer", "post", "last"), ("standard", "post", "last"),
            ("standard", "pre", "last"), ("none", "post", "mean"), ("standard", "post", "mean"),
            ("standard", "pre", "mean")]


def main(argv: list[str] | None = None) -> None:
    import torch
    from _machine import cpu_name

    from somelvlm.data.meme_domains import load_domain, sample
    from somelvlm.models.lmm_rgcl import HeadConfig, MemeHead
    from somelvlm.train.lmm_rgcl import LMMRGCLConfig, binary_metrics, head_probs, train_head_rgcl

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stage1", required=True, help="a stage-1 model folder (its LMM is frozen here)")
    p.add_argument("--source", default="harm-c")
    p.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"))
    p.add_argument("--max-train", type=int, default=96, help="the sample stage 1 trained on (benchmark: 96)")
    p.add_argument("--max-val", type=int, default=None, help="source val memes (default: all)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(HERE / "results" / "lmm_rgcl_head_norm"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    memes, _ = load_domain(args.data_root, args.source)
    train = sample([m for m in memes if m.split == "train"], args.max_train, 0, balanced=True)
    val = sample([m for m in memes if m.split == "val"], args.max_val, 0)
    y, y_val = (np.array([m.positive for m in ms], np.int64) for ms in (train, val))
    say(f"h of {len(train)} train + {len(val)} val {args.source} memes")
    f_tr, f_val = features(Path(args.stage1), train, 128), features(Path(args.stage1), val, 128)
    cfg = LMMRGCLConfig(stage=2, out="-", stage2_epochs=args.epochs, num_threads=args.threads)
    result = {"machine": f"{cpu_name()}, {args.threads} threads", "args": vars(args),
              "h_last": h_anatomy(f_tr["last"]), "h_mean_pooled": h_anatomy(f_tr["mean"]), "variants": {}}
    s1 = json.loads((Path(args.stage1) / "config.json").read_text())
    from lmm_rgcl import head_of

    head = head_of(Path(args.stage1))
    result["stage1_head"] = {"config": s1["head"], "g": g_pair_cosines(head, f_tr["last"], y, cfg.k, cfg.hard_negatives)}
    for norm, embed, pool in VARIANTS:
        name = f"norm={norm} embed={embed} pool={pool}"
        runs = []
        for seed in args.seeds:
            torch.manual_seed(seed)
            head = MemeHead(HeadConfig(in_dim=f_tr[pool].shape[1], width=cfg.head_width, dropout=cfg.head_dropout,
                                       norm=norm, embed=embed))
            if norm == "standard":
                head.fit_standardizer(f_tr[pool])
            before = g_pair_cosines(head, f_tr[pool], y, cfg.k, cfg.hard_negatives)
            hist = train_head_rgcl(head, f_tr[pool], y, np.zeros((0, f_tr[pool].shape[1]), np.float32), y_val[:0],
                                   replace(cfg, seed=seed), log=lambda m: None)
            last = binary_metrics(y_val, head_probs(head, f_val[pool]))
            runs.append({"seed": seed, "val_auroc": round(last["auroc"], 2), "val_macro_f1": round(last["macro_f1"], 2),
                         "g_before": before, "g_after": g_pair_cosines(head, f_tr[pool], y, cfg.k, cfg.hard_negatives),
                         "train_rgcl_last": round(hist["history"][-1]["train_rgcl"], 4)})
        agg = {m: round(statistics.fmean(r[m] for r in runs), 2) for m in ("val_auroc", "val_macro_f1")}
        agg |= {f"{m}_std": round(statistics.stdev(r[m] for r in runs), 2) if len(runs) > 1 else 0.0
                for m in ("val_auroc", "val_macro_f1")}
        result["variants"][name] = {"mean": agg, "runs": runs}
        say(f"{name}: {agg} g after {runs[0]['g_after']}")
    out = Path(args.out)
    atomic_write_text(out.with_suffix(".json"), json.dumps(result, indent=1))
    atomic_write_text(out.with_suffix(".md"), markdown(result, args))
    say(f"wrote {out}.json / .md")


def markdown(r: dict, args) -> str:
    a = r["h_last"]
    lines = ["# LMM-RGCL: the stage-2 g collapse and the head input, chosen on source validation", "",
             (f"`python benchmarks/lmm_rgcl_head_norm.py --stage1 {args.stage1} --source {args.source} "
              f"--max-train {args.max_train} --seeds {' '.join(map(str, args.seeds))}` on {r['machine']}."), "",
             "## h, the frozen stage-1 LMM's last hidden state at the last prompt token (training memes)", "",
             "| | value |", "|---|---|",
             f"| cosine between memes, raw (mean / p5 / min) | {a['cosine_raw']['mean']} / {a['cosine_raw']['p5']} / {a['cosine_raw']['min']} |",
             f"| cosine after removing the training mean | {a['cosine_centred']['mean']} / {a['cosine_centred']['p5']} / {a['cosine_centred']['min']} |",
             f"| share of the mean squared norm that is the mean vector | {a['mean_vector_share_of_sq_norm']} |",
             f"| share of the squared norm in the top 1 / 3 / 10 channels | {a['top_k_share_of_sq_norm'][1]} / {a['top_k_share_of_sq_norm'][3]} / {a['top_k_share_of_sq_norm'][10]} |",
             f"| top-5 channels: mean / std | {a['top5_channel_mean']} / {a['top5_channel_std']} |",
             f"| median channel std | {a['median_channel_std']} |",
             f"| share of the variance in the top 1 / 10 channels | {a['variance_share_top1_top10']} |",
             f"| mean-pooled h: cosine raw / centred | {r['h_mean_pooled']['cosine_raw']['mean']} / {r['h_mean_pooled']['cosine_centred']['mean']} |",
             "", (f"The saved stage-1 head ({r['stage1_head']['config']}): mean cosine of g with the mined positive "
                  f"{r['stage1_head']['g']['pos']}, with the hard negative {r['stage1_head']['g']['hard_neg']}, "
                  f"between all memes {r['stage1_head']['g']['all_pairs']}."), "",
             "## A fresh head trained by stage 2's loop (RGCL hybrid loss), per head input", "",
             ("Source val (all val memes), last epoch, mean +- std over seeds; g cosines on the training memes "
              "(seed 0) before / after training."), "",
             "| head input | val AUROC | val macro-F1 | g cos pos (before -> after) | g cos hard neg | g cos all pairs |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, v in r["variants"].items():
        m, g0, g1 = v["mean"], v["runs"][0]["g_before"], v["runs"][0]["g_after"]
        lines.append(f"| {name} | {m['val_auroc']:.1f} +- {m['val_auroc_std']:.1f} | {m['val_macro_f1']:.1f} +- "
                     f"{m['val_macro_f1_std']:.1f} | {g0['pos']} -> {g1['pos']} | {g0['hard_neg']} -> {g1['hard_neg']} | "
                     f"{g0['all_pairs']} -> {g1['all_pairs']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
