"""Speed of the multimodal path: image posts per second (with / without OCR, features cached or
not) and FAISS search latency at 100k and 1M synthetic 256-d vectors (exact flat inner product,
and the approximate HNSW index ``index build --kind hnsw`` offers, with its recall@20 vs exact).

    SOMELVLM_CACHE=/tmp/speed-cache python benchmarks/multimodal_speed.py --data-root ../shared/data

Posts: the first --posts CM_MEMES memes (real images, their captions), through ``MultimodalHeads``
(EfficientNet-Lite0 + the head's text encoder + the head) at batch 16, 1 torch thread.
"Uncached" encodes every image and text; "cached" is a second pass over the same posts with the
on-disk feature cache warm (decoding the image is still paid: the cache key is its pixels).
"With OCR" drops the captions so the text is read off the image. Writes
benchmarks/results/multimodal_speed.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def head_folder(tmp: Path) -> Path:
    """The shipped offensive_meme head, else a random one of the same shape (speed only)."""
    from somelvlm.models.mm_runtime import MM_ASSETS

    shipped = MM_ASSETS / "offensive_meme"
    if (shipped / "config.json").is_file():
        return shipped
    from somelvlm.features import get_extractor
    from somelvlm.models.multimodal import MMConfig, build_classifier, save_classifier

    enc = {name: f"{e.id}|{e.config}" for name, e in (("image", get_extractor("efficientnet_lite0")),
                                                       ("text", get_extractor("minilm")))}
    save_classifier(build_classifier(MMConfig(num_classes=2)), tmp / "head", ["not_offensive", "offensive"],
                    {"task": "offensive_meme", "dataset": "cm_memes", "encoders": enc})
    return tmp / "head"


def posts_per_second(folder: Path, images: list, texts: list, cache: bool, batch: int = 16) -> float:
    from somelvlm.models.mm_runtime import MultimodalHeads

    heads = MultimodalHeads([folder], cache=cache, num_threads=1)
    heads.predict(images[:2], texts[:2])  # load the models outside the clock
    start = time.perf_counter()
    for s in range(0, len(images), batch):
        heads.predict(images[s:s + batch], texts[s:s + batch])
    return len(images) / (time.perf_counter() - start)


def image_speed(data_root: Path, n: int) -> dict:
    from somelvlm.posts import load_image
    from somelvlm.features.mm_table import load_examples

    examples = [e for e in load_examples(data_root, "cm_memes") if e.text][:n]
    images = [load_image(data_root / e.image) for e in examples]
    texts = [e.text for e in examples]
    out = {"posts": len(images)}
    with tempfile.TemporaryDirectory() as tmp:
        folder = head_folder(Path(tmp))
        os.environ["SOMELVLM_CACHE"] = str(Path(tmp) / "cache")
        out["head"] = str(folder)
        for ocr in (False, True):
            t = [None] * len(texts) if ocr else texts
            key = "with_ocr" if ocr else "no_ocr"
            out[f"{key}_uncached"] = posts_per_second(folder, images, t, cache=False)
            posts_per_second(folder, images, t, cache=True)  # fill the cache
            out[f"{key}_cached"] = posts_per_second(folder, images, t, cache=True)
            print(key, out, flush=True)
    return out


def faiss_speed(sizes: list[int], dim: int, queries: int, hnsw_max: int) -> list[dict]:
    import faiss

    from somelvlm.retrieval.index import normalise

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(0)
    q = normalise(rng.standard_normal((queries, dim), dtype=np.float32))
    rows = []
    for n in sizes:
        x = normalise(rng.standard_normal((n, dim), dtype=np.float32))
        flat = faiss.IndexFlatIP(dim)
        flat.add(x)
        kinds = [("flat", flat, 0.0)]
        if n <= hnsw_max:
            start = time.perf_counter()
            hnsw = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efSearch = 64
            hnsw.add(x)
            kinds.append(("hnsw", hnsw, time.perf_counter() - start))
        _, exact = flat.search(q, 20)
        for kind, index, build_s in kinds:
            row = {"vectors": n, "dim": dim, "kind": kind, "build_s": build_s}
            start = time.perf_counter()
            for i in range(queries):
                index.search(q[i:i + 1], 20)
            row["ms_per_query_batch1"] = 1000 * (time.perf_counter() - start) / queries
            start = time.perf_counter()
            _, got = index.search(q, 20)
            row["ms_per_query_batch64"] = 1000 * (time.perf_counter() - start) / queries
            row["recall_at_20"] = float(np.mean([len(set(a) & set(b)) / 20 for a, b in zip(got, exact)]))
            rows.append(row)
            print(row, flush=True)
        del x, flat
    return rows


def main(argv: list[str] | None = None) -> None:
    from _machine import cpu_name

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", type=Path, default=Path(os.environ.get("SOMELVLM_DATA", "../shared/data")))
    parser.add_argument("--posts", type=int, default=48)
    parser.add_argument("--sizes", nargs="*", type=int, default=[100_000, 1_000_000])
    parser.add_argument("--hnsw-max", type=int, default=100_000, help="build HNSW only up to this size")
    parser.add_argument("--queries", type=int, default=64)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "multimodal_speed")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    load = os.getloadavg()[0]
    result = {"cpu": cpu_name(), "threads": 1, "load_avg_1min_at_start": load,
              "image_posts": image_speed(args.data_root, args.posts),
              "faiss": faiss_speed(args.sizes, 256, args.queries, args.hnsw_max)}
    ip = result["image_posts"]
    lines = ["# Multimodal speed", "",
             f"CPU: {result['cpu']}, 1 torch / FAISS thread; 1-minute load average at start {load:.1f} on 2 cores "
             "(other jobs shared the machine: treat as pessimistic). `python benchmarks/multimodal_speed.py`.", "",
             f"## Image posts per second ({ip['posts']} real CM_MEMES memes, batch 16)", "",
             "| text | features uncached | features cached |", "|---|---|---|",
             f"| caption | {ip['no_ocr_uncached']:.2f} | {ip['no_ocr_cached']:.2f} |",
             f"| OCR of the image | {ip['with_ocr_uncached']:.2f} | {ip['with_ocr_cached']:.2f} |", "",
             "## FAISS search, 256-d synthetic unit vectors, top 20", "",
             "| vectors | index | build s | ms/query (batch 1) | ms/query (batch 64) | recall@20 vs exact |",
             "|---|---|---|---|---|---|"]
    for r in result["faiss"]:
        lines.append(f"| {r['vectors']:,} | {r['kind']} | {r['build_s']:.1f} | {r['ms_per_query_batch1']:.2f} | "
                     f"{r['ms_per_query_batch64']:.2f} | {r['recall_at_20']:.3f} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
