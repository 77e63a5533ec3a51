"""Applicability: does a post lie within what a head was trained on?

A head answers for any text, also for posts far from everything it saw (a COVID fake-news head on a
tweet about a job offer). Each head has a small **domain classifier** on the encoder's embedding (the
same pooled vector its labels come from, so no second encoder pass): a logistic regression separating
the head's own training posts from a background of other heads' training posts (heads sharing
training posts with it are left out). What the two sides are follows the task's ``domain`` (its YAML),
``domain_heads``: a **topic-bound** head (COVID fake news, US political claims, five stance targets) is
its own training posts against every other dataset, so an ordinary tweet falls outside the COVID head;
any other head is the posts of its **genre** (tweets, memes, code-mixed memes, jokes, political
statements: its own and the other heads' of that genre) against posts of other genres, so a sentiment
head trained on one tweet collection does not call tweets of another collection foreign. Its own posts
against everything else, as the first version did, taught the classifier the collection, not the
domain: the sentiment head flagged 48% of its own test tweets (SemEval-2017, a later collection than its
training tweets) while scoring higher on them than on its validation; with other genres only as the
background, still 37%. A genre head's positives are also seen in ``plain_copy`` form (no @handles, no
links, no ``@user`` / ``URL`` placeholders): otherwise the placeholders of the tweet collections are the
cue, and a tweet typed without them (the demo's examples) falls outside the sentiment head (5 of 8 did).
Not a topic-bound head's: its posts' links are part of what it was trained on (the news-event head
took in 8 points more of ordinary tweets without them). A post
with no text at all scores 0 for every head (``CompactModel``). A post's
**domain score** is that classifier's probability::

    score(x) = sigmoid(w . x / |x| + b)        higher = more like the head's training posts

and the post is **in domain** when ``score >= threshold``, the threshold being a low percentile
(``quantile``, e.g. 5%) of the head's own VALIDATION posts' scores, so that about that share of its
own posts is flagged. Test splits are never used to choose anything.

Why a classifier and not nearest-neighbour density: in this encoder's space (fine-tuned for the heads'
labels) posts group by tone more than by topic. Compared on VALIDATION splits of other datasets (same
5% own-val threshold), the mean cosine similarity to the 3 nearest of 64 k-means centroids of a head's
training posts flagged 71% of ordinary tweets (TweetEval emotion + sentiment val) for the COVID head,
29% for the news-event head, 74% for the party head and 19% for stance; the domain classifier 94%, 90%,
97% and 83%.

An image+text head (``models.mm_runtime``) has the same kind of classifier on ``joint_features`` of its
frozen image and text vectors, fit by ``benchmarks/fit_trust_mm.py`` against the other image datasets'
posts and kept in the head's own folder.

On disk, in the model folder::

    applicability.safetensors   head.<task>: (dim + 1,) float32, the weights then the bias;
                                metadata "applicability": JSON {"format", "model_digest",
                                "heads": {task: {"threshold", "quantile", "n_train", "n_val",
                                "n_background", "background"}}}

``model_digest`` stamps the weights the embeddings came from: a retrained ``model.safetensors`` makes
the file stale and loading says how to redo it. A folder without the file loads with no
applicability (``threshold(task)`` is None).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

FILE = "applicability.safetensors"
FORMAT = "somelvlm-applicability-v1"
REDO = "rerun `python benchmarks/fit_trust.py --model FOLDER` to refit it"
REDO_MM = "rerun `python benchmarks/fit_trust_mm.py --model FOLDER_OF_HEADS` to refit it"


_HANDLE = re.compile(r"(?<![\w@])@\w+")
_URL = re.compile(r"(?:https?://|www\.)\S+|(?<!\w)(?:URL|<url>|HTTPURL)(?!\w)")


def plain_copy(text: str) -> str:
    """``text`` without @handles and links (nor the placeholders datasets put in their place, ``@user``,
    ``URL``, ``HTTPURL``), spaces collapsed. Fit-time augmentation: a domain classifier fit on a
    collection's tweets also sees them in this form, so a post typed without them (the demo's examples,
    a copy-pasted quote) is not foreign just for its style. Empty when nothing else is left."""
    words = _URL.sub(" ", _HANDLE.sub(" ", text)).split()
    while words and words[0] in ("RT", ":", "RT:"):  # what a retweet's handle leaves behind
        words = words[1:]
    return " ".join(words)


def model_digest(folder: Path) -> str:
    """sha256 (16 hex digits) of the folder's ``model.safetensors``: what calibration and applicability
    were fit on."""
    from somelvlm.digests import file_sha256

    return file_sha256(Path(folder) / "model.safetensors")[:16]


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero). (n, dim) -> (n, dim) float32."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def joint_features(*parts: np.ndarray) -> np.ndarray:
    """The input of an image+text head's domain classifier: each part (n, d_k) scaled to unit rows
    (an absent image or text stays a zero block), side by side -> (n, sum d_k) float32."""
    return np.concatenate([normalize(p) for p in parts], axis=1)


def domain_probability(emb: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``sigmoid(normalize(emb) @ w + b)`` for embeddings (n, dim) and ``weights`` (dim + 1,) = [w, b].
    Returns (n,) float32 in (0, 1)."""
    z = normalize(emb) @ weights[:-1].astype(np.float32) + np.float32(weights[-1])  # (n,)
    return (1.0 / (1.0 + np.exp(-np.clip(z, -60, 60)))).astype(np.float32)


@dataclass
class HeadDomain:
    """One head's applicability threshold and what its domain classifier was fit on."""

    threshold: float
    quantile: float
    n_train: int = 0
    n_val: int = 0
    n_background: int = 0
    background: list[str] = field(default_factory=list)
    """The heads whose training posts formed the background (negatives)."""
    contrast: str = ""
    """The rule that chose both sides (``domain_heads``); empty in files written before it existed."""
    positives: list[str] = field(default_factory=list)
    """Other heads whose training posts joined the head's own as positives (its genre)."""


@dataclass
class Applicability:
    """Per-head domain classifiers and thresholds; ``scores`` on embeddings."""

    weights: dict[str, np.ndarray] = field(default_factory=dict)
    """``task -> (dim + 1,)``: the logistic regression's weights, then its bias."""
    heads: dict[str, HeadDomain] = field(default_factory=dict)
    model_digest: str = ""

    def threshold(self, task: str) -> float | None:
        head = self.heads.get(task)
        return None if head is None else head.threshold

    def scores(self, task: str, emb: np.ndarray) -> np.ndarray:
        """(n,) domain scores of embeddings ``emb`` (n, dim) for ``task``; NaN when the head has none."""
        if task not in self.heads:
            return np.full(len(emb), np.nan, dtype=np.float32)
        return domain_probability(emb, self.weights[task])

    def save(self, folder: Path) -> Path:
        """Write ``applicability.safetensors`` into ``folder`` atomically; returns its path."""
        from safetensors.numpy import save_file

        from somelvlm.atomic import atomic_path

        path = Path(folder) / FILE
        meta = {"format": FORMAT, "model_digest": self.model_digest,
                "heads": {t: asdict(h) for t, h in self.heads.items()}}
        with atomic_path(path) as tmp:
            save_file({f"head.{t}": np.ascontiguousarray(w, dtype=np.float32) for t, w in self.weights.items()},
                      str(tmp), metadata={"applicability": json.dumps(meta)})
        return path

    @classmethod
    def load(cls, folder: Path, *, check_digest: bool = True, redo: str = REDO) -> Applicability | None:
        """The folder's applicability, or None when it has no ``applicability.safetensors``; a file fit
        for other weights than the folder's ``model.safetensors`` is an error saying how to refit it
        (``redo``)."""
        from safetensors import safe_open

        path = Path(folder) / FILE
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = json.loads((f.metadata() or {}).get("applicability", "{}"))
                weights = {k[5:]: f.get_tensor(k).astype(np.float32) for k in f.keys() if k.startswith("head.")}
        except Exception as err:  # a truncated or foreign file
            raise ValueError(f"{path}: unreadable ({str(err)[:120]}); {redo}") from None
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}; {redo}")
        if check_digest and meta.get("model_digest") != model_digest(folder):
            raise ValueError(f"{path} was fit on other weights than {Path(folder) / 'model.safetensors'} "
                             f"(digest {meta.get('model_digest')} != {model_digest(folder)}); {redo}")
        heads = {}
        for task, h in meta.get("heads", {}).items():
            if task not in weights:
                raise ValueError(f"{path}: head {task} has a threshold but no weights; {redo}")
            heads[task] = HeadDomain(**h)
        return cls(weights, heads, meta.get("model_digest", ""))


def fit_head(own_train: np.ndarray, background: np.ndarray, own_val: np.ndarray, *, quantile: float,
             c: float = 1.0) -> tuple[np.ndarray, float]:
    """``(weights (dim + 1,), threshold)`` of one head's domain classifier.

    ``own_train`` (n, dim): embeddings of the head's training posts (positives); ``background`` (m, dim):
    other datasets' training posts (negatives); classes weighted to balance; L2 strength ``1 / c``. The
    threshold is the ``quantile`` of the scores of ``own_val`` (the head's validation posts).
    """
    from sklearn.linear_model import LogisticRegression

    if len(own_train) == 0 or len(background) == 0 or len(own_val) == 0:
        raise ValueError("a domain classifier needs the head's training and validation posts and a background")
    x = normalize(np.concatenate([own_train, background]))
    y = np.r_[np.ones(len(own_train)), np.zeros(len(background))]
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=2000).fit(x, y)
    weights = np.r_[clf.coef_[0], clf.intercept_[0]].astype(np.float32)
    threshold = float(np.quantile(domain_probability(own_val, weights), quantile))
    return weights, threshold


def domain_heads(task: str, tasks: list[str], texts: dict[str, set[str]]) -> tuple[list[str], list[str], str]:
    """``(heads whose training posts join task's own as positives, heads whose training posts are its
    negatives, the rule used)``, among ``tasks`` (``texts``: each head's training posts; heads sharing a
    post with ``task`` are in neither list).

    A topic-bound head (its task YAML names a ``domain.topic``: COVID fake news, US political claims,
    five stance targets) is its own training posts against every other dataset, so ordinary posts of its
    own genre fall outside it. Any other head with a known genre is the posts of its genre (its own and
    the other heads' of that genre: a sentiment head applies to every tweet, whichever collection it
    came from) against posts of other genres. Without a genre: its own posts against every other
    dataset."""
    from somelvlm.taxonomy.registry import get_task

    me = get_task(task)
    others = [u for u in tasks if u != task and not (texts[u] & texts[task])]
    if me.topic_bound or not me.genre:
        return [], others, "own posts against every other dataset"
    same = [u for u in others if get_task(u).genre == me.genre]
    return same, [u for u in others if u not in same], f"{me.genre} posts against other genres"
