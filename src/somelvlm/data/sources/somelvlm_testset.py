"""SoMeLVLM's published multimodal test items (Lishi905/SoMeLVLM, Apache-2.0).

Upstream: ``somelvlm_testset/SoMeData_testset/Multimodal_testset/{in_domain,out_of_distribution}/*.json``,
each a JSON array of ``{text_input, text_output, image}`` (the images are not in this copy, so
``image`` is None and nothing is reported about them). Files whose answers fit a task of ours become
split-``test`` examples of that task:

- ``in_domain/HatefulMemes_test.json`` (true / false) -> hateful_meme. All 500 items are memes of
  FHM *train* (``hmc/FHM/train``): do not train on FHM train when scoring on these.
- ``in_domain/MVSA_Single_test.json``, ``in_domain/MVSA_Multiple_test.json`` (positive / neutral /
  negative) -> sentiment.
- ``in_domain/FakeNewsNet_test.json`` (true = real news, false = fake) -> fake_news.
- ``in_domain/hashtag_gen_test.json``, ``out_of_distribution/hashtag_gen_ood.json`` -> hashtags; the
  target is the answer's hashtags joined by spaces ("#a #b #c"), whatever its layout (for the few
  answers that are numbered lists with explanations, the hashtag opening each item). The 8 answers
  with no hashtag at all (the generator's refusals, in hashtag_gen_test) are "unknown label".

Not read, having no matching task or duplicating a read file: ``*_test_g.json`` (free-text
rewordings of the same items), ``MVSA_Single_test_id.json`` (MVSA_Single_test with question ids),
``4chans_test.json`` (hate in 4chan images, not memes), ``MMHS_test.json`` (hate categories),
``PAN_test.json`` (author gender), ``TumEmo_test.json`` (7 emotions), ``Tweet_cele_test.json`` /
``Tweet_leg_test.json`` (political ideology), ``personality_explain_*``, ``domain_explain_*``,
``hashtag_choice_*`` (multiple choice among given hashtags).

The published prompt is kept verbatim in ``meta["prompt"]`` (with ``meta["file"]``, the file relative
to ``Multimodal_testset``, ``meta["image_name"]`` and the raw ``meta["answer"]``). ``Example.text``
is the caption, cut out by matching the prompt against the published templates (``TEMPLATES``) as a
whole; a prompt that fits none is reported ("prompt not parsed") and its whole text is used.

Ids: ``somelvlm_testset/<in_domain|out_of_distribution>/<file stem>/<record number>``.
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
SENTIMENTS = {k: k for k in ("positive", "neutral", "negative")}
FILES = {  # file -> (task, answer -> label id; None for generation)
    "in_domain/HatefulMemes_test.json": ("hateful_meme", {"true": "hateful", "false": "not_hateful"}),
    "in_domain/MVSA_Single_test.json": ("sentiment", SENTIMENTS),
    "in_domain/MVSA_Multiple_test.json": ("sentiment", SENTIMENTS),
    "in_domain/FakeNewsNet_test.json": ("fake_news", {"true": "real", "false": "fake"}),
    "in_domain/hashtag_gen_test.json": ("hashtags", None),
    "out_of_distribution/hashtag_gen_ood.json": ("hashtags", None),
}
_NEWS_HEADS = (
    "This news is accompanied by an image and has the following description:\n",
    "This news including an image is associated with the following caption:\n",
    "Accompanying this piece of news is an image, and it's presented with the caption:\n",
    "Here is the news caption along with the image:\n",
)
_NEWS_TAILS = (
    "Question: Is this news true or false?\n"
    "Constraint: Only choose one word as the output from [true, false]",
    "Question: Can the authenticity of this article be verified?\nPossible answers: [true, false]",
    "Inquiry: Can the authenticity of this article be verified?\nPick from the following: [true, false]",
    "Question: Is this news true or false?\nChoices: [true, false]",
    "Is this news true or false?\nChoose from: [true, false]\nAnswer:",
)
_HASHTAG_PROMPTS = (
    "What's the possible hashtag of this image with the following caption: '{caption}'.\n"
    "Generate three alternative hashtags which begin with #.",
    "Consider the caption: '{caption}' for this Instagram image. Create three suitable hashtags that "
    "capture the essence of the post, ensuring they all start with #.",
    "For this Instagram post accompanied by the caption: '{caption}', please come up with a maximum of "
    "three appropriate hashtags, each starting with the symbol #.",
    "You are an expert in Social Media. Try to summarize three hashtags which begin with # that can best "
    "describe the image and its caption: '{caption}'.",
    "This image is associated with the following caption by an Instagram user.\nCaption: {caption}\n"
    "Try to generate no more than 3 hashtags that best fit this post. \n"
    "Constraints: the hashtags should begin with #.",
)
_HASHTAG_FORMAT = "\nOutput Format: #hashtag_1, #hashtag_2, #hashtag_3"
TEMPLATES: dict[str, tuple[str, ...]] = {  # task -> published prompts; "{caption}" marks it
    "hateful_meme": (
        "This meme goes along with the following caption: '{caption}'.\n"
        "Does this meme show any hate speech?\nOptions: [true, false]",
        "Assess the meme which is captioned with '{caption}'.\n"
        "Determine whether the meme displays any form of hatefulness.\n"
        "Pick from the following: [true, false]",
        "This image is associated with the following caption: '{caption}'.\n"
        "Does this combination exhibits any elements of hate speech?\nChoices: [true, false]",
        "This is an image associated with the following caption: '{caption}'.\n"
        "Judge whether this image contains any hateful meaning.\nSelect from: [true, false]",
        "Does this meme convey any idea of hate speech?\n"
        "This is the caption: {caption}'\nAvailable options: [true, false]",  # sic: one quote
    ),
    "sentiment": (
        "What sentiment dose the following combination convey?\nThe combination contains a image with the "
        "following caption: '{caption}'.\nSelect from the following: [positive, neutral, negative].",
        "You are a sentiment analyzer. Judge the sentiment polarity from the combination of this image and "
        "the caption: '{caption}'.\nChoose from [positive, neutral, negative].",
        "This image is associated with the following caption: '{caption}'.\nWhat sentiment dose this "
        "combination convey? Positive, neutral, or negative?\n"
        "Options: only output one word from [positive, neutral, negative].",
        "Given the image and the following caption, specify which sentiment dose this combination convey?\n"
        "Caption: '{caption}'.\nAvailable answers: [positive, neutral, negative].",
        'Assess the sentiment of the given image with the caption: "{caption}".\n'
        "Pick your answer from: positive, neutral, or negative.",
    ),
    "fake_news": tuple(f"{head}{{caption}}\n\n{tail}" for head in _NEWS_HEADS for tail in _NEWS_TAILS),
    "hashtags": tuple(p + end for p in _HASHTAG_PROMPTS for end in ("", _HASHTAG_FORMAT)),
}
_PATTERNS = {
    task: [re.compile(re.escape(t).replace(re.escape("{caption}"), "(.+)"), re.DOTALL) for t in templates]
    for task, templates in TEMPLATES.items()
}
HASHTAG = re.compile(r"#\w+")
LISTED_HASHTAG = re.compile(r"^\s*\d+\.\s*(#\w+)", re.MULTILINE)


def hashtags_of(answer: str) -> str | None:
    """"#a #b #c" from a published answer: the hashtags opening its numbered lines when it is a
    numbered list with explanations, else every hashtag in order; None when it has none."""
    tags = LISTED_HASHTAG.findall(answer) or HASHTAG.findall(answer)
    return " ".join(tags) or None


def caption_of(task: str, prompt: str) -> str | None:
    """The caption a published prompt of ``task`` quotes, or None when it fits no template."""
    for pattern in _PATTERNS[task]:
        m = pattern.fullmatch(prompt)
        if m and m.group(1).strip():
            return m.group(1).strip()
    return None


def load(root: Path, report: DataReport) -> Iterator[Example]:
    for rel, (task, labels) in FILES.items():
        f = SourceFile(root, f"{BASE}/{rel}", SOURCE, report)
        subset, stem = rel.split("/")[0], Path(rel).stem
        for n, rec in f.json_records():
            prompt, answer = rec.get("text_input"), rec.get("text_output")
            if not all(isinstance(v, str) and v.strip() for v in (prompt, answer)):
                f.problem(n, "missing field", "text_input or text_output")
                continue
            if labels is None:
                target = hashtags_of(answer)
            else:
                target = labels.get(answer.strip().strip(".").lower())
            if target is None:
                f.problem(n, "unknown label", answer.strip()[:80])
                continue
            caption = caption_of(task, prompt)
            if caption is None:
                f.problem(n, "prompt not parsed", prompt[:80])
            yield Example(id=f"{SOURCE}/{subset}/{stem}/{n}", source=SOURCE, task=task, split="test",
                          target=target, text=caption or prompt.strip(),
                          meta={"prompt": prompt, "file": rel, "image_name": str(rec.get("image", "")),
                                "answer": answer})
