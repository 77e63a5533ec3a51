"""MediaEval 2016 Verifying Multimedia Use (MKLab-ITI/image-verification-corpus): fake / real
tweets that share images of 17 news events.

Upstream: ``mediaeval2016/devset/posts.txt`` (TSV: post_id, post_text, user_id, image_id(s),
username, timestamp, label) and ``Medieval2016_DevSet_Images/<event>/{fakes,reals}/<image>``.
A post's image is the first of its image ids found on disk (``meta["image_ids"]`` keeps all);
about 4,500 posts have no image file here and stay text-only. The event comes from the image id's
prefix (``sandy_fake_12`` -> Hurricane Sandy).

Split by EVENT, never by post (posts of one event share images): test = Nepal earthquake +
Garissa attack, val = Boston Marathon + solar eclipse, train = the other 13 events (Hurricane
Sandy alone is 63% of posts). Val and test each hold both fake and real posts.
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
EVENTS = {  # image-id prefix -> event folder
    "boston": "BostonMarathon", "bringback": "Bring Back Our Girls", "columbianchemicals": "Columbian Chemicals",
    "garissa": "Garissa_Attack", "sandy": "Hurricane Sandy", "livr": "Livr", "malaysia": "Malaysia Airlines",
    "nepal": "Nepal_earthquake", "passport": "Passport", "pigfish": "Pig Fish", "elephant": "Rock Elephant",
    "samurai": "Samurai_ghost", "sochi": "Sochi Olympics", "eclipse": "Solar_eclipse", "syrianboy": "Syrian_boy",
    "underwater": "Underwater bedroom", "varoufakis": "Varoufakis_zdf",
}
TEST_EVENTS = {"Nepal_earthquake", "Garissa_Attack"}
VAL_EVENTS = {"BostonMarathon", "Solar_eclipse"}


def event_split(event: str) -> str:
    return "test" if event in TEST_EVENTS else "val" if event in VAL_EVENTS else "train"


def _image_index(root: Path) -> dict[str, str]:
    """Lower-case image stem -> path relative to the data root."""
    folder = Path(root) / BASE / "Medieval2016_DevSet_Images"
    index = {}
    for path in sorted(folder.glob("*/*/*")):
        if path.is_file():
            index[path.stem.lower()] = path.relative_to(root).as_posix()
    return index


def load(root: Path, report: DataReport) -> Iterator[Example]:
    f = SourceFile(root, f"{BASE}/posts.txt", SOURCE, report)
    images = _image_index(Path(root))
    for line, row in f.csv_rows(required=("post_id", "post_text", "image_id(s)", "label"), delimiter="\t",
                                quoting=csv.QUOTE_NONE):
        label = row["label"].strip().lower()
        if label not in ("fake", "real"):
            f.problem(line, "unknown label", label)
            continue
        ids = [i.strip() for i in row["image_id(s)"].split(",") if i.strip()]
        event = EVENTS.get(ids[0].split("_")[0].lower()) if ids else None
        if event is None:
            f.problem(line, "unknown event", f"image ids {row['image_id(s)']!r}")
            continue
        image = next((images[i.lower()] for i in ids if i.lower() in images), None)
        yield Example(id=f"{SOURCE}/{row['post_id'].strip()}", source=SOURCE, task="verify_post",
                      split=event_split(event), target=label, text=row["post_text"].strip(), image=image,
                      meta={"event": event, "image_ids": ",".join(ids)})
