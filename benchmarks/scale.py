"""The local batch engine against the Ray engine with 1 and 2 workers, on real posts.

    nice -n 10 python benchmarks/scale.py [--posts 20000] [--block-rows 1000]

Real tweets (TweetEval emoji + sentiment test texts) as one JSONL file; every variant runs the same
default pipeline (SoMe-mini, every classification and rating head, text only) over all of it, each
in its own process, and must write every id exactly once:

- ``local``: ``somelvlm analyze`` 's engine (``batch.runner.run``), one process, 2 threads;
- ``ray-1``: a local Ray (2 CPUs), one actor with 2 CPUs (2 threads);
- ``ray-2``: a local Ray (2 CPUs), two actors with 1 CPU (1 thread) each.

End to end means from the start of the variant's process work (model load, Ray start) to the last
record written; the throughput ratio is against ``local``; the overhead is the extra seconds over
``local``. Peak memory: the process's peak RSS (local), the driver's and each actor's (Ray). The load
average is recorded at each variant's start and end: the machine is shared and has 2 cores.
Writes benchmarks/results/scale.json and scale.md.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _machine import cpu_name  # benchmarks/_machine.py (the script's folder is on sys.path)

from somelvlm.atomic import atomic_write_text

OUT = Path(__file__).parent / "results"
OPTIONS = {"ocr": False, "multimodal": False}
"""The analyze defaults (SoMe-mini, every head) on text posts; no OCR or image heads to load."""
VARIANTS = {"local": None, "ray-1": (1, 2.0), "ray-2": (2, 1.0)}
"""Ray variants: (workers, CPUs per worker) on a local Ray with 2 CPUs."""


def tweets(n: int) -> list[str]:
    root = Path(os.environ.get("SOMELVLM_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    texts = []
    for task in ("emoji", "sentiment"):
        lines = (root / f"tweeteval/datasets/{task}/test_text.txt").read_text(encoding="utf-8").splitlines()
        texts += [t for t in lines if t.strip()]
    if len(texts) < n:
        raise SystemExit(f"only {len(texts)} tweets available, asked for {n}")
    return texts[:n]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measured_pipeline(options: dict, stats_dir: str):
    """The Pipeline in a Ray actor, writing the actor's load time and peak RSS after every call."""
    from somelvlm.pipeline import Pipeline

    start = time.perf_counter()
    pipe = Pipeline(**options)
    load_s = time.perf_counter() - start
    path = Path(stats_dir) / f"{os.getpid()}.json"

    def predict(posts):
        result = pipe(posts)
        path.write_text(json.dumps({"pid": os.getpid(), "load_s": round(load_s, 2), "peak_rss_mb": round(peak_rss_mb(), 1)}))
        return result

    return predict


def run_variant(name: str, source: Path, out: Path, block_rows: int) -> dict:
    """One variant in this process; returns its measurements."""
    load_start = os.getloadavg()[0]
    start = time.perf_counter()
    result: dict = {"variant": name}
    if VARIANTS[name] is None:
        from somelvlm.batch.runner import RunConfig, run
        from somelvlm.pipeline import Pipeline

        pipe = Pipeline(**OPTIONS, threads=2)
        result["model_load_s"] = round(time.perf_counter() - start, 2)
        summary = run(source, out / "local.parquet", pipe, RunConfig(batch_size=64), progress=False)
        import pyarrow.parquet as pq

        ids = pq.read_table(out / "local.parquet", columns=["id"])["id"].to_pylist()
        result.update(written=summary.written, errors=summary.errors, peak_rss_mb=round(peak_rss_mb(), 1),
                      tasks=len(pipe.tasks))
    else:
        import ray

        from somelvlm.batch.ray_engine import RayConfig, connect, read_results, run_ray

        workers, cpus = VARIANTS[name]
        config = RayConfig(workers=workers, num_cpus_per_worker=cpus, num_cpus=2, block_rows=block_rows)
        connect(config)
        result["ray_start_s"] = round(time.perf_counter() - start, 2)
        stats = Path(tempfile.mkdtemp(prefix="scale-stats-"))
        summary = run_ray(source, out / name, OPTIONS, config, progress=False,
                          make_predict=functools.partial(measured_pipeline, stats_dir=str(stats)))
        ray.shutdown()
        ids = read_results(out / name)["id"].to_pylist()
        actors = [json.loads(p.read_text()) for p in sorted(stats.glob("*.json"))]
        result.update(written=summary.written, errors=summary.errors, failed=summary.failed, blocks=summary.blocks,
                      actors=actors, model_load_s=max((a["load_s"] for a in actors), default=None),
                      driver_peak_rss_mb=round(peak_rss_mb(), 1),
                      peak_rss_mb=max((a["peak_rss_mb"] for a in actors), default=None))
    seconds = time.perf_counter() - start
    warm = seconds - result.get("ray_start_s", 0) - (result.get("model_load_s") or 0)
    result.update(posts=len(ids), unique_ids=len(set(ids)), seconds=round(seconds, 2),
                  posts_per_s=round(len(ids) / seconds, 2), posts_per_s_after_startup=round(len(ids) / warm, 2),
                  loadavg_start=round(load_start, 2),
                  loadavg_end=round(os.getloadavg()[0], 2))
    return result


def _round_table(report: dict, rnd: dict) -> list[str]:
    local = next((r for r in rnd["variants"] if r["variant"] == "local"), None)
    lines = [f"Command: `{rnd['command']}` (order: {', '.join(r['variant'] for r in rnd['variants'])}).", "",
             "| variant | workers x CPUs | posts | every id once | end to end (s) | posts/s | ratio to local | "
             "overhead vs local (s) | posts/s after start-up | model load (s) | peak RSS per worker (MB) | "
             "load avg start / end |",
             "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rnd["variants"]:
        shape = {"local": "1 process x 2 threads", "ray-1": "1 x 2", "ray-2": "2 x 1"}[r["variant"]]
        ratio = f"{r['posts_per_s'] / local['posts_per_s']:.2f}" if local else "-"
        overhead = f"{r['seconds'] - local['seconds']:+.1f}" if local else "-"
        once = "yes" if r["posts"] == r["unique_ids"] == report["posts"] else f"NO ({r['unique_ids']})"
        lines.append(f"| {r['variant']} | {shape} | {r['posts']} | {once} | {r['seconds']:.1f} | {r['posts_per_s']:.1f} | "
                     f"{ratio} | {overhead} | {r['posts_per_s_after_startup']:.1f} | {r.get('model_load_s')} | "
                     f"{r.get('peak_rss_mb')} | {r['loadavg_start']} / {r['loadavg_end']} |")
    ray_rows = [r for r in rnd["variants"] if r["variant"] != "local"]
    if ray_rows:
        lines += ["", "Ray start (local cluster, 2 CPUs): " + ", ".join(f"{r['variant']} {r['ray_start_s']} s" for r in ray_rows)
                  + ". Driver peak RSS: " + ", ".join(f"{r['variant']} {r['driver_peak_rss_mb']} MB" for r in ray_rows)
                  + "."]
    return lines


def to_markdown(report: dict) -> str:
    rounds = report["rounds"]
    lines = ["# Scale: the local engine against Ray with 1 and 2 workers", "",
             f"{report['posts']} real tweets (TweetEval emoji + sentiment test), the default pipeline (SoMe-mini, "
             f"{report['tasks']} heads, text only), blocks of {report['block_rows']} rows, on {report['cpu']} with "
             f"{report['cores']} cores shared with other work. Each variant runs in its own process and must write every "
             "id exactly once. The load average (1 min) at each variant's start and end is in the tables: with a "
             "load far above 2 the absolute rates are depressed and single ratios are noisy.", ""]
    names = [r["variant"] for r in rounds[0]["variants"]]
    mean = {n: [r for rnd in rounds for r in rnd["variants"] if r["variant"] == n] for n in names}
    rate = {n: sum(r["posts_per_s"] for r in rows) / len(rows) for n, rows in mean.items()}
    warm = {n: sum(r["posts_per_s_after_startup"] for r in rows) / len(rows) for n, rows in mean.items()}
    if "local" in rate:
        lines += [f"Mean over {len(rounds)} round(s): " + "; ".join(
            f"{n} {rate[n]:.1f} posts/s end to end ({rate[n] / rate['local']:.2f}x local), {warm[n]:.1f} after start-up"
            for n in names) + ".", ""]
    for i, rnd in enumerate(rounds, 1):
        lines += [f"## Round {i}", "", *_round_table(report, rnd), ""]
    lines += ["Ray's own daemons (GCS, raylet, object store) are not counted in the per-worker peak. Posts/s after "
              "start-up leaves out Ray's start and the slowest actor's model load (local: the model load).", "",
              report.get("note", "")]
    return "\n".join(lines).rstrip() + "\n"


def merge(paths: list[Path], note: str) -> dict:
    """One report from the results of several invocations (each a round, e.g. in opposite orders)."""
    reports = [json.loads(Path(p).read_text()) for p in paths]
    rounds = [rnd for rep in reports for rnd in rep.get("rounds", [{"command": rep.get("command"),
                                                                     "variants": rep.get("variants", [])}])]
    return {**{k: reports[0][k] for k in ("posts", "tasks", "cpu", "cores", "block_rows")}, "rounds": rounds,
            "note": note or reports[-1].get("note", "")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--posts", type=int, default=20_000)
    parser.add_argument("--block-rows", type=int, default=1000)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--note", default="", help="A sentence added to the markdown (what disappointed, the load).")
    parser.add_argument("--merge", type=Path, nargs="+", help="Combine earlier scale.json files (one round each) "
                                                                 "into one report, running nothing.")
    args = parser.parse_args(argv)
    if args.merge:
        write(merge(args.merge, args.note))
        return
    if args.variant:
        print("RESULT " + json.dumps(run_variant(args.variant, args.input, args.out, args.block_rows)), flush=True)
        return
    work = Path(tempfile.mkdtemp(prefix="somelvlm-scale-"))
    source = work / "posts.jsonl"
    source.write_text("".join(json.dumps({"id": f"tw-{i}", "text": t}) + "\n" for i, t in enumerate(tweets(args.posts))),
                      encoding="utf-8")
    results = []
    for name in args.variants.split(","):
        cmd = [sys.executable, __file__, "--variant", name, "--input", str(source), "--out", str(work),
               "--block-rows", str(args.block_rows)]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            raise SystemExit(f"variant {name} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        results.append(json.loads(line.removeprefix("RESULT ")))
        print(json.dumps(results[-1]), flush=True)
    tasks = next((r["tasks"] for r in results if "tasks" in r), None)
    command = "python benchmarks/scale.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write({"posts": args.posts, "tasks": tasks, "cpu": cpu_name(), "cores": os.cpu_count(), "block_rows": args.block_rows,
           "rounds": [{"command": command, "variants": results}], "note": args.note})


def write(report: dict) -> None:
    OUT.mkdir(exist_ok=True)
    atomic_write_text(OUT / "scale.json", json.dumps(report, indent=1))
    atomic_write_text(OUT / "scale.md", to_markdown(report))
    print(to_markdown(report))


if __name__ == "__main__":
    main()
