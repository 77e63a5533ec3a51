"""SoMeLVLM's published test items (Lishi905/SoMeLVLM ``SoMeData_testset/Multimodal_testset``).

Upstream: JSON arrays of ``{text_input, text_output, image}`` in ``in_domain/`` and
``out_of_distribution/``; the images are not in this copy (``meta["image_name"]`` keeps the name).
Files whose answers fit a task of our taxonomy become test examples of that task, with the
published prompt kept verbatim in ``meta["prompt"]`` so evaluation can use SoMeLVLM's own wording:

- ``HatefulMemes_test.json`` (true / false) -> hateful_meme
- ``MVSA_Single_test.json``, ``MVSA_Multiple_test.json`` (positive / neutral / negative) -> sentiment
- ``FakeNewsNet_test.json`` (real / fake) -> fake_news
- ``hashtag_gen_test.json``, ``hashtag_gen_ood.json`` -> hashtags

The ``*_g.json`` files (free-text answers of the same items), 4chans, MMHS, PAN, TumEmo, Tweet_cele,
Tweet_leg, personality / domain explanations and hashtag choice have no matching task and are not
read. ``Example.text`` is the caption quoted in the prompt when one is found, else the whole prompt.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile
from somelvlm.data.report import DataReport

SOURCE = "somelvlm_testset"
BASE = f"{SOURCE}/SoMeData_testset/Multimodal_testset"
FILES = {
    "in_domain/HatefulMemes_test.json": ("hateful_meme", {"true": "hateful", "false": "not_hateful"}),
    "in_domain/MVSA_Single_test.json": ("sentiment", {k: k for k in ("positive", "neutral", "negative")}),
    "in_domain/MVSA_Multiple_test.json": ("sentiment", {k: k for k in ("positive", "neutral", "negative")}),
    "in_domain/FakeNewsNet_test.json": ("fake_news", {"real": "real", "fake": "fake", "true": "real", "false": "fake"}),
    "in_domain/hashtag_gen_test.json": ("hashtags", None),
    "out_of_distribution/hashtag_gen_ood.json": ("hashtags", None),
}
CAPTION = re.compile(r"caption[^:'\"]*:?\s*['\"\u201c](.+?)['\"\u201d]\.?\s*(?:\n|$)", re.IGNORECASE | re.DOTALL)


def caption_of(prompt: str) -> str:
    """The caption a published prompt quotes, else the whole prompt."""
    m = CAPTION.search(prompt)
    return m.group(1).strip() if m and m.group(1).strip() else prompt.strip()


def load(root: Path, report: DataReport) -> Iterator[Example]:
    for rel, (task, labels) in FILES.items():
        f = SourceFile(root, f"{BASE}/{rel}", SOURCE, report)
        for n, rec in f.json_records():
            prompt, answer = str(rec.get("text_input", "")), str(rec.get("text_output", "")).strip()
            if not prompt.strip() or not answer:
                f.problem(n, "missing field", "text_input or text_output")
                continue
            target = answer
            if labels is not None:
                target = labels.get(answer.lower().strip(" ."))
                if target is None:
                    f.problem(n, "unknown label", answer[:60])
                    continue
            yield Example(id=f"{SOURCE}/{Path(rel).stem}/{n}", source=SOURCE, task=task, split="test",
                          target=target, text=caption_of(prompt),
                          meta={"prompt": prompt, "file": rel, "image_name": str(rec.get("image", ""))})
