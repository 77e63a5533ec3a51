"""RKC, the retrieval-augmented kNN classifier (RGCL, Mei et al. ACL 2024).

For a query, retrieve K neighbours with cosine similarities s_k and labels y_k (best first), then

    score = sum_k w_k (2 y_k - 1) s_k / sum_k w_k,   w_k = K - k + 1

(the nearest weighs K, the farthest 1); positive when sigmoid(score) >= 0.5. AUROC uses the raw
score. For a task with more than two labels the same vote is taken per class c (y_k -> [y_k == c])
and the prediction is the class with the highest score. New labelled items change predictions by
being added to the index: nothing is retrained.

>>> import numpy as np
>>> np.round(rkc_scores(np.array([[0.9, 0.5]]), np.array([[1, 0]]), num_classes=2), 3).tolist()
[[-0.433, 0.433]]
"""

from __future__ import annotations

import numpy as np


def rkc_scores(sims: np.ndarray, labels: np.ndarray, num_classes: int = 2) -> np.ndarray:
    """Per-class scores (n, classes) from neighbour similarities (n, K) and label indices (n, K).

    A label index < 0 marks a missing neighbour (the index held fewer than K items); it is left
    out, and the remaining neighbours keep their rank weights. For two classes column 1 is the
    DESIGN score above and column 0 its negation.
    """
    sims = np.asarray(sims, np.float32)
    labels = np.asarray(labels)
    n, k = sims.shape
    w = np.arange(k, 0, -1, dtype=np.float32)[None, :].repeat(n, 0)  # (n, K): K, K-1, ..., 1
    w = np.where(labels >= 0, w, 0.0)
    denom = np.maximum(w.sum(1, keepdims=True), 1e-12)
    out = np.zeros((n, num_classes), np.float32)
    for c in range(num_classes):
        vote = np.where(labels == c, 1.0, -1.0)
        out[:, c] = (w * vote * sims).sum(1) / denom[:, 0]
    return out


def rkc_predict(index, queries: np.ndarray, labels: list[str], k: int = 20,
                exclude: list[str | None] | None = None) -> list[dict]:
    """RKC on a ``MemoryIndex``: one ``{"label", "prob", "score", "neighbours"}`` per query.

    ``labels``: the task's labels in order (index metadata holds label names; names not in it are
    ignored as neighbours). ``prob``: sigmoid of the winning class's score. ``neighbours``: the
    ids of the three nearest items, for inspection.
    """
    sims, pos = index.search(queries, k, exclude)
    lookup = {lab: i for i, lab in enumerate(labels)}
    names = index.meta["label"]
    y = np.array([[lookup.get(names[p], -1) if p >= 0 else -1 for p in row] for row in pos]).reshape(pos.shape)
    scores = rkc_scores(sims, y, len(labels))
    out = []
    for i in range(len(scores)):
        c = int(scores[i].argmax()) if len(labels) > 2 else int(scores[i, 1] >= 0)
        out.append({"label": labels[c], "prob": float(1 / (1 + np.exp(-scores[i, c]))),
                    "score": float(scores[i, c] if len(labels) > 2 else scores[i, 1]),
                    "neighbours": [index.meta["id"][p] for p in pos[i][:3] if p >= 0]})
    return out
