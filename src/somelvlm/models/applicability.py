"""Applicability: does a post lie within what a head was trained on?

A head answers for any text, also for posts far from everything it saw (a COVID fake-news head on a
tweet about a job offer). Each head keeps a small reference set in the encoder's embedding space:
``m`` unit vectors (k-means centroids of its training posts' embeddings, fp16). A post's
**domain score** is its mean cosine similarity to its ``k`` nearest references::

    score(x) = mean_{r in top-k(R, x)} cos(x, r)        higher = more like the head's training posts

and the post is **in domain** when ``score >= threshold``, the threshold being a low percentile
(``quantile``, e.g. 5%) of the head's own VALIDATION posts' scores, so that about that share of its
own posts is flagged. Test splits are never used to choose anything.

On disk, in the model folder::

    applicability.safetensors   ref.<name>: (m, dim) fp16 reference vectors (heads with the same
                                training posts share one set); metadata "applicability": JSON
                                {"format", "model_digest", "heads": {task: {"ref", "k", "threshold",
                                "quantile", "n_train", "n_val"}}}

``model_digest`` stamps the weights the embeddings came from: a retrained ``model.safetensors`` makes
the file stale and loading says how to redo it. A folder without the file loads with no
applicability (``threshold(task)`` is None).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FILE = "applicability.safetensors"
FORMAT = "somelvlm-applicability-v1"
REDO = "rerun `python benchmarks/fit_trust.py --model FOLDER` to refit it"


def model_digest(folder: Path) -> str:
    """sha256 (16 hex digits) of the folder's ``model.safetensors``: what calibration and applicability
    were fit on."""
    h = hashlib.sha256()
    with (Path(folder) / "model.safetensors").open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero). (n, dim) -> (n, dim) float32."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def knn_similarity(x: np.ndarray, refs: np.ndarray, k: int) -> np.ndarray:
    """Mean cosine similarity of each row of ``x`` (n, dim) to its ``k`` most similar rows of ``refs``
    (m, dim); both are normalised here. Returns (n,) float32 in [-1, 1]."""
    sims = normalize(x) @ normalize(refs).T  # (n, m)
    k = max(1, min(k, sims.shape[1]))
    top = np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:]  # (n, k)
    return top.mean(axis=1).astype(np.float32)


def spherical_kmeans(x: np.ndarray, m: int, *, iters: int = 25, seed: int = 0) -> np.ndarray:
    """``m`` unit centroids (m, dim) of the unit rows of ``x`` (n, dim) by cosine k-means
    (k-means++ seeding on cosine distance). Returns ``x`` itself (normalised) when n <= m."""
    x = normalize(x)
    if len(x) <= m:
        return x
    rng = np.random.default_rng(seed)
    centers = [x[rng.integers(len(x))]]
    dist = 1.0 - x @ centers[0]
    for _ in range(m - 1):  # k-means++: next centre drawn with probability proportional to distance^2
        p = np.maximum(dist, 0) ** 2
        p = p / p.sum() if p.sum() > 0 else np.full(len(x), 1 / len(x))
        c = x[rng.choice(len(x), p=p)]
        centers.append(c)
        dist = np.minimum(dist, 1.0 - x @ c)
    c = np.stack(centers)  # (m, dim)
    for _ in range(iters):
        assign = (x @ c.T).argmax(axis=1)  # (n,)
        for j in range(m):
            members = x[assign == j]
            if len(members):
                c[j] = members.sum(axis=0)
        c = normalize(c)
    return c


@dataclass
class HeadDomain:
    """One head's applicability: which reference set, how many neighbours, the threshold."""

    ref: str
    k: int
    threshold: float
    quantile: float
    n_train: int = 0
    n_val: int = 0


@dataclass
class Applicability:
    """Reference sets and per-head thresholds; ``scores`` and ``in_domain`` on embeddings."""

    refs: dict[str, np.ndarray] = field(default_factory=dict)
    """``name -> (m, dim)`` unit reference vectors."""
    heads: dict[str, HeadDomain] = field(default_factory=dict)
    model_digest: str = ""

    def threshold(self, task: str) -> float | None:
        head = self.heads.get(task)
        return None if head is None else head.threshold

    def scores(self, task: str, emb: np.ndarray) -> np.ndarray:
        """(n,) domain scores of embeddings ``emb`` (n, dim) for ``task``; NaN when the head has none."""
        head = self.heads.get(task)
        if head is None:
            return np.full(len(emb), np.nan, dtype=np.float32)
        return knn_similarity(emb, self.refs[head.ref], head.k)

    def save(self, folder: Path) -> Path:
        """Write ``applicability.safetensors`` into ``folder`` atomically; returns its path."""
        from safetensors.numpy import save_file

        path = Path(folder) / FILE
        meta = {"format": FORMAT, "model_digest": self.model_digest,
                "heads": {t: vars(h) for t, h in self.heads.items()}}
        tmp = path.with_suffix(".safetensors.tmp")
        save_file({f"ref.{name}": np.ascontiguousarray(r, dtype=np.float16) for name, r in self.refs.items()},
                  str(tmp), metadata={"applicability": json.dumps(meta)})
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, folder: Path, *, check_digest: bool = True) -> Applicability | None:
        """The folder's applicability, or None when it has no ``applicability.safetensors``."""
        from safetensors import safe_open

        path = Path(folder) / FILE
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = json.loads((f.metadata() or {}).get("applicability", "{}"))
                refs = {k[4:]: f.get_tensor(k).astype(np.float32) for k in f.keys() if k.startswith("ref.")}
        except Exception as err:  # a truncated or foreign file
            raise ValueError(f"{path}: unreadable ({str(err)[:120]}); {REDO}") from None
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}; {REDO}")
        if check_digest and meta.get("model_digest") != model_digest(folder):
            raise ValueError(f"{path} was fit on other weights than {Path(folder) / 'model.safetensors'} "
                             f"(digest {meta.get('model_digest')} != {model_digest(folder)}); {REDO}")
        heads = {}
        for task, h in meta.get("heads", {}).items():
            head = HeadDomain(**h)
            if head.ref not in refs:
                raise ValueError(f"{path}: head {task} names reference set {head.ref!r}, which is missing; {REDO}")
            heads[task] = head
        return cls(refs, heads, meta.get("model_digest", ""))


def fit_head(train_emb: np.ndarray, val_emb: np.ndarray, *, m: int, k: int, quantile: float,
             seed: int = 0) -> tuple[np.ndarray, float]:
    """``(references (m, dim), threshold)`` for one head from its training and validation embeddings:
    k-means centroids of the training posts, threshold = the ``quantile`` of the val posts' scores."""
    if len(train_emb) == 0 or len(val_emb) == 0:
        raise ValueError("applicability needs training and validation posts of the head")
    refs = spherical_kmeans(train_emb, m, seed=seed)
    threshold = float(np.quantile(knn_similarity(val_emb, refs, k), quantile))
    return refs, threshold
