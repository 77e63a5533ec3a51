"""Train and ship the multimodal heads of the default model (``assets/some-mini-mm/<task>``).

    SOMELVLM_CACHE=/work/runs/mm/cache python benchmarks/ship_mm.py --data-root ../shared/data

Per dataset, the recipe row with the best mean VAL macro-F1 in benchmarks/results/ablation.json
among CE fusion, +ITC, +ITM, +ITC+ITM (text encoder and fusion as the ablation selected on val) is
retrained with seed 0 and saved in float16 with its val / test scores; then README.md (the model card) is written.
Shipped (2026-11-23): cm_memes and memotion (``--datasets cm_memes memotion``); mediaeval2016 not
shipped, see the card.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
ASSETS = HERE.parent / "src" / "somelvlm" / "assets" / "some-mini-mm"
AUX = {"CE fusion": (0.0, 0.0), "+ITC": (0.1, 0.0), "+ITM": (0.0, 0.1), "+ITC+ITM": (0.1, 0.1)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", type=Path, default=Path(os.environ.get("SOMELVLM_DATA", "../shared/data")))
    parser.add_argument("--ablation", type=Path, default=HERE / "results" / "ablation.json")
    parser.add_argument("--datasets", nargs="*", default=None, help="only these (default: all in the ablation)")
    args = parser.parse_args(argv)
    import torch

    from somelvlm.models.multimodal import save_classifier
    from somelvlm.train.multimodal import MultimodalConfig, train

    torch.set_num_threads(1)
    ablation = json.loads(args.ablation.read_text())
    for d in ablation["datasets"]:
        if args.datasets and d["dataset"] not in args.datasets:
            continue
        row = max(AUX, key=lambda r: d["rows"][r]["val_macro_f1"]["mean"])
        b_itc, b_itm = AUX[row]
        s = d["settings"]
        cfg = MultimodalConfig(dataset=d["dataset"], data_root=str(args.data_root), text_encoder=d["selection"]["chosen_text"],
                               fusion=d["selection"]["chosen_fusion"], b_itc=b_itc, b_itm=b_itm, epochs=s["epochs"],
                               batch_size=s["batch_size"], max_train=s["max_train"], seed=0)
        result = train(cfg, log=lambda *a: None)
        from somelvlm.features.mm_table import build_table

        table = build_table(args.data_root, d["dataset"], text=cfg.text_encoder, max_train=cfg.max_train)
        folder = ASSETS / d["task"]
        save_classifier(result["model"], folder, list(table.labels),
                        {"task": d["task"], "dataset": d["dataset"], "encoders": {k: table.encoders[k] for k in ("image", "text")},
                         "recipe": row, "val": result["val"], "test": result["test"], "best_epoch": result["best_epoch"],
                         "train_config": {k: v for k, v in result["config"].items() if k not in ("data_root", "out")}},
                        half=True)
        print(d["dataset"], row, result["val"], result["test"], flush=True)
    write_card()
    print((ASSETS / "README.md").read_text())


def write_card() -> None:
    """README.md's body from every shipped head's config.json (so heads can be shipped one dataset at a
    time); its Hub front matter and its How-to-load sections are kept (``models.card.write_readme``)."""
    from somelvlm.models.card import write_readme

    lines = ["# SoMe-mini multimodal heads", "",
             "Image+text heads that `analyze` runs for posts with an image where the image helps (`image_helps` in "
             "config.json, decided on validation by `benchmarks/image_helps.py`: they then replace the text-only head's "
             "answer for these tasks and mark it `\"modality\": \"image+text\"`). Inputs: EfficientNet-Lite0 pooled "
             "ImageNet features of the image (224 px centre crop) and a frozen sentence embedding of the post's text "
             "(its caption, else OCR of the image). Per-modality projection (256) -> fusion -> MLP (256) -> softmax. "
             "float16 safetensors. Trained with `benchmarks/ship_mm.py` (seed 0); the recipe row (CE or with "
             "ITC / ITM), the text encoder and the fusion were selected on val (`benchmarks/results/ablation.md`).", "",
             "| task | data | text encoder | fusion | recipe | best epoch | val macro-F1 | test macro-F1 | test AUROC | size |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for folder in sorted(p for p in ASSETS.glob("*") if (p / "config.json").is_file()):
        meta = json.loads((folder / "config.json").read_text())
        size = (folder / "model.safetensors").stat().st_size
        auroc = f"{meta['test']['auroc']:.1f}" if "auroc" in meta["test"] else "-"
        tc = meta["train_config"]
        lines.append(f"| {meta['task']} | {meta['dataset']} | {tc['text_encoder']} | {tc['fusion']} | {meta['recipe']} | "
                     f"{meta['best_epoch']} | {meta['val']['macro_f1']:.1f} | {meta['test']['macro_f1']:.1f} | "
                     f"{auroc} | {size / 1e6:.2f} MB |")
    lines += ["", "Limits: trained on one dataset each (Hindi-English CM_MEMES memes; Memotion thumbnails): "
              "expect lower scores on other meme styles. The image encoder is an ImageNet classifier, not an image-text model; "
              "image-only signal is weak (see the ablation). No verify_post head is shipped: on the held-out "
              "MediaEval events every image+text variant collapsed to predicting one class (test macro-F1 ~28, "
              "text-only MLP 81), and the val events are at chance for every model (val macro-F1 50-62), so val "
              "cannot choose among them; image features identify the training events and do not transfer. "
              "SoMe-mini's text head keeps answering verify_post. Memotion sentiment stays near chance "
              "(5 classes: 20) for every model tried.", ""]
    write_readme(ASSETS, "\n".join(lines))


if __name__ == "__main__":
    main()
