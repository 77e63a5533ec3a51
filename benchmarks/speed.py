"""Speed and peak memory of SoMe-mini against what a user would otherwise write.

    python benchmarks/speed.py [--posts 2000] [--naive-posts 40] [--threads 2]

Ours: every classification and rating head at once, one encoder pass per post (int8 and fp32),
posts streamed in batches of 64 with length bucketing. Naive: one transformers
``pipeline("text-classification")`` per task (each its own MiniLM + head, as separately fine-tuned
models would be), called post by post. Real tweets (TweetEval sentiment test). Each variant runs in
its own process so peak RSS is its own. Writes benchmarks/results/speed.json and speed.md.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from _machine import cpu_name  # benchmarks/_machine.py (the script's folder is on sys.path)

OUT = Path(__file__).parent / "results"


def tweets(n: int) -> list[str]:
    root = Path(os.environ.get("SOMELVLM_DATA", "../shared/data"))
    lines = (root / "tweeteval/datasets/sentiment/test_text.txt").read_text(encoding="utf-8").splitlines()
    return [t for t in lines if t.strip()][:n]


def run_ours(n: int, int8: bool, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from somelvlm.models import load_model

    model = load_model(None, int8=int8)
    texts = tweets(n)
    model.predict(texts[:64])  # warm-up
    start = time.perf_counter()
    for i in range(0, len(texts), 512):  # stream as analyze does
        model.predict(texts[i:i + 512])
    seconds = time.perf_counter() - start
    return {"posts": len(texts), "tasks": len(model.tasks), "seconds": round(seconds, 2),
            "posts_per_s": round(len(texts) / seconds, 1)}


def run_naive(n: int, threads: int) -> dict:
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification, pipeline
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    torch.set_num_threads(threads)
    from somelvlm.models import load_model
    from somelvlm.models.encoder import resolve_encoder

    tasks = load_model(None, int8=False).specs
    path = resolve_encoder("minilm")
    tok = AutoTokenizer.from_pretrained(path)
    pipes = [pipeline("text-classification", model=BertForSequenceClassification.from_pretrained(
        path, num_labels=max(1, spec.width)), tokenizer=tok, device=-1) for spec in tasks.values()]
    texts = tweets(n)
    pipes[0](texts[0])
    start = time.perf_counter()
    for text in texts:
        for pipe in pipes:
            pipe(text)
    seconds = time.perf_counter() - start
    return {"posts": len(texts), "tasks": len(pipes), "seconds": round(seconds, 2),
            "posts_per_s": round(len(texts) / seconds, 2)}


def child(variant: str, n: int, threads: int) -> None:
    result = run_naive(n, threads) if variant == "naive" else run_ours(n, variant == "int8", threads)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--naive-posts", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", choices=["int8", "fp32", "naive"])
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.naive_posts if args.child == "naive" else args.posts, args.threads)
        return {}
    results = {"threads": args.threads, "cpu": cpu_name()}
    for variant in ("int8", "fp32", "naive"):
        proc = subprocess.run([sys.executable, __file__, "--child", variant, "--posts", str(args.posts),
                               "--naive-posts", str(args.naive_posts), "--threads", str(args.threads)],
                              capture_output=True, text=True, check=True)
        results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(variant, results[variant], flush=True)
    results["speedup_vs_naive"] = round(results["int8"]["posts_per_s"] / results["naive"]["posts_per_s"], 1)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "speed.json").write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    (OUT / "speed.md").write_text(markdown(results), encoding="utf-8")
    print(markdown(results))
    return results



def markdown(r: dict) -> str:
    rows = [("SoMe-mini, int8 encoder (as analyze runs it)", r["int8"]), ("SoMe-mini, fp32 encoder", r["fp32"]),
            ("naive: one transformers pipeline per task, per post", r["naive"])]
    lines = ["# Speed: all classification and rating tasks at once", "",
             (f"Command: `python benchmarks/speed.py`. {r['threads']} threads on {r['cpu']}; real tweets "
              "(TweetEval sentiment test); each variant in its own process."), "",
             "| variant | tasks | posts | posts/s | peak RSS (MB) |", "|---|---:|---:|---:|---:|"]
    for name, v in rows:
        lines.append(f"| {name} | {v['tasks']} | {v['posts']} | {v['posts_per_s']} | {v['peak_rss_mb']} |")
    lines += ["", f"Speed-up of ours (int8) over the naive approach: **{r['speedup_vs_naive']}x**."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
