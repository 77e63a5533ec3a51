"""Base SmolLM2 zero-shot against the tuned SoMe-LVLM, per task, in the paper's table shape.

    python benchmarks/generation_quality.py [--models base tuned] [--n 40] [--judge none|base|openai --judge-url URL]
        [--somedata runs/somedata] [--tuned some-lvlm] [--out benchmarks/results]

Held-out TEST records of a SoMeData build (``somelvlm data build``), a fixed sample of ``--n`` per
task (the first by sha1 of the record id). Generation tasks: BLEU / ROUGE-L against every human
reference (ParaDetox: up to three), hashtag F1; classification by generation: Acc, Acc*, valid
share (SoMeLVLM's zero-shot protocol). Detox context: the "delete the toxic words" baseline (a word
list learned from ParaDetox TRAIN pairs) and the published SoMeLVLM numbers. Answers are cached per
model and task under --cache (a rerun continues). Writes generation_quality.json / .md to --out.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

from somelvlm.atomic import atomic_write_text
from _machine import cpu_name  # benchmarks/_machine.py

REPO = Path(__file__).resolve().parents[1]
OUT = Path(__file__).parent / "results"
GEN_TASKS = ["detoxify", "explain_sarcasm", "hashtags", "explain_offensive_meme"]
CLS_TASKS = ["hate", "offensive", "irony", "sarcasm", "emotion", "fake_news", "sentiment"]
PUBLISHED = {"detoxify": {"bleu": 27.13, "rouge_l": 47.76,
                          "source": "SoMeLVLM (Zhang et al. 2024), InstructBLIP Vicuna-7b, their detox test set"}}
MAX_NEW = {"detoxify": 48, "explain_sarcasm": 48, "hashtags": 24, "explain_offensive_meme": 64}


def data_root() -> Path:
    return Path(os.environ.get("SOMELVLM_DATA", REPO.parent / "shared" / "data"))


def sample(records: list[dict], n: int) -> list[dict]:
    return sorted(records, key=lambda r: hashlib.sha1(r["id"].encode()).digest())[:n]


def load_test(somedata: Path, tasks: list[str], n: int) -> dict[str, list[dict]]:
    by_task: dict[str, list[dict]] = {}
    with (somedata / "test.jsonl").open(encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["task"] in tasks:
                by_task.setdefault(r["task"], []).append(r)
    return {t: sample(by_task[t], n) for t in tasks if t in by_task}  # in the order asked for


def paradetox(root: Path):
    """({id: (toxic, [refs])} for every split, [(toxic, refs)] of the TRAIN split)."""
    from somelvlm.data.report import DataReport
    from somelvlm.data.sources import load_source

    every, train = {}, []
    for ex in load_source("paradetox", root, DataReport()):
        refs = json.loads(ex.meta["references"])
        every[ex.id] = (ex.text, refs)
        if ex.split == "train":
            train.append((ex.text, refs))
    return every, train


def cached_answers(cache: Path, model: str, task: str, records: list[dict], run) -> list[str]:
    path = cache / f"{model}__{task}.jsonl"
    done = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            done[row["id"]] = row["answer"]
    todo = [r for r in records if r["id"] not in done]
    if todo:
        for r, a in zip(todo, run(todo)):
            done[r["id"]] = a
        atomic_write_text(path, "".join(json.dumps({"id": r["id"], "answer": done[r["id"]]}, ensure_ascii=False) + "\n"
                                        for r in records if r["id"] in done))
    return [done[r["id"]] for r in records]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--somedata", type=Path, default=REPO / "runs" / "somedata")
    ap.add_argument("--tuned", default="some-lvlm", help="shipped name or folder of the tuned model")
    ap.add_argument("--base", default="smollm2-135m-instruct")
    ap.add_argument("--models", nargs="+", default=["base", "tuned"], choices=["base", "tuned"])
    ap.add_argument("--tasks", nargs="+", default=GEN_TASKS + CLS_TASKS)
    ap.add_argument("--n", type=int, default=40, help="test records per task")
    ap.add_argument("--judge", choices=["none", "base", "openai"], default="none",
                    help="judge for detoxify / explain_sarcasm: the base SmolLM2 (weak), an OpenAI-compatible "
                         "endpoint (--judge-url, --judge-model), or none")
    ap.add_argument("--judge-url", default=None, help="e.g. http://127.0.0.1:8000/v1 (vLLM, our server, OpenAI)")
    ap.add_argument("--judge-model", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--cache", type=Path, default=REPO / "runs" / "generation_eval")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)

    import torch
    from PIL import Image

    from somelvlm.evaluate.generative import generate_answers, judge_task, score_task
    from somelvlm.models.generation import load_generator
    from somelvlm.models.lvlm import LVLMGenerator

    torch.set_num_threads(args.threads)
    args.cache.mkdir(parents=True, exist_ok=True)
    root = data_root()
    tests = load_test(args.somedata, args.tasks, args.n)
    detox_all, detox_train = paradetox(root) if "detoxify" in tests else ({}, [])
    for r in tests.get("detoxify", []):
        r["references"] = detox_all[r["id"]][1]

    result_path = args.out / "generation_quality.json"
    summary = json.loads(result_path.read_text()) if result_path.is_file() else {}
    summary.setdefault("models", {})
    judge = None
    for which in args.models:
        t0 = time.perf_counter()
        if which == "base":
            gen = LVLMGenerator.from_base(args.base, name=f"{args.base} zero-shot")
        else:
            gen = load_generator(args.tuned)
        reads_images = getattr(getattr(gen, "model", None), "connector", None) is not None
        scores = {}
        for task, records in tests.items():
            def images(r):
                return Image.open(root / r["image"]).convert("RGB") if reads_images and "image" in r else None

            def run(todo, task=task, images=images):
                return generate_answers(gen, todo, images, args.batch_size, MAX_NEW.get(task, 12))

            answers = cached_answers(args.cache, which, task, records, run)
            scores[task] = score_task(task, records, answers)
            if args.judge != "none" and task in ("detoxify", "explain_sarcasm"):
                judge = judge or make_judge(args)
                posts = [r["conversations"][0]["value"] for r in records]
                scores[task] |= judge_task(judge, task, records, answers, posts)
            print(which, task, json.dumps(scores[task]), flush=True)
            summary["models"][which] = {"name": gen.name, "scores": scores, "images": reads_images,
                                        "seconds": round(time.perf_counter() - t0, 1)}
            write(summary, args, tests, detox_all, detox_train)  # after every task: a stopped run keeps its scores
    if judge is not None and "detoxify" in tests:
        # Does the judge discriminate at all? Score the references themselves, the toxic input copied
        # unchanged and an empty answer on the same items.
        recs = tests["detoxify"]
        posts = [r["conversations"][0]["value"] for r in recs]
        probes = {"reference": [r["references"][0] for r in recs], "copy_input": [detox_all[r["id"]][0] for r in recs],
                  "empty": ["" for _ in recs]}
        summary["judge_sanity"] = {name: judge_task(judge, "detoxify", recs, answers, posts)["judge"]
                                   for name, answers in probes.items()}
    write(summary, args, tests, detox_all, detox_train)
    print(to_markdown(summary))


def make_judge(args):
    """The judge Generator: the local base model, or an OpenAI-compatible endpoint."""
    from somelvlm.models.generation import GENERATORS
    from somelvlm.models.lvlm import LVLMGenerator

    if args.judge == "openai":
        if not args.judge_url:
            raise SystemExit("--judge openai needs --judge-url (and usually --judge-model)")
        return GENERATORS.get("openai_http")(base_url=args.judge_url, model=args.judge_model)
    return LVLMGenerator.from_base(args.base, name="judge")


def write(summary: dict, args, tests: dict, detox_all: dict, detox_train: list) -> None:
    from somelvlm.evaluate.generative import delete_words, learn_toxic_words, score_task

    if "detoxify" in tests:
        words = learn_toxic_words(detox_train)
        recs = tests["detoxify"]
        baseline = [delete_words(detox_all[r["id"]][0], words) for r in recs]
        summary["baseline_delete_toxic_words"] = {"detoxify": score_task("detoxify", recs, baseline),
                                                  "words_learned": len(words), "train_pairs": len(detox_train)}
        copy = [detox_all[r["id"]][0] for r in recs]
        summary["baseline_copy_input"] = {"detoxify": score_task("detoxify", recs, copy)}
    summary["published"] = PUBLISHED
    summary["setup"] = {"somedata": str(args.somedata), "n_per_task": {t: len(r) for t, r in tests.items()},
                        "split": "test", "decoding": "greedy", "cpu": cpu_name(), "threads": args.threads,
                        "tuned": str(args.tuned), "base": args.base, "judge": args.judge}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "generation_quality.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    (args.out / "generation_quality.md").write_text(to_markdown(summary), encoding="utf-8")


def _f(x) -> str:
    return "-" if x is None or x != x else f"{x:.2f}"


def to_markdown(s: dict) -> str:
    models = s.get("models", {})
    base, tuned = models.get("base", {}).get("scores", {}), models.get("tuned", {}).get("scores", {})
    n = s["setup"]["n_per_task"]
    lines = ["# Generation quality: base zero-shot vs tuned SoMe-LVLM", "",
             f"Test records per task: {n}; greedy decoding; CPU: {s['setup']['cpu']}.", "",
             "| task | metric | base (zero-shot) | tuned | delete-toxic-words | published SoMeLVLM |",
             "|---|---|---:|---:|---:|---:|"]
    for task in n:
        metrics = (["accuracy", "acc_star", "valid_share"] if "accuracy" in (base.get(task) or tuned.get(task) or {})
                   else ["bleu", "rouge_l"] + (["hashtag_f1"] if task == "hashtags" else [])
                   + (["judge"] if "judge" in (tuned.get(task) or {}) else []))
        for m in metrics:
            bl = s.get("baseline_delete_toxic_words", {}).get(task, {}).get(m) if task == "detoxify" else None
            pub = s.get("published", {}).get(task, {}).get(m)
            lines.append(f"| {task} | {m} | {_f(base.get(task, {}).get(m))} | {_f(tuned.get(task, {}).get(m))} "
                         f"| {_f(bl)} | {_f(pub)} |")
    if "baseline_copy_input" in s:
        c = s["baseline_copy_input"]["detoxify"]
        lines += ["", f"Copying the toxic input unchanged scores BLEU {c['bleu']:.2f} / ROUGE-L {c['rouge_l']:.2f} "
                      "on the same items (ParaDetox rewrites keep most words)."]
    if "judge_sanity" in s:
        j = s["judge_sanity"]
        lines += ["", f"Judge sanity check on detoxify ({s['setup']['judge']} judge): the references themselves score "
                      f"{j['reference']:.2f}, the toxic input copied {j['copy_input']:.2f}, an empty answer "
                      f"{j['empty']:.2f}. A judge that cannot tell these apart says nothing about the models."]
    lines += ["", "The published numbers are context only: another model (7B), another test sample, another "
                  "prompt set.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    main()
