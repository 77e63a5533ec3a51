"""How often the answer parser reads a model's answer the way a person does.

    python benchmarks/parser_accuracy.py [--cases tests/taxonomy/parser_cases.jsonl] [--out benchmarks/results]
    python benchmarks/parser_accuracy.py --collect --somedata /tmp/parser-somedata [--per-task 2 3]

Scoring (the default): every row of the case table (``task``, ``answer``, ``expected``, ``source``)
is parsed with ``somelvlm.taxonomy.parse_answer``; accuracy is the share of rows whose parse equals
the hand-written ``expected`` (a label id, ``invalid``, or a number for ratings), overall, per
source (``smollm2`` / ``some-lvlm`` answers collected from the models, ``hand`` = written hard cases)
and per task. Every miss is listed. Writes ``parser_accuracy.json`` / ``.md`` to ``--out``.

Collection (``--collect``): raw answers of the base SmolLM2-135M-Instruct (zero-shot) and the
shipped tuned ``some-lvlm`` on ``--per-task`` TEST prompts of each classification / rating task
of a SoMeData build (the first by sha1 of the record id, SoMeLVLM's published test prompts first
where the task has them), written UNLABELLED to ``--raw``; a person then writes each row's
``expected`` by reading the answer, not by running the parser.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from collections import Counter, defaultdict
from pathlib import Path

from _machine import cpu_name  # benchmarks/_machine.py

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "results"
CASES = REPO / "tests" / "taxonomy" / "parser_cases.jsonl"
MAX_NEW = {"smollm2": 20, "some-lvlm": 10}
FIRST_MEASUREMENT = {"accuracy": 97.16, "n": 176, "parser_commit": "9d2e00c",
                     "note": "the parser as written before its author read the collected answers; three task "
                             "aliases were added after (half_true 'partially true', oppose 'opposition', "
                             "offensive_meme 'harmless')"}


def load_cases(path: Path) -> list[dict]:
    """The case table; a malformed row names its line."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        row = json.loads(line)
        missing = {"task", "answer", "expected", "source"} - set(row)
        if missing:
            raise ValueError(f"{path}:{n}: missing fields {sorted(missing)}")
        rows.append(row)
    return rows


def same(parsed, expected) -> bool:
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        return isinstance(parsed, float) and abs(parsed - float(expected)) < 1e-9
    return parsed == expected


def score(cases: list[dict]) -> dict:
    from somelvlm.taxonomy import get_task, parse_answer

    hits: Counter = Counter()
    totals: Counter = Counter()
    misses = []
    for row in cases:
        parsed = parse_answer(get_task(row["task"]), row["answer"])
        ok = same(parsed, row["expected"])
        for key in ("all", f"source:{row['source']}", f"task:{row['task']}"):
            totals[key] += 1
            hits[key] += ok
        if not ok:
            misses.append({**row, "parsed": parsed})
    acc = {k: round(100 * hits[k] / totals[k], 2) for k in totals}
    return {"n": totals["all"], "accuracy": acc["all"],
            "by_source": {k.split(":", 1)[1]: {"n": totals[k], "accuracy": acc[k]} for k in sorted(totals)
                          if k.startswith("source:")},
            "by_task": {k.split(":", 1)[1]: {"n": totals[k], "accuracy": acc[k]} for k in sorted(totals)
                        if k.startswith("task:")},
            "misses": misses}


def to_markdown(result: dict) -> str:
    lines = ["# Answer parser accuracy", "",
             f"{result['n']} answers with a hand-written expected label (`{result['cases']}`); "
             f"parser accuracy **{result['accuracy']:.2f}%** (target >= 98%).", "",
             f"Before the table was read: {FIRST_MEASUREMENT['accuracy']:.2f}% on the same {FIRST_MEASUREMENT['n']} "
             f"answers (parser of commit {FIRST_MEASUREMENT['parser_commit']}: {FIRST_MEASUREMENT['note']}).", "",
             "| source | answers | accuracy |", "|---|---:|---:|"]
    for name, s in result["by_source"].items():
        lines.append(f"| {name} | {s['n']} | {s['accuracy']:.1f}% |")
    lines += ["", "| task | answers | accuracy |", "|---|---:|---:|"]
    for name, s in result["by_task"].items():
        lines.append(f"| {name} | {s['n']} | {s['accuracy']:.1f}% |")
    lines += ["", "## Misses", ""]
    if not result["misses"]:
        lines.append("None.")
    for m in result["misses"]:
        lines.append(f"- `{m['task']}` ({m['source']}): {json.dumps(m['answer'], ensure_ascii=False)} -> "
                     f"`{m['parsed']}`, expected `{m['expected']}`")
    lines += ["", f"Machine: {result['machine']}. Reproduce: `python benchmarks/parser_accuracy.py`.", ""]
    return "\n".join(lines)


def collect(args) -> None:
    import torch
    from PIL import Image

    from somelvlm.evaluate.generative import generate_answers
    from somelvlm.models.generation import load_generator
    from somelvlm.models.lvlm import LVLMGenerator
    from somelvlm.taxonomy import all_tasks

    torch.set_num_threads(args.threads)
    tasks = [t.name for t in all_tasks() if t.kind in ("classification", "regression")
             and (not args.tasks or t.name in args.tasks)]
    by_task: dict[str, list[dict]] = defaultdict(list)
    with (args.somedata / "test.jsonl").open(encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["task"] in tasks:
                by_task[r["task"]].append(r)
    root = Path(os.environ.get("SOMELVLM_DATA", REPO.parent / "shared" / "data"))
    done = {}
    if args.raw.is_file():  # a rerun continues
        for line in args.raw.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            done[(row["source"], row["task"])] = done.get((row["source"], row["task"]), []) + [row]
    offset = 0
    for which in args.models:
        per_task = args.per_task[args.models.index(which)] if len(args.per_task) > 1 else args.per_task[0]
        t0 = time.perf_counter()
        gen = None
        for task in sorted(by_task):
            if (which, task) in done:
                continue
            # published SoMeLVLM prompts first, then by sha1 of the id; each model gets other records
            records = sorted(by_task[task], key=lambda r: (r["source"] != "somelvlm_testset",
                                                           hashlib.sha1(r["id"].encode()).digest()))
            records = records[offset:offset + per_task]
            if gen is None:
                gen = (LVLMGenerator.from_base("smollm2-135m-instruct", name="smollm2 zero-shot")
                       if which == "smollm2" else load_generator("some-lvlm"))
                reads_images = getattr(getattr(gen, "model", None), "connector", None) is not None

            def images(r):
                return Image.open(root / r["image"]).convert("RGB") if reads_images and "image" in r else None

            answers = generate_answers(gen, records, images, 8, MAX_NEW[which])
            rows = [{"task": task, "answer": a, "source": which, "id": r["id"],
                     "prompt_tail": r["conversations"][0]["value"][-160:], "target": r["target"]}
                    for r, a in zip(records, answers)]
            with args.raw.open("a", encoding="utf-8") as f:
                f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            print(which, task, [a[:60] for a in answers], flush=True)
        offset += per_task
        print(which, f"{time.perf_counter() - t0:.0f} s", flush=True)
    print(f"raw answers -> {args.raw}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=Path, default=CASES)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--collect", action="store_true", help="collect raw model answers instead of scoring")
    ap.add_argument("--somedata", type=Path, default=REPO / "runs" / "somedata")
    ap.add_argument("--raw", type=Path, default=REPO / "runs" / "parser_raw_answers.jsonl")
    ap.add_argument("--models", nargs="+", default=["smollm2", "some-lvlm"], choices=["smollm2", "some-lvlm"])
    ap.add_argument("--per-task", type=int, nargs="+", default=[2, 3],
                    help="test prompts per task, one number for all models or one per --models entry")
    ap.add_argument("--tasks", nargs="*", default=[], help="collect for these tasks only (default: all)")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if args.collect:
        args.raw.parent.mkdir(parents=True, exist_ok=True)
        collect(args)
        return
    result = score(load_cases(args.cases))
    result["cases"] = str(args.cases.relative_to(REPO)) if args.cases.is_relative_to(REPO) else str(args.cases)
    result["machine"] = cpu_name()
    result["first_measurement"] = FIRST_MEASUREMENT
    args.out.mkdir(parents=True, exist_ok=True)
    for name, text in (("parser_accuracy.json", json.dumps(result, indent=1, ensure_ascii=False) + "\n"),
                       ("parser_accuracy.md", to_markdown(result))):
        tmp = args.out / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, args.out / name)
    print(to_markdown(result))


if __name__ == "__main__":
    main()
