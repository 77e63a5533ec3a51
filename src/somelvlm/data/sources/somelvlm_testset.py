"""SoMeLVLM's published multimodal test items (Lishi905/SoMeLVLM, Apache-2.0).

Upstream: ``somelvlm_testset/SoMeData_testset/Multimodal_testset/{in_domain,out_of_distribution}/*.json``,
each a JSON array of ``{text_input, text_output, image}`` (the images are not in this copy, so
``image`` is None and nothing is reported about them: these are text-only eval sets of image posts).
Every file whose answers fit a task of ours becomes split-``test`` examples of that task (``FILES``):

- ``HatefulMemes_test`` (true / false) -> hateful_meme. All 500 items are memes of FHM *train*
  (``hmc/FHM/train``): do not train on FHM train when scoring on these.
- ``MVSA_Single_test``, ``MVSA_Multiple_test`` (positive / neutral / negative) -> sentiment.
- ``FakeNewsNet_test`` (true = real news, false = fake) -> fake_news.
- ``hashtag_gen_test``, ``hashtag_gen_ood`` -> hashtags; the target is the answer's hashtags joined by
  spaces ("#a #b #c"), whatever its layout (for the few answers that are numbered lists with
  explanations, the hashtag opening each item). The 8 answers with no hashtag at all (the
  generator's refusals, in hashtag_gen_test) are "unknown label".
- ``PAN_test`` (male / female: the author of an image and caption) -> image_post_gender.
- ``Tweet_cele_test`` (left / center / right, posts by politicians, journalists and media) and
  ``Tweet_leg_test`` (left / right, legislators) -> image_post_ideology.
- ``TumEmo_test`` (Happy, Love, Sad, Fear, Angry, Calm, Bored) -> image_post_emotion.
- ``MMHS_test`` (NotHate, Racist, Sexist, Homophobe, Religion, OtherHate) -> image_post_hate_type.
- ``hashtag_choice_test``, ``hashtag_choice_ood`` (pick one of four hashtags) -> hashtag_choice; the
  target is the answer hashtag, ``meta["target"]`` the four choices as the prompt lists them; an
  answer that is not one of the choices is "unknown label".
- ``personality_explain_{test,ood}`` -> explain_personality, ``domain_explain_{test,ood}`` ->
  explain_domain (free text: "trait. One sentence why.").
- The free-form ``*_test_g`` rewordings (questions without a choice list, answered in a sentence)
  -> one generation task per row of SoMeLVLM's table: MVSA_*_g and TumEmo_g -> open_emotion,
  HatefulMemes_g and MMHS_g -> open_hate, FakeNewsNet_g -> open_news_veracity, Tweet_*_g ->
  open_ideology, PAN_g -> open_gender. The target is the published answer as written.

Not read: ``4chans_test.json`` and ``4chans_test_g.json`` (the image is the whole post: without it
no text is left), ``MVSA_Single_test_id.json`` (MVSA_Single_test again, with question ids).

The published prompt is kept verbatim in ``meta["prompt"]`` (with ``meta["file"]``, the file relative
to ``Multimodal_testset``, ``meta["image_name"]`` and the raw ``meta["answer"]``). ``Example.text``
is the caption. For the files of the first tasks above it is cut out by matching the prompt against
the published templates (``TEMPLATES``) as a whole; for the others by ``generic_caption``: a news
head, a quoted caption after "caption", or a labelled block ("Caption: ...") whose trailing question
lines are the lines that recur across the file's prompts. A prompt that fits none is reported
("prompt not parsed") and its whole text is used; an empty caption (the image was the whole post)
is reported ("empty post") and the item left out.

Ids: ``somelvlm_testset/<in_domain|out_of_distribution>/<file stem>/<record number>``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.readers import SourceFile
from somelvlm.data.report import DataReport

SOURCE = "somelvlm_testset"
BASE = f"{SOURCE}/SoMeData_testset/Multimodal_testset"
SENTIMENTS = {k: k for k in ("positive", "neutral", "negative")}
IDEOLOGIES = {k: k for k in ("left", "center", "right")}
EMOTIONS = {k: k for k in ("happy", "love", "sad", "fear", "angry", "calm", "bored")}
HATE_TYPES = {"nothate": "not_hate", "racist": "racist", "sexist": "sexist", "homophobe": "homophobe",
              "religion": "religion", "otherhate": "other_hate"}
HASHTAGS = "hashtags"
"""Marks a file whose target is the answer's hashtags."""
CHOICE = "choice"
"""Marks a file whose target is the one hashtag chosen among those the prompt lists."""
FILES: dict[str, tuple[str, dict[str, str] | str | None]] = {
    # file -> (task, answer -> label id | HASHTAGS | CHOICE | None for the answer as written)
    "in_domain/HatefulMemes_test.json": ("hateful_meme", {"true": "hateful", "false": "not_hateful"}),
    "in_domain/MVSA_Single_test.json": ("sentiment", SENTIMENTS),
    "in_domain/MVSA_Multiple_test.json": ("sentiment", SENTIMENTS),
    "in_domain/FakeNewsNet_test.json": ("fake_news", {"true": "real", "false": "fake"}),
    "in_domain/hashtag_gen_test.json": ("hashtags", HASHTAGS),
    "out_of_distribution/hashtag_gen_ood.json": ("hashtags", HASHTAGS),
    "in_domain/PAN_test.json": ("image_post_gender", {"male": "male", "female": "female"}),
    "in_domain/Tweet_cele_test.json": ("image_post_ideology", IDEOLOGIES),
    "in_domain/Tweet_leg_test.json": ("image_post_ideology", IDEOLOGIES),
    "in_domain/TumEmo_test.json": ("image_post_emotion", EMOTIONS),
    "in_domain/MMHS_test.json": ("image_post_hate_type", HATE_TYPES),
    "in_domain/hashtag_choice_test.json": ("hashtag_choice", CHOICE),
    "out_of_distribution/hashtag_choice_ood.json": ("hashtag_choice", CHOICE),
    "in_domain/personality_explain_test.json": ("explain_personality", None),
    "out_of_distribution/personality_explain_ood.json": ("explain_personality", None),
    "in_domain/domain_explain_test.json": ("explain_domain", None),
    "out_of_distribution/domain_explain_ood.json": ("explain_domain", None),
    "in_domain/MVSA_Single_test_g.json": ("open_emotion", None),
    "in_domain/MVSA_Multiple_test_g.json": ("open_emotion", None),
    "in_domain/TumEmo_test_g.json": ("open_emotion", None),
    "in_domain/HatefulMemes_test_g.json": ("open_hate", None),
    "in_domain/MMHS_test_g.json": ("open_hate", None),
    "in_domain/FakeNewsNet_test_g.json": ("open_news_veracity", None),
    "in_domain/Tweet_cele_test_g.json": ("open_ideology", None),
    "in_domain/Tweet_leg_test_g.json": ("open_ideology", None),
    "in_domain/PAN_test_g.json": ("open_gender", None),
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


_QUOTED = re.compile(r"(?:caption|captioned with)\b[^'\"\n]{0,40}?(['\"])")
_SIC = re.compile(r"This is the caption: (.*)'\s*(?:\n|$)", re.DOTALL)  # sic: a closing quote only
_LABELLED = re.compile(r"^[^\n]*\n(?:caption|note|description|statement)\s*:\s*", re.IGNORECASE)
_WRAPPED = re.compile(r"(['\"])(.*)\1\.?", re.DOTALL)
_CHOICES = re.compile(r"^(?:choices|options|candidates)\s*:\s*\[(.*)\]\s*$", re.IGNORECASE | re.MULTILINE)


def template_lines(prompts: list[str], min_count: int = 5) -> set[str]:
    """Lines that recur across a file's prompts (its question and constraint lines), at least
    ``min_count`` times and 12 characters long (so a caption's "." lines never count)."""
    counts = Counter(line.strip() for p in prompts for line in set(p.split("\n")))
    return {line for line, n in counts.items() if n >= min_count and len(line) >= 12}


def generic_caption(prompt: str, template: set[str]) -> str | None:
    """The post a published prompt quotes, for the files without templates; ``""`` when it quotes an
    empty caption, None when no caption is found."""
    for head in _NEWS_HEADS:
        if prompt.startswith(head):
            body = prompt[len(head):]
            return body.rsplit("\n\n", 1)[0].strip() if "\n\n" in body else body.strip()
    m = _LABELLED.match(prompt)
    if m:
        lines = prompt[m.end():].split("\n")
        while lines and (lines[-1].strip() in template or _CHOICES.match(lines[-1].strip())):
            lines.pop()
        body = "\n".join(lines).strip()
        quoted = _WRAPPED.fullmatch(body)
        return quoted.group(2).strip() if quoted else body
    m = _SIC.search(prompt)
    if m:
        return m.group(1).strip()
    m = _QUOTED.search(prompt)
    if m:
        ends = [e.start() for e in re.finditer(re.escape(m.group(1)) + r"(?=\.?\s*(?:\n|$))", prompt)
                if e.start() >= m.end()]
        if ends:
            return prompt[m.end():ends[-1]].strip()
    return None


def _target(labels: dict[str, str] | str | None, prompt: str, answer: str) -> tuple[str | None, dict[str, str]]:
    """The example's target (None when the answer fits no label) and any extra meta it needs."""
    if labels is None:
        return answer.strip(), {}
    if labels == HASHTAGS:
        return hashtags_of(answer), {}
    if labels == CHOICE:
        m = _CHOICES.search(prompt)
        choices = [c.strip() for c in m.group(1).split(",")] if m else []
        chosen = answer.strip().strip(".")
        return (chosen if chosen in choices else None), {"target": ", ".join(choices)}
    return labels.get(answer.strip().strip(".").lower()), {}


def load(root: Path, report: DataReport) -> Iterator[Example]:
    for rel, (task, labels) in FILES.items():
        f = SourceFile(root, f"{BASE}/{rel}", SOURCE, report)
        subset, stem = rel.split("/")[0], Path(rel).stem
        records = list(f.json_records())
        template = set() if task in TEMPLATES else template_lines(
            [r.get("text_input") for _, r in records if isinstance(r.get("text_input"), str)])
        for n, rec in records:
            prompt, answer = rec.get("text_input"), rec.get("text_output")
            if not all(isinstance(v, str) and v.strip() for v in (prompt, answer)):
                f.problem(n, "missing field", "text_input or text_output")
                continue
            target, extra = _target(labels, prompt, answer)
            if target is None:
                f.problem(n, "unknown label", answer.strip()[:80])
                continue
            caption = caption_of(task, prompt) if task in TEMPLATES else generic_caption(prompt, template)
            if caption == "":
                f.problem(n, "empty post", "the caption is empty and the image is not in this copy")
                continue
            if caption is None:
                f.problem(n, "prompt not parsed", prompt[:80])
            yield Example(id=f"{SOURCE}/{subset}/{stem}/{n}", source=SOURCE, task=task, split="test",
                          target=target, text=caption or prompt.strip(),
                          meta={"prompt": prompt, "file": rel, "image_name": str(rec.get("image", "")),
                                "answer": answer, **extra})
