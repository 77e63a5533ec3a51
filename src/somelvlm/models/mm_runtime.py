"""Running trained multimodal heads on posts: features, predictions, embeddings, retrieval.

``MultimodalHeads`` loads one or more head folders (``models.multimodal.save_classifier``), builds
the frozen extractors each was trained on (refusing a different extractor version: the features
would not match the weights) and turns posts (an image and a text each) into per-task predictions
and into the embeddings g that a retrieval index stores. Images are encoded once for all heads;
each text extractor once for the heads that share it.

>>> heads = MultimodalHeads.shipped()                                               # doctest: +SKIP
>>> heads.predict([image], ["when the code works on the first try"])                # doctest: +SKIP
[{'offensive_meme': {'label': 'not_offensive', 'prob': 0.81, ...}, 'meme_sentiment': {...}}]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

MM_ASSETS = Path(__file__).resolve().parents[1] / "assets" / "some-mini-mm"
"""The shipped multimodal heads: one sub-folder per task, plus ``README.md`` (the model card), and one per head."""


def _extractor_for(spec: str, num_threads: int):
    """The extractor named by an ``"id|config"`` stamp, checked to give the same features."""
    from somelvlm.features import get_extractor

    name, _, config = spec.partition("|")
    extractor = get_extractor(name, num_threads=num_threads)
    if config and extractor.config != config:
        raise ValueError(f"the heads were trained on {name} features with config {config!r}, but this "
                         f"installation's {name} gives {extractor.config!r}: install the package versions "
                         "named there, or retrain the heads")
    return extractor


class MultimodalHeads:
    """Trained multimodal heads plus the frozen extractors that feed them."""

    def __init__(self, folders: list[Path | str], *, cache: bool = False, num_threads: int = 1,
                 ocr: bool = True) -> None:
        """``cache``: keep features in the on-disk ``FeatureCache`` (worth it when posts repeat);
        ``num_threads``: torch threads of the extractors and heads; ``ocr``: read the text off the
        image of a post without text (as the training data did for memes without a caption)."""
        from somelvlm.models.applicability import REDO_MM, Applicability
        from somelvlm.models.multimodal import load_classifier

        if not folders:
            raise ValueError("MultimodalHeads needs at least one head folder")
        self.heads: list[tuple[Any, dict]] = [load_classifier(f) for f in folders]
        self.folders = [Path(f) for f in folders]
        self.applicability = [Applicability.load(f, redo=REDO_MM) for f in self.folders]
        """Per head: its domain classifier on the joint image+text features, or None (a folder fit
        before applicability existed: its answers say ``in_domain: null``)."""
        self.num_threads = num_threads
        self.ocr = ocr
        self._ocr = None
        self.cache = None
        if cache:
            from somelvlm.features import FeatureCache

            self.cache = FeatureCache()
        self._extractors: dict[str, Any] = {}

    @classmethod
    def shipped(cls, **kwargs) -> MultimodalHeads:
        """The heads shipped in the package (``assets/some-mini-mm/*``)."""
        folders = sorted(p for p in MM_ASSETS.glob("*") if (p / "config.json").is_file())
        if not folders:
            raise FileNotFoundError(f"no multimodal heads shipped under {MM_ASSETS}")
        return cls(folders, **kwargs)

    @property
    def tasks(self) -> list[str]:
        return [meta["task"] for _, meta in self.heads]

    def _extractor(self, spec: str):
        if spec not in self._extractors:
            self._extractors[spec] = _extractor_for(spec, self.num_threads)
        return self._extractors[spec]

    def _encode(self, spec: str, items: list) -> np.ndarray:
        import torch

        from somelvlm.features.base import torch_threads

        extractor = self._extractor(spec)
        if self.cache is not None:
            return np.stack(self.cache.get_many(extractor, items))
        with torch.inference_mode(), torch_threads(self.num_threads):
            return np.asarray(extractor.encode_batch(items), dtype=np.float32)

    def fill_text(self, images: list, texts: list[str | None]) -> list[str | None]:
        """The texts, with OCR of the image where a post has an image but no text (when ``ocr``)."""
        texts = [t.strip() if isinstance(t, str) and t.strip() else None for t in texts]
        todo = [i for i, (im, t) in enumerate(zip(images, texts)) if t is None and im is not None]
        if not self.ocr or not todo:
            return texts
        if self._ocr is None:
            try:
                from somelvlm.features.ocr import shared_ocr
            except ImportError as err:
                raise ImportError(f"OCR needs the features extra: pip install 'somelvlm[features]' ({err})") from None
            self._ocr = shared_ocr(self.num_threads)
        if self.cache is not None:
            read = self.cache.get_many(self._ocr, [images[i] for i in todo])
        else:
            read = [self._ocr.read(images[i]) for i in todo]
        for i, t in zip(todo, read):
            texts[i] = t.strip() or None
        return texts

    def features(self, images: list, texts: list[str | None]) -> dict[str, np.ndarray]:
        """Feature arrays for the posts: ``"image"`` (n, 1280) and one (n, dim) per text stamp.

        ``images[i]`` is a decoded RGB image or None; ``texts[i]`` a string or None. A missing
        image or text is a zero vector, as in training.
        """
        n = len(images)
        if len(texts) != n:
            raise ValueError(f"{n} images but {len(texts)} texts")
        out: dict[str, np.ndarray] = {}
        specs = {meta["encoders"][role] for _, meta in self.heads for role in ("image", "text")}
        for spec in sorted(specs):
            extractor = self._extractor(spec)
            is_image = extractor.modality == "image"
            items = images if is_image else [t.strip() if t else None for t in texts]
            have = [i for i, v in enumerate(items) if v]
            arr = np.zeros((n, *extractor.shape), np.float32)
            if have:
                arr[have] = self._encode(spec, [items[i] for i in have])
            out[spec] = arr
        return out

    def _run(self, head_no: int, feats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        model, meta = self.heads[head_no]
        with torch.no_grad():
            out = model(torch.from_numpy(feats[meta["encoders"]["image"]]),
                        torch.from_numpy(feats[meta["encoders"]["text"]]))
        return {"probs": out["logits"].softmax(-1).numpy(), "g": out["g"].numpy()}

    def predict_proba(self, images: list, texts: list[str | None]) -> dict[str, np.ndarray]:
        """``task -> (n, labels)`` probabilities of every head."""
        return self.predict_with_domain(images, texts)[0]

    def predict_with_domain(self, images: list, texts: list[str | None]
                            ) -> tuple[dict[str, np.ndarray], dict[str, tuple[np.ndarray, float] | None]]:
        """``(task -> (n, labels) probabilities, task -> ((n,) domain scores, threshold) or None)`` of
        every head, from one pass of the extractors."""
        feats = self.features(images, self.fill_text(images, texts))
        probs, domain = {}, {}
        for h, (_, meta) in enumerate(self.heads):
            probs[meta["task"]] = self._run(h, feats)["probs"]
            domain[meta["task"]] = self._domain(h, feats)
        return probs, domain

    def _domain(self, head_no: int, feats: dict[str, np.ndarray]) -> tuple[np.ndarray, float] | None:
        from somelvlm.models.applicability import joint_features

        app, (_, meta) = self.applicability[head_no], self.heads[head_no]
        threshold = None if app is None else app.threshold(meta["task"])
        if threshold is None:
            return None
        x = joint_features(feats[meta["encoders"]["image"]], feats[meta["encoders"]["text"]])  # (n, 1280 + 384)
        return app.scores(meta["task"], x), threshold

    def predict(self, images: list, texts: list[str | None]) -> list[dict[str, dict]]:
        """Per post, ``{task: {"label", "prob", "probs", "modality": "image+text", ...}}`` for every head."""
        from somelvlm.models.base import HeadSpec, format_prediction

        rows: list[dict[str, dict]] = [{} for _ in images]
        probs, domain = self.predict_with_domain(images, texts)
        for _, meta in self.heads:
            task, dom = meta["task"], domain[meta["task"]]
            spec = HeadSpec(task, "classification", tuple(meta["labels"]))
            for i, p in enumerate(probs[task]):
                rows[i][task] = format_prediction(spec, p, domain=None if dom is None else (dom[0][i], dom[1]),
                                                  modality="image+text")
        return rows

    def embed(self, images: list, texts: list[str | None], head: int = 0) -> np.ndarray:
        """(n, hidden) embeddings g of one head: what its retrieval index stores."""
        return self._run(head, self.features(images, self.fill_text(images, texts)))["g"]

    def stamp(self, head: int = 0) -> dict:
        """What an index built from ``embed(..., head)`` must be stamped with."""
        from somelvlm.digests import head_state_digest as state_digest

        model, meta = self.heads[head]
        return {"encoders": {k: meta["encoders"][k] for k in ("image", "text")}, "head_digest": state_digest(model),
                "embedding": "g", "task": meta["task"], "model": str(self.folders[head].resolve())}


class ImageTextClassifier:
    """The ``image_text`` backend: trained image+text heads as a ``Classifier`` (``models.base``).

    A folder is one head (its ``config.json`` has ``task``, ``labels``, ``encoders``) or a set of
    heads (``{"backend": "image_text", "heads": ["offensive_meme", ...]}`` naming sub-folders, as
    the shipped ``some-mini-mm``). Posts reach it with their text already read (caption or OCR), so
    it does no OCR of its own. ``image_helps`` in the set's ``config.json`` (task -> bool, chosen on
    validation) says which heads the pipeline uses instead of the text head.
    """

    modalities = frozenset({"image", "text"})

    def __init__(self, folder: Path | str, *, threads: int | None = None, cache: bool = False) -> None:
        from somelvlm.models import read_model_config
        from somelvlm.models.base import HeadSpec

        folder = Path(folder)
        config = read_model_config(folder)
        folders = [folder / h for h in config["heads"]] if "heads" in config else [folder]
        self.folder = folder
        self.name = config.get("name", folder.name)
        self.heads = MultimodalHeads(folders, ocr=False, num_threads=threads or 1, cache=cache)
        self.specs = {meta["task"]: HeadSpec(meta["task"], "classification", tuple(meta["labels"]))
                      for _, meta in self.heads.heads}
        from somelvlm.models import withheld_heads

        self.withheld = withheld_heads(config, folder, self.specs)
        helps = config.get("image_helps", {})
        if not isinstance(helps, dict) or not all(isinstance(v, bool) for v in helps.values()):
            raise ValueError(f"{folder / 'config.json'}: image_helps must map a task to true or false, got {helps!r}")
        self.image_helps: dict[str, bool] = {t: helps.get(t, True) for t in self.specs}
        """Per task: whether its image+text head beat the text head on VALIDATION image posts
        (``benchmarks/image_helps.py``); the pipeline sends a task whose image does not help to the text
        head and then needs no image for it. A folder without the field: every head is used."""

    @property
    def tasks(self) -> list[str]:
        return list(self.specs)

    def predict_proba(self, posts: list, tasks: list[str] | None = None) -> dict[str, np.ndarray]:
        """``task -> (n, labels)``; ``posts[i].image`` may be None (a zero image vector, as in training)."""
        return self.predict_with_domain(posts, tasks)[0]

    def predict_with_domain(self, posts: list, tasks: list[str] | None = None
                            ) -> tuple[dict[str, np.ndarray], dict[str, tuple[np.ndarray, float] | None]]:
        """``predict_proba`` and, per task, ``((n,) domain scores, in-domain threshold)`` (None for a head
        without applicability), from one pass of the extractors."""
        probs, domain = self.heads.predict_with_domain([p.image for p in posts], [p.text for p in posts])
        tasks = tasks or self.tasks
        return {t: probs[t] for t in tasks}, {t: domain[t] for t in tasks}


def head_meta(folder: Path | str) -> dict:
    """A head folder's ``config.json`` without loading torch."""
    from somelvlm.models import read_model_config

    return read_model_config(folder)
