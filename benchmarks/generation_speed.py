"""Generation speed of the SoMe-LVLM on CPU against this machine's limits, per runtime.

    python benchmarks/generation_speed.py [--model some-lvlm] [--runtimes torch ctranslate2]
        [--prompts 16] [--batch 8] [--max-new-tokens 32] [--threads 2] [--data-root ../shared/data]
        [--openai-url http://127.0.0.1:8000/v1 --openai-model NAME] [--out benchmarks/results]

Real prompts: SoMeLVLM's detoxify instruction over ParaDetox test posts. Greedy decoding; one
warm-up call per mode; model loading excluded; generated tokens are the answers' own counts.

The limits are measured in the same run, with the same thread count:
- memory: the rate at which this CPU streams a 512 MB fp32 tensor (a decoder step at batch 1 must
  read every weight once, so ``weight bytes / rate`` is the least time per step);
- compute: the fp32 GEMM rate of a 2048^3 matmul (``2 * parameters`` FLOPs per token).
The bound of a measured run is the least time its exact work could take: each batch's prompt
tokens at the GEMM rate, plus each decode step at ``max(weights / bandwidth, active rows * 2 *
parameters / GEMM rate)``. ``fraction`` = bound time / measured time (1.0 = at the roofline).
Writes generation_speed.json and generation_speed.md to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from _machine import cpu_name  # benchmarks/_machine.py

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "results"
DEFAULT_DATA = REPO.parent / "shared" / "data"


def detox_prompts(data_root: Path, n: int) -> list[str]:
    """``n`` detoxify prompts (the task's first prompt) over ParaDetox test posts."""
    from somelvlm.evaluate.harness import _task_examples
    from somelvlm.pipeline import _prompt
    from somelvlm.posts import Post
    from somelvlm.taxonomy.registry import get_task

    task = get_task("detoxify")
    examples = _task_examples("detoxify", data_root, "test")[:n]
    if len(examples) < n:
        raise ValueError(f"{data_root}: only {len(examples)} detoxify test posts, asked for {n}")
    return [_prompt(task, 0, Post(id=str(i), text=ex.text, meta=dict(ex.meta) or None))
            for i, (ex, _) in enumerate(examples)]


def memory_rate(threads: int, mb: int = 512) -> float:
    """Bytes per second this CPU streams from memory (sum over a tensor far larger than the caches)."""
    import torch

    torch.set_num_threads(threads)
    x = torch.ones(mb * (1 << 20) // 4)
    x.sum()
    best = min(_timed(x.sum) for _ in range(5))
    return x.numel() * 4 / best


def gemm_rate(threads: int, n: int = 2048) -> float:
    """fp32 FLOPs per second of an ``n x n`` by ``n x n`` matmul."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(5))
    return 2 * n ** 3 / best


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def measure(gen, prompts: list[str], batch: int, max_new: int) -> dict:
    """Run ``prompts`` in batches of ``batch``; seconds, token counts and the per-batch work."""
    from somelvlm.models.generation import GenerationConfig

    cfg = GenerationConfig(max_new_tokens=max_new)
    gen.chat(prompts[:batch], config=cfg)  # warm-up
    work, new_tokens = [], 0
    t0 = time.perf_counter()
    for i in range(0, len(prompts), batch):
        out = gen.chat(prompts[i:i + batch], config=cfg)
        new_tokens += sum(g.completion_tokens for g in out)
        work.append({"prompt_tokens": [g.prompt_tokens for g in out], "new_tokens": [g.completion_tokens for g in out]})
    seconds = time.perf_counter() - t0
    return {"batch": batch, "prompts": len(prompts), "new_tokens": new_tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(new_tokens / seconds, 2), "prompts_per_s": round(len(prompts) / seconds, 3),
            "work": work}


def components(gen, prompt: str, prefill_tokens: int = 64, steps: int = 32) -> dict:
    """The two halves of decoding, timed apart at batch 1: one forward over ``prefill_tokens`` prompt
    tokens, and one decode step (the mean over ``steps`` forced steps after that prompt)."""
    import torch

    ids = gen.tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids = (ids * (prefill_tokens // max(len(ids), 1) + 1))[:prefill_tokens]
    if gen.runtime == "ctranslate2":
        ct2 = gen._ct2.generator  # the benchmark reaches inside to force the answer's length
        tokens = [gen.tokenizer.convert_ids_to_tokens(ids)]

        def run(n: int) -> None:
            ct2.generate_batch(tokens, max_length=n, min_length=n, include_prompt_in_result=False, end_token=[])
    else:
        lm = gen.model.lm

        def run(n: int) -> None:
            with torch.inference_mode():
                out = lm(torch.tensor([ids]), use_cache=True, logits_to_keep=1)
                cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
                for _ in range(n - 1):
                    out = lm(token, past_key_values=cache, use_cache=True)
                    cache, token = out.past_key_values, out.logits[:, -1:].argmax(-1)
    run(2)
    prefill = min(_timed(lambda: run(1)) for _ in range(3))
    decode = (min(_timed(lambda: run(steps + 1)) for _ in range(2)) - prefill) / steps
    return {"prefill_tokens": prefill_tokens, "prefill_ms": round(prefill * 1000, 1), "decode_step_ms": round(decode * 1000, 2)}


def bound_seconds(work: list[dict], weight_bytes: float, params: float, bandwidth: float, gemm: float) -> float:
    """The least time the measured work could take on this machine (see the module docstring)."""
    total = 0.0
    for batch in work:
        total += sum(batch["prompt_tokens"]) * 2 * params / gemm
        for step in range(max(batch["new_tokens"], default=0)):
            active = sum(n > step for n in batch["new_tokens"])
            total += max(weight_bytes / bandwidth, active * 2 * params / gemm)
    return total


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="some-lvlm")
    ap.add_argument("--runtimes", nargs="+", default=["torch", "ctranslate2"])
    ap.add_argument("--data-root", type=Path, default=Path(os.environ.get("SOMELVLM_DATA", DEFAULT_DATA)))
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--openai-url", default=None)
    ap.add_argument("--openai-model", default="some-lvlm")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    import somelvlm  # noqa: F401 - before torch: loads CTranslate2 first (see somelvlm._load_ctranslate2_before_torch)
    import torch

    from somelvlm.models import BACKENDS
    from somelvlm.models.generation import load_generator

    torch.set_num_threads(args.threads)
    prompts = detox_prompts(args.data_root, args.prompts)
    bandwidth, gemm = memory_rate(args.threads), gemm_rate(args.threads)
    rows: dict[str, dict] = {}
    for runtime in args.runtimes:
        gen = load_generator(args.model, generation_runtime=runtime)
        if gen.runtime != runtime:
            raise SystemExit(f"runtime {runtime!r} is not available here (got {gen.runtime!r})")
        lm = gen.model.lm
        params = float(sum(p.numel() for p in lm.parameters()))
        weight_bytes = float(sum(p.numel() * p.element_size() for p in lm.parameters()))
        parts = components(gen, prompts[0])
        nonembed = params - float(lm.get_input_embeddings().weight.numel())
        parts.update(prefill_gflops=round(parts["prefill_tokens"] * 2 * nonembed / parts["prefill_ms"] / 1e6, 1),
                     decode_tokens_per_s=round(1000 / parts["decode_step_ms"], 1))
        parts.update(prefill_fraction=round(parts["prefill_gflops"] * 1e9 / gemm, 3),
                     decode_fraction=round(parts["decode_tokens_per_s"] * weight_bytes / bandwidth, 3))
        rows[f"{runtime}/components"] = parts
        for mode, batch, subset in (("single_stream", 1, prompts[: max(4, args.prompts // 2)]),
                                    (f"batch_{args.batch}", args.batch, prompts)):
            r = measure(gen, subset, batch, args.max_new_tokens)
            bound = bound_seconds(r["work"], weight_bytes, params, bandwidth, gemm)
            r.update(runtime=runtime, bound_tokens_per_s=round(r["new_tokens"] / bound, 1),
                     fraction=round(bound / r["seconds"], 3))
            rows[f"{runtime}/{mode}"] = r
        del gen
    if args.openai_url:
        remote = BACKENDS.get("openai_http")(args.openai_url, model=args.openai_model)
        rows["openai_http"] = measure(remote, prompts, args.batch, args.max_new_tokens)
    result = {"model": args.model, "device": "cpu", "cpu": cpu_name(), "threads": args.threads,
              "loadavg_1m": round(os.getloadavg()[0], 2), "max_new_tokens": args.max_new_tokens,
              "limits": {"memory_GBps": round(bandwidth / 1e9, 1), "gemm_GFLOPs": round(gemm / 1e9, 1),
                         "weight_MB": round(weight_bytes / 1e6, 1), "params_M": round(params / 1e6, 1),
                         "single_stream_bound_tokens_per_s": round(bandwidth / weight_bytes, 1)},
              "results": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "generation_speed.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    lim = result["limits"]
    lines = ["# Generation speed (greedy, CPU) against this machine's limits", "",
             f"Model {args.model} (SmolLM2-135M + merged LoRA, fp32), {args.threads} threads on {result['cpu']}; "
             f"1-minute load average at the end {result['loadavg_1m']} on {os.cpu_count()} cores.", "",
             f"Limits measured in the same run: memory {lim['memory_GBps']} GB/s (so {lim['weight_MB']} MB of weights "
             f"bound one stream at {lim['single_stream_bound_tokens_per_s']} tokens/s), fp32 GEMM {lim['gemm_GFLOPs']} "
             f"GFLOP/s. `bound` is the rate at which the run's exact work (its prompts' prefill and every decode "
             f"step) would go at those limits; `fraction` = measured / bound.", "",
             "| runtime | mode | prompts | new tokens | seconds | tokens/s | bound tokens/s | fraction |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        runtime, _, mode = name.partition("/")
        if mode == "components":
            continue
        lines.append(f"| {runtime} | {mode or 'batch'} | {r['prompts']} | {r['new_tokens']} | {r['seconds']} "
                     f"| {r['tokens_per_s']} | {r.get('bound_tokens_per_s', '')} | {r.get('fraction', '')} |")
    lines += ["", "Decoding in two halves at batch 1 (a 64-token prompt; 32 forced steps after it):", "",
              "| runtime | prefill 64 tokens (ms) | prefill GFLOP/s | of GEMM rate | decode step (ms) | decode tokens/s "
              "| of memory bound |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        if name.endswith("/components"):
            lines.append(f"| {name.split('/')[0]} | {r['prefill_ms']} | {r['prefill_gflops']} | {r['prefill_fraction']} "
                         f"| {r['decode_step_ms']} | {r['decode_tokens_per_s']} | {r['decode_fraction']} |")
    (args.out / "generation_speed.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    main()
