"""``somelvlm index build`` / ``index add``: retrieval memories made with a trained multimodal head.

An offline job over a dataset or a user's file (so it lives with the batch runner and shares its
reader): the memory itself is ``retrieval.MemoryIndex``.

An index stores the head's embedding g of labelled posts. ``build_index`` takes them from a
dataset's splits (cached features) or from a user's file; ``add_to_index`` appends a user's newly
labelled posts, so RKC predictions change with no retraining. Both embed with
``MultimodalHeads`` and stamp the index with the extractors and the head's weight digest; adding to
(or analysing with) an index made by another encoder raises ``EncoderMismatch``.

A user file is JSONL, CSV/TSV or Parquet with an id, a text and/or an image column (paths relative
to the file's folder) and a label column. Rows that cannot be read, whose image is broken, or whose
label is not one of the task's are listed in the returned summary and skipped; the others go in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class IndexSummary:
    """What ``build_index`` / ``add_to_index`` did."""

    index: Path
    added: int
    total: int
    skipped: list[dict] = field(default_factory=list)
    """``{"id", "line", "reason", "message"}`` per row left out."""


@dataclass
class LabelledPosts:
    ids: list[str]
    images: list
    texts: list[str | None]
    labels: list[str]
    skipped: list[dict]


def read_labelled_posts(path: Path, labels: list[str], *, label_col: str = "label", text_col: str = "text",
                        image_col: str = "image", id_col: str = "id", image_root: Path | None = None,
                        fmt: str | None = None) -> LabelledPosts:
    """Posts with a valid label from a user's file; every other row is reported in ``skipped``."""
    from somelvlm.batch.readers import Row, read_rows
    from somelvlm.batch.runner import to_post
    from somelvlm.posts import PostError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"input {path} not found")
    gold = {r.id: r.text for r in read_rows(path, text_col=label_col, image_col="\0", id_col=id_col, fmt=fmt)
            if isinstance(r, Row)}
    out = LabelledPosts([], [], [], [], [])
    for row in read_rows(path, text_col=text_col, image_col=image_col, id_col=id_col, fmt=fmt):
        if not isinstance(row, Row):
            out.skipped.append({"id": row.id, "line": row.line, "reason": row.reason, "message": row.message})
            continue
        label = str(gold.get(row.id) or "").strip()
        if label not in labels:
            out.skipped.append({"id": row.id, "line": row.line, "reason": "bad label",
                                "message": f"{label_col}={label!r} is not one of {labels}"})
            continue
        try:
            post = to_post(row, image_root=image_root or path.parent)
        except PostError as err:
            out.skipped.append({"id": row.id, "line": row.line, "reason": err.reason,
                                "message": str(err).removeprefix(f"{err.reason}: ")})
            continue
        out.ids.append(post.id)
        out.images.append(post.image)
        out.texts.append(post.text)
        out.labels.append(label)
    return out


def _dataset_vectors(heads, data_root: Path, dataset: str, splits: list[str], progress=None):
    """g and metadata of a dataset's posts from cached features (the same table training used)."""
    import torch

    from somelvlm.features.mm_table import build_table

    model, meta = heads.heads[0]
    if meta.get("dataset") != dataset:
        raise ValueError(f"the head was trained on {meta.get('dataset')!r}, not {dataset!r}")
    text_name = meta["encoders"]["text"].split("|")[0]
    table = build_table(data_root, dataset, text=text_name, num_threads=heads.num_threads, progress=progress)
    for role in ("image", "text"):
        if table.encoders[role] != meta["encoders"][role]:
            raise ValueError(f"{role} features now come from {table.encoders[role]!r}, the head was trained "
                             f"on {meta['encoders'][role]!r}")
    rows = np.concatenate([table.rows(s) for s in splits])
    with torch.no_grad():
        g = model(torch.from_numpy(table.image[rows]), torch.from_numpy(table.text[rows]))["g"].numpy()
    info = {"id": [table.ids[i] for i in rows], "label": [table.labels[table.y[i]] for i in rows],
            "task": [table.task] * len(rows), "source": [dataset] * len(rows),
            "text": [table.texts[i] for i in rows]}
    return g, info


def build_index(model: Path, out: Path, *, dataset: str | None = None, data_root: Path | None = None,
                splits: list[str] | None = None, input: Path | None = None, label_col: str = "label",
                kind: str = "flat", num_threads: int = 1,
                progress: Callable[[str, int, int], None] | None = None) -> IndexSummary:
    """A new index at ``out`` from a dataset's splits (default train) or from a labelled file;
    ``progress(stage, done, total)`` follows a dataset's feature extraction."""
    from somelvlm.models.mm_runtime import MultimodalHeads
    from somelvlm.retrieval.index import MemoryIndex

    if (dataset is None) == (input is None):
        raise ValueError("pass exactly one of --dataset (a dataset's splits) or --input (a labelled file)")
    heads = MultimodalHeads([model], num_threads=num_threads)
    _, meta = heads.heads[0]
    skipped: list[dict] = []
    if dataset is not None:
        if data_root is None or not Path(data_root).is_dir():
            raise FileNotFoundError(f"data root {data_root} not found: pass --data-root (or set SOMELVLM_DATA)")
        g, info = _dataset_vectors(heads, Path(data_root), dataset, splits or ["train"], progress)
    else:
        posts = read_labelled_posts(Path(input), meta["labels"], label_col=label_col)
        skipped = posts.skipped
        if not posts.ids:
            raise ValueError(f"{input}: no usable labelled posts ({len(skipped)} skipped)")
        g = heads.embed(posts.images, posts.texts)
        info = {"id": posts.ids, "label": posts.labels, "task": [meta["task"]] * len(posts.ids),
                "source": [Path(input).name] * len(posts.ids), "text": posts.texts}
    index = MemoryIndex.build(g, info, heads.stamp(), kind=kind)
    index.save(out)
    return IndexSummary(Path(out), len(info["id"]), len(index), skipped)


def add_to_index(index: Path, model: Path, input: Path, *, label_col: str = "label", num_threads: int = 1
                 ) -> IndexSummary:
    """Append a file's labelled posts to the index at ``index`` (made with the same ``model``)."""
    from somelvlm.models.mm_runtime import MultimodalHeads
    from somelvlm.retrieval.index import MemoryIndex

    if _backend(model) == "lmm_rgcl":
        return _add_with_lmm(index, model, input, label_col=label_col, num_threads=num_threads)
    heads = MultimodalHeads([model], num_threads=num_threads)
    memory = MemoryIndex.load(index, expect=heads.stamp())
    _, meta = heads.heads[0]
    posts = read_labelled_posts(Path(input), meta["labels"], label_col=label_col)
    known = set(memory.meta["id"])
    fresh = [i for i, pid in enumerate(posts.ids) if pid not in known]
    skipped = posts.skipped + [{"id": posts.ids[i], "line": None, "reason": "duplicate id",
                                "message": "already in the index"} for i in range(len(posts.ids)) if i not in fresh]
    if fresh:
        g = heads.embed([posts.images[i] for i in fresh], [posts.texts[i] for i in fresh])
        memory.add(g, {"id": [posts.ids[i] for i in fresh], "label": [posts.labels[i] for i in fresh],
                       "task": [meta["task"]] * len(fresh), "source": [Path(input).name] * len(fresh),
                       "text": [posts.texts[i] for i in fresh]})
        memory.save(index)
    return IndexSummary(Path(index), len(fresh), len(memory), skipped)


def _backend(model: Path) -> str | None:
    """The backend a model folder's config.json names (None for a folder without one)."""
    from somelvlm.models import read_model_config

    try:
        return read_model_config(model).get("backend")
    except (FileNotFoundError, ValueError):
        return None


def _add_with_lmm(index: Path, model: Path, input: Path, *, label_col: str, num_threads: int) -> IndexSummary:
    """``add_to_index`` for an ``lmm_rgcl`` model: its LVLM + head embed the posts (g). Labels may be
    the task's own (``somewhat_harmful``) or the model's binary ones (``harmful``); posts without text
    are skipped ("no text"): the model reads each meme's text in its prompt."""
    from somelvlm.models.lmm_rgcl_vlm import load_lmm_rgcl
    from somelvlm.posts import Post
    from somelvlm.retrieval.index import MemoryIndex

    lmm = load_lmm_rgcl(model, threads=num_threads)
    memory = MemoryIndex.load(index, expect=lmm.stamp())
    labels = list(dict.fromkeys([*lmm.task.label_ids, *lmm.labels]))
    posts = read_labelled_posts(Path(input), labels, label_col=label_col)
    known = set(memory.meta["id"])
    skipped = list(posts.skipped)
    fresh = []
    for i, pid in enumerate(posts.ids):
        if pid in known:
            skipped.append({"id": pid, "line": None, "reason": "duplicate id", "message": "already in the index"})
        elif not (posts.texts[i] or "").strip():
            skipped.append({"id": pid, "line": None, "reason": "no text", "message": "the model reads the meme's text"})
        else:
            fresh.append(i)
    if fresh:
        batch = [Post(id=posts.ids[i], text=posts.texts[i], image=posts.images[i]) for i in fresh]
        memory.add(lmm.embed(batch), {"id": [posts.ids[i] for i in fresh],
                                      "label": [lmm.binary_label(posts.labels[i]) for i in fresh],
                                      "task": [lmm.task_name] * len(fresh), "source": [Path(input).name] * len(fresh),
                                      "text": [posts.texts[i] for i in fresh]})
        memory.save(index)
    return IndexSummary(Path(index), len(fresh), len(memory), skipped)
