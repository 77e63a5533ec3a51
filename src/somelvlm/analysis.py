"""``somelvlm.analyze`` (this module: ``somelvlm.analysis``): posts in, a label and probability per task out, grouped by cognitive level.

>>> from somelvlm import analyze                                        # doctest: +SKIP
>>> analyze(["what a lovely day #sun"], tasks=["emotion", "irony"])     # doctest: +SKIP
[{'emotion': {'label': 'joy', 'prob': 0.93, 'probs': {...}}, 'irony': {...}}]

Text posts go straight to the model. An image post's text is its caption or, when it has none and
the OCR extra is installed, the text read off the image.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from somelvlm.posts import Post, PostError


class Analyzer:
    """The main job: a loaded model plus the chosen tasks; call it on a batch of ``Post``s."""

    def __init__(self, model: str | Path | None = None, tasks: list[str] | None = None,
                 levels: list[str] | None = None, *, int8: bool = False, ocr: bool = True,
                 multimodal: bool = True, rkc: str | Path | None = None,
                 generator: str | Path | None = None, runtime: str = "auto") -> None:
        from somelvlm.models import load_model
        from somelvlm.taxonomy.registry import select_tasks

        self.model = load_model(model, int8=int8, runtime=runtime)
        # generation tasks named in ``tasks`` (detoxify, explanations, hashtags) run on the generative
        # model; levels keep selecting classification heads only
        generative = [t for t in select_tasks(tasks) if t.kind == "generation"] if tasks else []
        self.generative = None
        if generative:
            from somelvlm.generate import GenerativeTasks

            self.generative = GenerativeTasks(generative, generator)
            tasks = [t for t in tasks or [] if t not in {g.name for g in generative}]
            if not tasks and not levels:
                self.tasks, self.use_ocr, self._ocr, self.stages = [], ocr, None, []
                return
        available = set(self.model.tasks)
        if tasks:
            missing = [t for t in tasks if t not in available]
            if missing:
                chosen = [t.name for t in select_tasks(names=missing)]  # unknown names fail here
                raise ValueError(f"the model {self.model.folder.name} has no head for {chosen}; "
                                 f"it serves: {', '.join(sorted(available))}")
        chosen = [t.name for t in select_tasks(tasks, levels)] if (tasks or levels) else self.model.tasks
        self.tasks = [t for t in chosen if t in available]
        if not self.tasks and self.generative is None:
            raise ValueError(f"none of the chosen tasks has a head in this model; it serves: "
                             f"{', '.join(sorted(available))}")
        self.use_ocr = ocr
        self._ocr = None
        from somelvlm.models.mm_analysis import MultimodalStage, RKCStage  # image posts: image+text heads

        self.stages = ([MultimodalStage(self.tasks)] if multimodal else []) + ([RKCStage(rkc)] if rkc else [])

    def text_of(self, post: Post) -> tuple[str, str]:
        """``(text, where it came from)``: the post's text, else OCR of its image."""
        if post.text:
            return post.text, "text"
        if post.image is not None and self.use_ocr:
            if self._ocr is None:
                try:
                    from somelvlm.features.ocr import MemeOCR
                except ImportError as err:
                    raise PostError("needs OCR", f"an image-only post needs OCR: pip install 'somelvlm[ocr]' ({err})") from None
                self._ocr = MemeOCR()
            text = self._ocr.read(post.image).strip()
            if text:
                return text, "ocr"
            raise PostError("no text", "the image carries no readable text and the post has no caption")
        raise PostError("no text", "the post has no text and OCR is off")

    def __call__(self, posts: list[Post]) -> list[dict]:
        texts = [self.text_of(p) for p in posts]
        rows = self.model.predict([t for t, _ in texts], self.tasks) if self.tasks else [{} for _ in posts]
        for row, (_, source) in zip(rows, texts):
            if source != "text":
                row["text_source"] = source
        for stage in self.stages:
            stage(posts, [t for t, _ in texts], rows)
        if self.generative is not None:
            read = [Post(id=p.id, text=t, image=p.image) for p, (t, _) in zip(posts, texts)]
            rows = self.generative(read, rows)
        return rows


def analyze(posts: Iterable[str | Post], tasks: list[str] | None = None, levels: list[str] | None = None,
            model: str | Path | None = None) -> list[dict]:
    """Labels for each post (a string or a ``Post``), one dict per post in input order."""
    from somelvlm.posts import clean_text

    analyzer = Analyzer(model, tasks, levels)
    items = [p if isinstance(p, Post) else Post(id=str(i), text=clean_text(p)) for i, p in enumerate(posts)]
    return analyzer(items)
