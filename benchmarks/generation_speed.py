"""Generation speed of the SoMe-LVLM on CPU: tokens per second single-stream and batched.

    python benchmarks/generation_speed.py [--model some-lvlm] [--prompts 16] [--batch 8]
        [--max-new-tokens 32] [--threads 2] [--openai-url http://127.0.0.1:8000/v1 --openai-model NAME]
        [--out benchmarks/results]

Real prompts: detoxify instructions built from ParaDetox test posts (a SoMeData build, --somedata).
Greedy decoding; one warm-up call; model loading excluded. Generated tokens are counted with the
model's tokenizer on the returned answers. With --openai-url (a vLLM server on a lent GPU), the
same prompts go through the OpenAI-compatible backend for comparison. Writes generation_speed.json
and generation_speed.md to --out.
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


def prompts_from(somedata: Path, n: int) -> list[str]:
    out = []
    with (somedata / "test.jsonl").open(encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["task"] == "detoxify":
                out.append(r["conversations"][0]["value"])
            if len(out) == n:
                break
    if len(out) < n:
        raise ValueError(f"{somedata}: only {len(out)} detoxify test records, asked for {n}")
    return out


def measure(gen, tokenizer, prompts: list[str], batch: int, max_new: int) -> dict:
    from somelvlm.models.generation import GenerationConfig

    cfg = GenerationConfig(max_new_tokens=max_new)
    gen.generate(prompts[:batch], config=cfg)  # warm-up
    t0 = time.perf_counter()
    answers = []
    for i in range(0, len(prompts), batch):
        answers += gen.generate(prompts[i:i + batch], config=cfg)
    seconds = time.perf_counter() - t0
    new_tokens = sum(len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers)
    return {"batch": batch, "prompts": len(prompts), "new_tokens": new_tokens, "seconds": round(seconds, 2),
            "tokens_per_s": round(new_tokens / seconds, 2), "prompts_per_s": round(len(prompts) / seconds, 3)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="some-lvlm")
    ap.add_argument("--somedata", type=Path, default=REPO / "runs" / "somedata")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--openai-url", default=None)
    ap.add_argument("--openai-model", default="some-lvlm")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    import torch

    from somelvlm.models.generation import GENERATORS, load_generator

    torch.set_num_threads(args.threads)
    prompts = prompts_from(args.somedata, args.prompts)
    gen = load_generator(args.model)
    rows = {"single_stream": measure(gen, gen.tokenizer, prompts[: max(4, args.prompts // 4)], 1, args.max_new_tokens),
            "batched": measure(gen, gen.tokenizer, prompts, args.batch, args.max_new_tokens)}
    if args.openai_url:
        remote = GENERATORS.get("openai_http")(base_url=args.openai_url, model=args.openai_model)
        rows["openai_http"] = measure(remote, gen.tokenizer, prompts, args.batch, args.max_new_tokens)
    result = {"model": args.model, "device": "cuda" if torch.cuda.is_available() else "cpu", "cpu": cpu_name(),
              "loadavg_1m": round(os.getloadavg()[0], 2), "threads": args.threads, "max_new_tokens": args.max_new_tokens, "results": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "generation_speed.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    lines = ["# Generation speed (greedy, CPU)", "",
             f"Model {args.model} (SmolLM2-135M + merged LoRA), {args.threads} torch threads on {result['cpu']} "
             f"(1-minute load average at the end {result['loadavg_1m']} on {os.cpu_count()} cores: other jobs slow it).", "",
             "| mode | batch | prompts | new tokens | seconds | tokens/s | prompts/s |", "|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['batch']} | {r['prompts']} | {r['new_tokens']} | {r['seconds']} "
                     f"| {r['tokens_per_s']} | {r['prompts_per_s']} |")
    (args.out / "generation_speed.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    main()
