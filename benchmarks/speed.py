"""Speed and peak memory of SoMe-mini against what a user would otherwise write.

    python benchmarks/speed.py [--posts 2000] [--naive-posts 40] [--threads 2]

Ours: every classification and rating head at once, one encoder pass per post, posts streamed in
batches of 64 with length bucketing, on each encoder runtime: the default (ONNX Runtime fp32,
batch-invariant), torch fp32, torch dynamic int8 (batch-dependent, opt-in). Each runtime runs once in
its own process (peak RSS) and once more all three back to back, alternating, in one process (the
fair RATIO when the machine is shared; the load average is recorded). Naive: one transformers
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

from somelvlm.atomic import atomic_write_text
from _machine import cpu_name  # benchmarks/_machine.py (the script's folder is on sys.path)

OUT = Path(__file__).parent / "results"
RUNTIMES = ("onnx", "torch", "torch-int8")
"""Default (ONNX Runtime fp32), torch fp32, torch dynamic int8."""


def tweets(n: int) -> list[str]:
    root = Path(os.environ.get("SOMELVLM_DATA", "../shared/data"))
    lines = (root / "tweeteval/datasets/sentiment/test_text.txt").read_text(encoding="utf-8").splitlines()
    return [t for t in lines if t.strip()][:n]


def run_ours(n: int, runtime: str, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from somelvlm.models import load_model

    model = load_model(None, runtime=runtime, threads=threads)
    texts = tweets(n)
    model.predict(texts[:64])  # warm-up
    return {"runtime": model.runtime, **timed(model, texts)}


def timed(model, texts: list[str]) -> dict:
    start = time.perf_counter()
    for i in range(0, len(texts), 512):  # stream as analyze does
        model.predict(texts[i:i + 512])
    seconds = time.perf_counter() - start
    return {"posts": len(texts), "tasks": len(model.tasks), "seconds": round(seconds, 2),
            "posts_per_s": round(len(texts) / seconds, 1)}


def run_together(n: int, threads: int, rounds: int = 2) -> dict:
    """The three runtimes back to back in one process, alternating, ``rounds`` times: best posts/s each."""
    import torch

    torch.set_num_threads(threads)
    from somelvlm.models import load_model

    texts = tweets(n)
    models = {r: load_model(None, runtime=r, threads=threads) for r in RUNTIMES}
    for model in models.values():
        model.predict(texts[:64])
    best: dict = {}
    for _ in range(rounds):
        for name, model in models.items():
            r = timed(model, texts)
            if r["posts_per_s"] > best.get(name, {}).get("posts_per_s", 0):
                best[name] = r
    return {"rounds": rounds, **best, "loadavg_1m": round(os.getloadavg()[0], 1)}


def run_naive(n: int, threads: int) -> dict:
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification, pipeline
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    torch.set_num_threads(threads)
    from somelvlm.models import load_model
    from somelvlm.models.encoder import resolve_encoder

    tasks = load_model(None, runtime="torch").specs
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
    if variant == "naive":
        result = run_naive(n, threads)
    elif variant == "together":
        result = run_together(n, threads)
    else:
        result = run_ours(n, variant, threads)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps(result))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--naive-posts", type=int, default=40)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", choices=[*RUNTIMES, "naive", "together"])
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.naive_posts if args.child == "naive" else args.posts, args.threads)
        return {}
    results = {"threads": args.threads, "cpu": cpu_name(), "loadavg_1m_start": round(os.getloadavg()[0], 1)}
    for variant in (*RUNTIMES, "together", "naive"):
        proc = subprocess.run([sys.executable, __file__, "--child", variant, "--posts", str(args.posts),
                               "--naive-posts", str(args.naive_posts), "--threads", str(args.threads)],
                              capture_output=True, text=True, check=True)
        results[variant] = json.loads(proc.stdout.strip().splitlines()[-1])
        print(variant, results[variant], flush=True)
    results["loadavg_1m_end"] = round(os.getloadavg()[0], 1)
    results["speedup_vs_naive"] = round(results["onnx"]["posts_per_s"] / results["naive"]["posts_per_s"], 1)
    atomic_write_text(OUT / "speed.json", json.dumps(results, indent=1) + "\n")
    atomic_write_text(OUT / "speed.md", markdown(results))
    print(markdown(results))
    return results


def markdown(r: dict) -> str:
    names = {"onnx": "SoMe-mini, ONNX Runtime fp32 (default; batch-invariant)",
             "torch": "SoMe-mini, torch fp32 (batch-invariant)",
             "torch-int8": "SoMe-mini, torch dynamic int8 (opt-in `--int8`; batch-dependent)"}
    together = r["together"]
    lines = ["# Speed: all classification and rating tasks at once", "",
             (f"Command: `python benchmarks/speed.py`. {r['threads']} threads on {r['cpu']}; real tweets "
              "(TweetEval sentiment test). Machine load average (1 min) "
              f"{r['loadavg_1m_start']} at the start, {r['loadavg_1m_end']} at the end, on {os.cpu_count()} cores: "
              "on a shared machine absolute numbers are depressed and noisy. Compare runtimes within one column; "
              "where the two columns disagree on the order, the load changed during the run (or the runtimes "
              "interfere inside one process) and neither ratio is settled."), "",
             "| variant | tasks | posts | posts/s (own process) | posts/s (back to back, one process) | "
             "ratio to torch fp32 (back to back) | peak RSS, own process (MB) |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    base = together["torch"]["posts_per_s"]
    for key, name in names.items():
        v, t = r[key], together[key]
        lines.append(f"| {name} | {v['tasks']} | {v['posts']} | {v['posts_per_s']} | {t['posts_per_s']} | "
                     f"{t['posts_per_s'] / base:.2f} | {v['peak_rss_mb']} |")
    v = r["naive"]
    lines.append(f"| naive: one transformers pipeline per task, per post | {v['tasks']} | {v['posts']} | "
                 f"{v['posts_per_s']} | - | - | {v['peak_rss_mb']} |")
    lines += ["", f"Back to back: best of {together['rounds']} alternating rounds; load average at its end "
                  f"{together['loadavg_1m']}; that process held all three models (peak RSS {together['peak_rss_mb']} MB).",
              "", f"Speed-up of the default (ONNX fp32) over the naive approach: **{r['speedup_vs_naive']}x**."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
