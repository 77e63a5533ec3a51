"""Does the image help? Each image+text head against the text head on the same image posts.

    nice -n 10 python benchmarks/image_helps.py [--data-root ../shared/data] [--ship]
    python benchmarks/image_helps.py --reuse --ship     # ship the decision of the last measurement

For every task that has both an image+text head (``some-mini-mm``) and a text head (``some-mini``):
the task's VAL and TEST posts that carry an image (every source of the task; an image file that
cannot be read drops the post from both routes), each read the way the Pipeline reads it (caption,
else OCR), answered once by the image+text route and once by the text route of the one Pipeline
(``Pipeline.head_probs``), scored with the task's primary metric (``somelvlm tasks show TASK``).

Decision rule (VALIDATION only): the image helps when the image+text head's val primary metric is
higher than the text head's on the same val posts. Test is reported next to it, never used to
decide; a paired bootstrap (1,000 resamples of the test posts) gives a 95% interval of the test delta.
``--ship`` writes the decision into ``assets/some-mini-mm/config.json`` as ``image_helps`` (the
Pipeline reads it: a head whose image does not help is answered by the text head, and the image of a
post whose tasks all go to text heads is never decoded).

Writes benchmarks/results/image_helps.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
SPLITS = ("val", "test")
BOOTSTRAP = 1000


def image_posts(data_root: Path, task: str, split: str) -> tuple[list, list[int], list[str]]:
    """``(posts with decoded images, label indices, sources)`` of one task's split: every labelled
    post of every source of the task that has an image (decoded as the batch runner decodes)."""
    from somelvlm.data.report import DataReport
    from somelvlm.data.sources import load_source
    from somelvlm.posts import (
        MODEL_IMAGE_LONG_SIDE,
        MODEL_IMAGE_SHORT_SIDE,
        Post,
        PostError,
        clean_text,
        load_image,
    )
    from somelvlm.taxonomy.registry import get_task

    spec = get_task(task)
    labels = list(spec.labels)
    posts, gold, sources = [], [], []
    for source in sorted({s.name for s in spec.sources} - {"somelvlm_testset"}):
        for ex in load_source(source, data_root, DataReport()):
            if ex.task != task or ex.split != split or not ex.image or ex.target not in labels:
                continue
            try:
                image = load_image(data_root / ex.image, max_side=MODEL_IMAGE_LONG_SIDE, short_side=MODEL_IMAGE_SHORT_SIDE)
            except PostError:
                continue
            posts.append(Post(id=ex.id, text=clean_text(ex.text), image=image))
            gold.append(labels.index(ex.target))
            sources.append(source)
    return posts, gold, sources


def primary(task: str, spec, gold: list[int], probs: np.ndarray) -> float:
    from somelvlm.evaluate.metrics import head_metrics, metric_key
    from somelvlm.taxonomy.registry import get_task

    return head_metrics(task, spec, gold, probs)[metric_key(get_task(task).primary_metric)]


def bootstrap_delta(task: str, spec, gold: list[int], image: np.ndarray, text: np.ndarray, seed: int = 0) -> list[float]:
    """95% interval of (image+text - text) primary metric over paired resamples of the posts."""
    from _bootstrap import head_paired

    return [round(v, 2) for v in head_paired(task, spec, gold, image, [text], draws=BOOTSTRAP, seed=seed)["ci95"]]


def measure(data_root: Path, threads: int) -> dict:
    from somelvlm.evaluate.metrics import metric_key
    from somelvlm.pipeline import Pipeline
    from somelvlm.taxonomy.registry import get_task

    image_pipe = Pipeline("some-mini", threads=threads, withheld=True)
    image_pipe.image_heads.image_helps = {t: True for t in image_pipe.image_heads.specs}  # force the image route
    text_pipe = Pipeline(image_pipe.classifier, multimodal=False, withheld=True)
    both = [t for t in image_pipe.image_heads.specs if t in image_pipe.classifier.specs]
    heads = {}
    for task in both:
        spec = image_pipe.spec(task)
        row: dict = {"metric": metric_key(get_task(task).primary_metric),
                     "image_head": str(image_pipe.image_heads.folder.name) + "/" + task}
        for split in SPLITS:
            start = time.perf_counter()
            posts, gold, sources = image_posts(data_root, task, split)
            read = [image_pipe.read(p)[0] for p in posts]  # caption, else OCR: the text both routes get
            p_image = image_pipe.head_probs(read, task)
            p_text = text_pipe.head_probs(read, task)
            r = {"n": len(posts), "sources": {s: sources.count(s) for s in sorted(set(sources))},
                 "image_text": round(primary(task, spec, gold, p_image), 2),
                 "text": round(primary(task, spec, gold, p_text), 2),
                 "agree": round(100 * float((p_image.argmax(1) == p_text.argmax(1)).mean()), 1)}
            r["delta"] = round(r["image_text"] - r["text"], 2)
            if split == "test":
                r["delta_95ci"] = bootstrap_delta(task, spec, gold, p_image, p_text)
            r["seconds"] = round(time.perf_counter() - start, 1)
            row[split] = r
            print(task, split, r, flush=True)
        row["image_helps"] = bool(row["val"]["delta"] > 0)
        heads[task] = row
    return {"rule": "image_helps = image+text val primary > text val primary on the same val image posts",
            "data_root": str(data_root), "bootstrap": BOOTSTRAP, "heads": heads}


def markdown(result: dict) -> str:
    lines = ["# Does the image help? Image+text heads against the text heads, same image posts", "",
             "Command: `nice -n 10 python benchmarks/image_helps.py --ship` (writes image_helps.json and, with "
             "`--ship`, `image_helps` in `assets/some-mini-mm/config.json`). Posts: every VAL / TEST post of the "
             "task that has an image; both routes read the same text (caption, else OCR) through the one Pipeline. "
             "Decision on VALIDATION only: " + result["rule"] + ". Test is reported, not used; its delta carries a "
             f"paired-bootstrap 95% interval ({result['bootstrap']} resamples).", "",
             "| task | metric | n val | val image+text | val text | val delta | n test | test image+text | test text "
             "| test delta (95% CI) | same label (test) | image helps (val) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for task, r in result["heads"].items():
        v, t = r["val"], r["test"]
        ci = t.get("delta_95ci", ["?", "?"])
        lines.append(f"| {task} | {r['metric']} | {v['n']} | {v['image_text']} | {v['text']} | {v['delta']:+.2f} | "
                     f"{t['n']} | {t['image_text']} | {t['text']} | {t['delta']:+.2f} ({ci[0]}, {ci[1]}) | "
                     f"{t['agree']}% | **{'yes' if r['image_helps'] else 'no'}** |")
    helps = [t for t, r in result["heads"].items() if r["image_helps"]]
    text_only = [t for t in result["heads"] if t not in helps]
    lines += ["", f"Shipped decision: the image+text head answers {', '.join(helps) or 'no task'} on posts with an "
                  "image (`\"modality\": \"image+text\"`); "
              + (f"{', '.join(text_only)} is answered by the text head whatever the post carries" if text_only else
                 "no image+text head was found not to help, so no task is moved back to its text head")
              + ". Every other task is answered by the text head (`\"modality\": \"text\"`), and a post whose "
                "chosen tasks all go to text heads has its image left undecoded (unless it has no caption: then "
                "OCR needs it).", "",
              "Caveats: the image+text heads' epoch and recipe were selected on these same val posts (the text "
              "head's epoch on the mean over all 27 tasks), so the val comparison leans towards the image+text "
              "heads; the val and test sets are small (cm_memes: 126 / 144 posts), so a delta of a few points "
              "is within noise (see the interval)."]
    return "\n".join(lines) + "\n"


def ship(result: dict) -> Path:
    """Write ``image_helps`` (task -> bool, decided on val) into the shipped some-mini-mm config.json."""
    from somelvlm.atomic import atomic_write_text
    from somelvlm.models.mm_runtime import MM_ASSETS

    path = MM_ASSETS / "config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["image_helps"] = {t: r["image_helps"] for t, r in result["heads"].items()}
    config["image_helps_evidence"] = {
        "rule": result["rule"], "written_by": "benchmarks/image_helps.py --ship",
        "val": {t: {"image_text": r["val"]["image_text"], "text": r["val"]["text"], "n": r["val"]["n"]}
                for t, r in result["heads"].items()}}
    atomic_write_text(path, json.dumps(config, indent=1) + "\n")
    import sys

    sys.path.insert(0, str(HERE))
    from calibration import put_section

    body = markdown(result).split("\n", 2)[2]  # without the title
    put_section(MM_ASSETS / "README.md", "Where the image helps (decided on validation)", body, name="image_helps")
    put_section(RESULTS / "quality.md", "Where the image helps (image+text vs text heads, same image posts)", body,
                name="image_helps")
    return path


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-root", type=Path, default=Path(os.environ.get("SOMELVLM_DATA", "../shared/data")))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ship", action="store_true", help="write the val decision into some-mini-mm's config.json")
    ap.add_argument("--reuse", action="store_true", help="do not measure: rewrite the outputs from image_helps.json")
    args = ap.parse_args(argv)
    if args.reuse:
        result = json.loads((RESULTS / "image_helps.json").read_text(encoding="utf-8"))
    else:
        result = measure(args.data_root.resolve(), args.threads)
    RESULTS.mkdir(exist_ok=True)
    from somelvlm.atomic import atomic_write_text

    atomic_write_text(RESULTS / "image_helps.json", json.dumps(result, indent=1) + "\n")
    atomic_write_text(RESULTS / "image_helps.md", markdown(result))
    if args.ship:
        print("wrote", ship(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
