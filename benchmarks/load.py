"""Load test of `somelvlm serve` on loopback: 1, 8 and 32 concurrent clients, each for a fixed time.

    python benchmarks/load.py [--duration 30] [--clients 1,8,32] [--posts 1000] [--int8]

The server runs in a subprocess (`python -m somelvlm.cli serve`, fp32 unless --int8) on a free
127.0.0.1 port. Each client sends single real tweets (TweetEval sentiment test) to POST /v1/analyze
(all 27 heads) back to back; requests per second, p50 / p99 latency and errors by status are kept per
level, with the mean batch size the server's micro-batcher formed (from /metrics). Then the server
stops and the same model labels the same posts offline in batches of 64 (what `analyze` does): the
offline throughput the server's throughput is compared with (target: >= 60 %). Bounded and
self-stopping: each level ends after --duration, each request times out after 30 s, the whole run
after --hard-limit seconds; the server is always stopped. Writes benchmarks/results/load.json and
load.md. The load average is recorded with the numbers (other jobs on the machine slow everything).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from somelvlm.atomic import atomic_write_text
from somelvlm.serve.server import stop_process
from _machine import cpu_name  # benchmarks/_machine.py (the script's folder is on sys.path)

OUT = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]


def tweets(n: int) -> list[str]:
    root = Path(os.environ.get("SOMELVLM_DATA", REPO.parent / "shared" / "data"))
    lines = (root / "tweeteval/datasets/sentiment/test_text.txt").read_text(encoding="utf-8").splitlines()
    return [t for t in lines if t.strip()][:n]


def start_server(port: int, int8: bool, threads: int, max_wait_ms: float) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "somelvlm.cli", "serve", "--port", str(port), "--threads", str(threads),
           "--batch-wait-ms", str(max_wait_ms), "--runtime", "torch-int8" if int8 else "auto"]
    env = dict(os.environ, PYTHONPATH=str(REPO / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited: {proc.stdout.read()[-2000:]}")
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the server did not become healthy in {timeout} s")


def batch_stats(url: str) -> tuple[float, float]:
    """(sum, count) of the classify batcher's batch sizes so far."""
    import httpx

    text = httpx.get(url + "/metrics", timeout=10).text
    values = {}
    for line in text.splitlines():
        for key in ("somelvlm_batch_size_sum", "somelvlm_batch_size_count"):
            if line.startswith(key + '{batcher="classify"}'):
                values[key] = float(line.rsplit(" ", 1)[1])
    return values.get("somelvlm_batch_size_sum", 0.0), values.get("somelvlm_batch_size_count", 0.0)


async def run_level(url: str, clients: int, duration: float, texts: list[str]) -> dict:
    import httpx

    latencies: list[float] = []
    statuses: dict[str, int] = {}
    deadline = time.monotonic() + duration
    counter = iter(range(10**9))

    async def client(http: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            text = texts[next(counter) % len(texts)]
            start = time.perf_counter()
            try:
                r = await http.post("/v1/analyze", json={"text": text})
                key = str(r.status_code)
            except httpx.HTTPError as err:
                key = type(err).__name__
            latencies.append(time.perf_counter() - start)
            statuses[key] = statuses.get(key, 0) + 1

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
        await http.post("/v1/analyze", json={"text": texts[0]})  # warm-up, not counted
        deadline = time.monotonic() + duration
        start = time.monotonic()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        elapsed = time.monotonic() - start
    lat = np.array(latencies) * 1000
    ok = statuses.get("200", 0)
    return {"clients": clients, "seconds": round(elapsed, 1), "requests": int(len(lat)), "ok": ok,
            "rps": round(ok / elapsed, 1), "p50_ms": round(float(np.percentile(lat, 50)), 1),
            "p99_ms": round(float(np.percentile(lat, 99)), 1), "errors": {k: v for k, v in statuses.items() if k != "200"},
            "errors_5xx": sum(v for k, v in statuses.items() if k.startswith("5"))}


def offline(texts: list[str], int8: bool, threads: int, seconds: float) -> dict:
    """Posts/s of the same model labelling the same posts in batches of 64 (all heads), for ``seconds``."""
    import torch

    torch.set_num_threads(threads)
    from somelvlm.models import load_model

    model = load_model(None, int8=int8)
    model.predict(texts[:64])
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for i in range(0, len(texts), 64):
            model.predict(texts[i:i + 64])
            done += len(texts[i:i + 64])
            if time.perf_counter() - start >= seconds:
                break
    elapsed = time.perf_counter() - start
    return {"posts": done, "seconds": round(elapsed, 1), "posts_per_s": round(done / elapsed, 1)}


def offline_in_subprocess(args, seconds: float) -> dict:
    """``offline`` in a fresh process, so the benchmark's own process stays light while it drives the server."""
    code = (f"import sys, json; sys.path[:0] = [{str(Path(__file__).parent)!r}, {str(REPO / 'src')!r}]; "
            f"from load import offline, tweets; "
            f"print(json.dumps(offline(tweets({args.posts}), {args.int8}, {args.threads}, {seconds})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30.0, help="seconds per concurrency level")
    parser.add_argument("--clients", default="1,8,32", help="concurrency levels, comma-separated")
    parser.add_argument("--posts", type=int, default=1000, help="distinct real tweets cycled through")
    parser.add_argument("--int8", action="store_true", help="serve the int8 model (default fp32, as serve does)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of server and offline run")
    parser.add_argument("--batch-wait-ms", type=float, default=5.0)
    parser.add_argument("--hard-limit", type=float, default=900.0, help="abort the whole run after this many seconds")
    parser.add_argument("--out", type=Path, default=OUT / "load")
    args = parser.parse_args(argv)

    signal.signal(signal.SIGALRM, lambda *_: (_ for _ in ()).throw(TimeoutError("--hard-limit reached")))
    signal.alarm(int(args.hard_limit))
    sys.path.insert(0, str(REPO / "src"))
    from somelvlm.serve.server import free_port

    texts = tweets(args.posts)
    offline_seconds = min(args.duration, 20.0)
    off_before = offline_in_subprocess(args, offline_seconds)  # before and after: the shared CPU's load drifts
    print(json.dumps({"offline_before": off_before}), flush=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_server(port, args.int8, args.threads, args.batch_wait_ms)
    levels = []
    load_before = os.getloadavg()
    try:
        wait_healthy(url, proc)
        for n in [int(c) for c in args.clients.split(",")]:
            before = batch_stats(url)
            row = asyncio.run(run_level(url, n, args.duration, texts))
            after = batch_stats(url)
            row["mean_batch"] = round((after[0] - before[0]) / max(after[1] - before[1], 1), 1)
            row["loadavg_1m"] = round(os.getloadavg()[0], 2)
            levels.append(row)
            print(json.dumps(row), flush=True)
    finally:
        try:
            stop_process(proc)
        except subprocess.TimeoutExpired:
            pass  # killed: the measurements are already taken
    off_after = offline_in_subprocess(args, offline_seconds)
    print(json.dumps({"offline_after": off_after}), flush=True)
    off = {"posts_per_s": round((off_before["posts_per_s"] + off_after["posts_per_s"]) / 2, 1),
           "before": off_before, "after": off_after}
    best = max(r["rps"] for r in levels)
    result = {"machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "loadavg_at_start": [round(x, 2) for x in load_before],
                          "note": "the CPU is shared with other engineers' jobs running at the same time"},
              "model": "some-mini", "precision": "int8" if args.int8 else "fp32", "tasks_per_post": 27,
              "batch_wait_ms": args.batch_wait_ms, "threads": args.threads, "duration_s": args.duration,
              "levels": levels, "offline": off, "best_rps_over_offline": round(best / off["posts_per_s"], 3),
              "targets": {"zero_5xx": all(r["errors_5xx"] == 0 for r in levels),
                          "p99_8_clients_le_250ms": next((r["p99_ms"] <= 250 for r in levels if r["clients"] == 8), None),
                          "throughput_ge_60pct_offline": best >= 0.6 * off["posts_per_s"]}}
    write(result, args.out)


def write(result: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# Load test of `somelvlm serve` (loopback)", "",
             f"`python benchmarks/load.py --duration {result['duration_s']:g}`: SoMe-mini {result['precision']}, all "
             f"{result['tasks_per_post']} heads per post, single real tweets per request, micro-batching window "
             f"{result['batch_wait_ms']:g} ms, {result['threads']} torch threads. {result['machine']['cpu']}, "
             f"{result['machine']['cores']} cores (load average at start "
             f"{result['machine']['loadavg_at_start'][0]}).", "",
             "| clients | requests/s | p50 ms | p99 ms | mean batch | errors | 5xx | load avg |",
             "|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in result["levels"]:
        errors = ", ".join(f"{k}: {v}" for k, v in r["errors"].items()) or "none"
        lines.append(f"| {r['clients']} | {r['rps']} | {r['p50_ms']} | {r['p99_ms']} | {r['mean_batch']} | {errors} | "
                     f"{r['errors_5xx']} | {r['loadavg_1m']} |")
    off, t = result["offline"], result["targets"]
    lines += ["", f"Offline, same model and posts, batches of 64: **{off['posts_per_s']} posts/s** (mean of "
                  f"{off['before']['posts_per_s']} before and {off['after']['posts_per_s']} after the server ran). Best served "
                  f"throughput / offline: **{100 * result['best_rps_over_offline']:.0f} %**.", "",
              "| target | met |", "|---|---|",
              f"| zero 5xx | {t['zero_5xx']} |", f"| p99 <= 250 ms at 8 clients | {t['p99_8_clients_le_250ms']} |",
              f"| served throughput >= 60 % of offline | {t['throughput_ge_60pct_offline']} |", "",
              "Client, server and the offline run share the machine's cores, and any other job on the machine "
              "slows all three: read the numbers with the load average beside them (about 2 means the machine "
              "held only this benchmark). The throughput ratio compares runs under the same load.", ""]
    for path, text in ((out.with_suffix(".json"), json.dumps(result, indent=1) + "\n"), (out.with_suffix(".md"), "\n".join(lines))):
        atomic_write_text(path, text)
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
