"""RKC as a pipeline stage (``Pipeline(rkc=INDEX)``, ``analyze --rkc INDEX``).

The stage embeds every post with the model that built the index (the index's stamp names it and is
checked against it): an image+text head, or, when the stamp names a ``backend`` (``lmm_rgcl``), that
backend's model loaded by ``load_model``, which must offer ``embed(posts, texts)`` and ``stamp()``) and adds ``row["rkc"] = {"task", "label", "prob",
"score", "neighbours"}`` from ``rkc_predict``.
"""

from __future__ import annotations

import json
from pathlib import Path


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
        stamp = json.loads(stamp_path.read_text(encoding="utf-8"))
        model = stamp.get("model")
        if not model or not (Path(model) / "config.json").is_file():
            raise FileNotFoundError(f"{index}: the head that built it ({model!r}) is not there")
        if stamp.get("backend"):
            from somelvlm.models import load_model

            embedder = load_model(model)
            self.memory = MemoryIndex.load(index, expect=embedder.stamp())
            self.labels, self.task = list(embedder.labels), embedder.task_name
            self._embed = embedder.embed
        else:
            self.heads = MultimodalHeads([model], ocr=False)
            self.memory = MemoryIndex.load(index, expect=self.heads.stamp())
            self.labels = self.heads.heads[0][1]["labels"]
            self.task = self.heads.tasks[0]
            self._embed = lambda posts, texts: self.heads.embed([p.image for p in posts], texts)
        self.k = k

    def __call__(self, posts: list, texts: list[str | None], rows: list[dict]) -> None:
        """Add ``rkc`` to each row; ``texts``: what the pipeline read of each post (caption or OCR)."""
        from somelvlm.retrieval.rkc import rkc_predict

        g = self._embed(posts, texts)
        for row, pred in zip(rows, rkc_predict(self.memory, g, self.labels, self.k)):
            row["rkc"] = {"task": self.task, **pred}
