"""OCR on a downscaled image: word F1 against the captions and speed, before and after.

    python benchmarks/ocr_downscale.py [--memes 50] [--big-memes 20] [--big-mp 21] [--threads 2]
                                       [--out benchmarks/results]

"Before" reads the image as given (RapidOCR itself caps the longest side at 2000 px); "after" is
``MemeOCR``'s default, the longest side reduced to ``OCR_SHORT_SIDE`` (1280 px) first. Images:

- the shipped examples (``examples/monday_meme.png``, ``examples/chart.png``; captions are the
  texts ``examples/draw_images.py`` draws);
- the first ``--memes`` CM_MEMES memes by name (``sample_data.csv``: ``Text`` is the meme's text,
  per the dataset's README "OCR extracted textual part of the meme"), as they are (most are about
  225 px, a few 1080 px, so the downscale rarely applies);
- the first ``--big-memes`` of them enlarged (bicubic) to about ``--big-mp`` megapixels, as large
  as the photo memes of Harm-P (~21 MP), where the downscale matters: the same text, at the size
  that made OCR take 5.5 s per meme.

Word F1: bag-of-words F1 between the lower-cased alphanumeric tokens of the OCR text and of the
caption, averaged over memes (as in ``features/ocr.py``). Seconds per meme exclude image loading
and model loading (one warm-up call), include the downscale; wall seconds depend on what else runs
on the machine, so the CPU seconds of this process per meme are reported too (on an idle machine
with 2 cores the wall time is at least CPU / 2). Writes ocr_downscale.json and ocr_downscale.md
to --out.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import time
from collections import Counter
from pathlib import Path

from _machine import cpu_name  # benchmarks/_machine.py (the script's folder is on sys.path)

OUT = Path(__file__).parent / "results"
REPO = Path(__file__).resolve().parents[1]
EXAMPLES = {"monday_meme.png": "WHEN IT'S MONDAY AND THE COFFEE IS GONE", "chart.png": "cases this week"}


def data_root() -> Path:
    default = REPO.parent / "shared" / "data"
    return Path(os.environ.get("SOMELVLM_DATA", default))


def words(text: str) -> Counter:
    return Counter(re.findall(r"\w+", text.lower()))


def word_f1(predicted: str, reference: str) -> float:
    """Bag-of-words F1 of two texts (1.0 when both are empty)."""
    p, r = words(predicted), words(reference)
    if not p and not r:
        return 1.0
    common = sum((p & r).values())
    if not common:
        return 0.0
    precision, recall = common / sum(p.values()), common / sum(r.values())
    return 2 * precision * recall / (precision + recall)


def cm_memes(root: Path, n: int) -> list[tuple[str, Path, str]]:
    folder = root / "cm_memes" / "LREC_COLING_meme"
    with (root / "cm_memes" / "sample_data.csv").open(encoding="utf-8", newline="") as f:
        rows = {r["Name"]: r["Text"] for r in csv.DictReader(f) if r.get("Name") and r.get("Text")}
    names = sorted(name for name in rows if (folder / name).is_file())[:n]
    return [(name, folder / name, rows[name]) for name in names]


def enlarge(img, megapixels: float):
    from PIL import Image

    scale = (megapixels * 1e6 / (img.size[0] * img.size[1])) ** 0.5
    return img.resize((round(img.size[0] * scale), round(img.size[1] * scale)), Image.BICUBIC)


def measure(ocr, items) -> dict:
    """``items``: (name, PIL image, caption) -> mean F1, seconds per meme, per-meme rows."""
    ocr.read(items[0][1])  # warm-up
    rows, seconds, cpu = [], 0.0, 0.0
    for name, img, caption in items:
        start, start_cpu = time.perf_counter(), time.process_time()
        text = ocr.read(img)
        took = time.perf_counter() - start
        seconds += took
        cpu += time.process_time() - start_cpu
        rows.append({"name": name, "size": list(img.size), "f1": round(word_f1(text, caption), 4),
                     "seconds": round(took, 3)})  # the texts themselves stay out (they are the data's)
    n = len(rows)
    return {"n": n, "word_f1": round(sum(r["f1"] for r in rows) / n, 4), "seconds_per_meme": round(seconds / n, 3),
            "memes_per_second": round(n / seconds, 3), "cpu_seconds_per_meme": round(cpu / n, 3), "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--memes", type=int, default=50)
    parser.add_argument("--big-memes", type=int, default=20)
    parser.add_argument("--big-mp", type=float, default=21.0)
    parser.add_argument("--threads", type=int, default=2, help="onnxruntime threads per model")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    from somelvlm.features.ocr import OCR_SHORT_SIDE, MemeOCR
    from somelvlm.posts import load_image

    root = data_root()
    sets = {"shipped examples": [(n, load_image(REPO / "examples" / n), c) for n, c in EXAMPLES.items()]}
    memes = cm_memes(root, args.memes)
    if memes:
        sets[f"cm_memes ({len(memes)}, as they are)"] = [(n, load_image(p), c) for n, p, c in memes]
        big = [(n, enlarge(load_image(p), args.big_mp), c) for n, p, c in memes[:args.big_memes]]
        sets[f"cm_memes enlarged to {args.big_mp:g} MP ({len(big)})"] = big
    readers = {"before (full size)": MemeOCR(num_threads=args.threads, short_side=None),
               f"after (short side {OCR_SHORT_SIDE})": MemeOCR(num_threads=args.threads)}
    results = {}
    for set_name, items in sets.items():
        results[set_name] = {}
        for reader_name, ocr in readers.items():
            print(f"{set_name} / {reader_name} ...", flush=True)
            results[set_name][reader_name] = measure(ocr, items)
    load = os.getloadavg()[0]
    report = {"machine": cpu_name(), "threads": args.threads, "ocr_short_side": OCR_SHORT_SIDE,
              "load_average_1min_at_end": round(load, 2), "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ocr_downscale.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n",
                                                 encoding="utf-8")
    intro = (f"`python benchmarks/ocr_downscale.py` on {report['machine']}, onnxruntime threads {args.threads}, "
             f"load average {load:.1f} at the end (wall times grow with it; CPU seconds do not); "
             f"after = `MemeOCR()` (shorter side at most {OCR_SHORT_SIDE} px), before = `MemeOCR(short_side=None)`. "
             "Word F1 = bag-of-words F1 of OCR text vs the caption, mean over memes.")
    header = ("| images | n | word F1 before | word F1 after | s/meme before | s/meme after | CPU s/meme before "
              "| CPU s/meme after |")
    lines = ["# OCR on a downscaled image", "", intro, "", header, "|---|---|---|---|---|---|---|---|"]
    for set_name, by_reader in results.items():
        before, after = by_reader.values()
        lines.append(f"| {set_name} | {after['n']} | {before['word_f1']:.3f} | {after['word_f1']:.3f} | "
                     f"{before['seconds_per_meme']:.2f} | {after['seconds_per_meme']:.2f} | "
                     f"{before['cpu_seconds_per_meme']:.2f} | {after['cpu_seconds_per_meme']:.2f} |")
    (args.out / "ocr_downscale.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
