"""MediaEval 2016 Verifying Multimedia Use, devset (MKLab-ITI/image-verification-corpus, Apache-2.0).

Upstream: ``mediaeval2016/mediaeval2016/devset/posts.txt``, a TSV with a header ``post_id, post_text,
user_id, image_id(s), username, timestamp, label`` (15,629 tweets, fake / real) -> verify_post; and
``Medieval2016_DevSet_Images/<event>/[fakes|reals/]<image id>.<ext>`` (17 event folders; some keep
their images directly in the event folder). ``image_id(s)`` lists one or more ids, e.g.
``boston_fake_03,boston_fake_35``.

Images: one index of every image file by lower-cased stem, built once; a post's ``image`` is its
first id that has a file, ``meta["image_ids"]`` keeps them all. The ``*_video.txt`` files map the
video ids ``syrianboy_1`` and ``varoufakis_1`` to YouTube URLs (``meta["video_url"]``); those posts
stay text-only and are not reported. Every other id without a file is reported once, as "missing
image" at its first line: ``boston_fake_35``, ``boston_real_05``, ``eclipse_video_01``,
``sandy_real_{09,10,4,6,90}`` (upstream issue #4: the ``sandyB_real_*`` files are different images,
so they are not used as aliases). Posts left without any image are kept text-only (2,213).

Event: the id prefix before the first ``_`` names the event (``EVENTS``); all ids of a post share it.

Split by EVENT, never by post (the posts of an event share images and wording). Only five events have
real posts (Hurricane Sandy alone is 65% of all posts and must train), so the held-out events are:

- test: Nepal_earthquake, Garissa_Attack (1,439 posts, 9.2%: 362 fake / 1,077 real)
- val: BostonMarathon, Solar_eclipse (810 posts, 5.2%: 326 fake / 484 real)
- train: the other 13 events (13,380 posts, 85.6%: 8,716 fake / 4,664 real)

This assignment is the one SoMe-mini was trained with; keep it fixed (moving a training event to
test would score the shipped model on posts it has seen). A larger, fake-heavier val/test (e.g.
adding Malaysia Airlines, Sochi Olympics, Samurai_ghost) is a choice for the next retrain.

Ids: ``mediaeval2016/devset/<split>/<post_id>``.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile
from somelvlm.data.report import DataReport

SOURCE = "mediaeval2016"
BASE = f"{SOURCE}/mediaeval2016/devset"
IMAGES = f"{BASE}/Medieval2016_DevSet_Images"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
EVENTS = {  # image-id prefix -> event folder
    "boston": "BostonMarathon", "bringback": "Bring Back Our Girls",
    "columbianchemicals": "Columbian Chemicals",
    "eclipse": "Solar_eclipse", "elephant": "Rock Elephant", "garissa": "Garissa_Attack",
    "livr": "Livr", "malaysia": "Malaysia Airlines", "nepal": "Nepal_earthquake", "passport": "Passport",
    "pigfish": "Pig Fish", "samurai": "Samurai_ghost", "sandy": "Hurricane Sandy", "sochi": "Sochi Olympics",
    "syrianboy": "Syrian_boy", "underwater": "Underwater bedroom", "varoufakis": "Varoufakis_zdf",
}
TEST_EVENTS = ("Nepal_earthquake", "Garissa_Attack")
VAL_EVENTS = ("BostonMarathon", "Solar_eclipse")


def event_split(event: str) -> str:
    """The split every post of ``event`` (an event folder name) belongs to."""
    return "test" if event in TEST_EVENTS else "val" if event in VAL_EVENTS else "train"


def _media_index(root: Path) -> tuple[dict[str, str], dict[str, str]]:
    """``(lower-case image stem -> path relative to root, lower-case video id -> URL)``."""
    folder = root / IMAGES
    images: dict[str, str] = {}
    videos: dict[str, str] = {}
    for path in sorted(folder.rglob("*")) if folder.is_dir() else ():
        if not path.is_file():
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES:
            images.setdefault(path.stem.lower(), path.relative_to(root).as_posix())
        elif path.suffix.lower() == ".txt":  # "id<TAB>url" lines; the header is "id url"
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                parts = line.strip().split("\t")
                if len(parts) == 2 and parts[0] != "id":
                    videos[parts[0].lower()] = parts[1]
    return images, videos


def load(root: Path, report: DataReport) -> Iterator[Example]:
    root = Path(root)
    f = SourceFile(root, f"{BASE}/posts.txt", SOURCE, report)
    images, videos = _media_index(root)
    reported: set[str] = set()
    for line, row in f.csv_rows(required=("post_id", "post_text", "image_id(s)", "label"), delimiter="\t",
                                quoting=csv.QUOTE_NONE):
        label = row["label"].strip().lower()
        if label not in ("fake", "real"):
            f.problem(line, "unknown label", f"label {label!r}")
            continue
        ids = [i.strip() for i in row["image_id(s)"].split(",") if i.strip()]
        events = {EVENTS.get(i.split("_")[0].lower()) for i in ids}
        if len(events) != 1 or None in events:
            f.problem(line, "unknown event", f"image ids {row['image_id(s)']!r}")
            continue
        event = events.pop()
        meta = {"event": event, "image_ids": ",".join(ids)}
        for i in ids:
            key = i.lower()
            if key in videos:
                meta.setdefault("video_url", videos[key])
            elif key not in images and key not in reported:
                reported.add(key)
                f.problem(line, "missing image", f"image id {i!r} has no file (first post using it)")
        image = next((images[i.lower()] for i in ids if i.lower() in images), None)
        split = event_split(event)
        yield Example(id=f"{SOURCE}/devset/{split}/{row['post_id'].strip()}", source=SOURCE,
                      task="verify_post", split=split, target=label, text=row["post_text"].strip(),
                      image=image, meta=meta)
