"""What ``Analyzer`` adds for image posts: the shipped multimodal heads, and RKC from an index.

``MultimodalStage`` runs after the text model. For every post that has an image it replaces the
text heads' answer for the tasks a multimodal head serves (offensive_meme, meme_sentiment,
verify_post) with the image+text head's (marked ``"modality": "image+text"``). Text-only posts are
not touched. The heads load on the first image post, so text-only use costs nothing.

``RKCStage`` (``analyze --rkc INDEX``) embeds every post with the head that built the index and adds
``row["rkc"] = {"task", "label", "prob", "score", "neighbours"}``.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


class MultimodalStage:
    """Image+text heads for the chosen tasks they serve, loaded on first use."""

    def __init__(self, tasks: list[str], folders: list[Path] | None = None) -> None:
        from somelvlm.models.mm_runtime import MM_ASSETS, head_meta

        folders = folders if folders is not None else sorted(
            p for p in MM_ASSETS.glob("*") if (p / "config.json").is_file())
        self.folders = [f for f in folders if head_meta(f)["task"] in tasks]
        self.tasks = [head_meta(f)["task"] for f in self.folders]
        self._heads = None
        self._failed = False

    def _load(self):
        if self._heads is None and not self._failed:
            try:
                from somelvlm.models.mm_runtime import MultimodalHeads

                self._heads = MultimodalHeads(self.folders, ocr=False)
            except ImportError as err:  # features extra missing: keep the text heads' answers
                log.warning("multimodal heads disabled (pip install 'somelvlm[features]'): %s", err)
                self._failed = True
        return self._heads

    def __call__(self, posts: list, texts: list[str | None], rows: list[dict]) -> None:
        """Overwrite ``rows[i][task]`` for the image posts (``texts``: what the text model read)."""
        with_image = [i for i, p in enumerate(posts) if p.image is not None]
        if not self.folders or not with_image or self._load() is None:
            return
        preds = self._heads.predict([posts[i].image for i in with_image], [texts[i] for i in with_image])
        for i, pred in zip(with_image, preds):
            rows[i].update(pred)


class RKCStage:
    """RKC predictions from a saved index, embedded with the head that built it."""

    def __init__(self, index: Path | str, k: int = 20) -> None:
        from somelvlm.models.mm_runtime import MultimodalHeads
        from somelvlm.retrieval.index import MemoryIndex

        index = Path(index)
        stamp_path = index / "stamp.json"
        if not stamp_path.is_file():
            raise FileNotFoundError(f"{index} is not a retrieval index (no stamp.json): build one with "
                                    "`somelvlm index build`")
        import json

        model = json.loads(stamp_path.read_text(encoding="utf-8")).get("model")
        if not model or not (Path(model) / "config.json").is_file():
            raise FileNotFoundError(f"{index}: the head that built it ({model!r}) is not there")
        self.heads = MultimodalHeads([model], ocr=False)
        self.memory = MemoryIndex.load(index, expect=self.heads.stamp())
        self.labels = self.heads.heads[0][1]["labels"]
        self.task = self.heads.tasks[0]
        self.k = k

    def __call__(self, posts: list, texts: list[str | None], rows: list[dict]) -> None:
        from somelvlm.retrieval.rkc import rkc_predict

        g = self.heads.embed([p.image for p in posts], texts)
        for row, pred in zip(rows, rkc_predict(self.memory, g, self.labels, self.k)):
            row["rkc"] = {"task": self.task, **pred}
