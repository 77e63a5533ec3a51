"""Copy a trained SoMe-mini run into the package and write its model card with test metrics.

    python benchmarks/ship_default.py runs/some-mini [--quality benchmarks/results/quality.json]

Copies ``RUN/model/{config.json,model.safetensors}`` to ``src/somelvlm/assets/some-mini/``, records
the training time from ``RUN/history.json`` (or the log) and writes ``README.md`` (validation metrics
from training, test metrics from the quality benchmark when given).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

ASSET = Path(__file__).resolve().parents[1] / "src" / "somelvlm" / "assets" / "some-mini"


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--quality", type=Path, default=None)
    parser.add_argument("--seconds", type=float, default=None, help="training time when history.json is absent")
    args = parser.parse_args(argv)
    from somelvlm.models.card import write_card

    ASSET.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "model.safetensors"):
        shutil.copy(args.run / "model" / name, ASSET / name)
    config = json.loads((ASSET / "config.json").read_text(encoding="utf-8"))
    history = args.run / "history.json"
    if history.is_file():
        config["trained"]["seconds"] = json.loads(history.read_text(encoding="utf-8")).get("seconds")
    elif args.seconds:
        config["trained"]["seconds"] = args.seconds
    (ASSET / "config.json").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
    quality = json.loads(args.quality.read_text(encoding="utf-8")) if args.quality else {}
    test = quality.get("ours", quality.get("ours_int8"))  # "ours_int8": results written before the onnx runtime
    card = write_card(ASSET, test=test)
    print(f"shipped to {ASSET}; card {card}")
    return ASSET


if __name__ == "__main__":
    main()
