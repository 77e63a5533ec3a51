"""A retrieval memory on disk: FAISS inner-product index + Parquet metadata + an encoder stamp.

A folder holds ``index.faiss`` (L2-normalised vectors, so inner product = cosine), ``meta.parquet``
(one row per vector: id, label, task, source, text) and ``stamp.json`` (what made the vectors: the
feature extractors with their configs and the digest of the trained projection; the index kind; the
dimension). Loading with an ``expect`` stamp that differs raises ``EncoderMismatch`` naming the
differing fields: vectors from another encoder would be silently meaningless neighbours.

Kinds: ``flat`` (exact, ``IndexFlatIP``) and ``hnsw`` (approximate, ``IndexHNSWFlat`` with inner
product, M=32), both accept ``add`` without retraining. Files are written to temporary names and
renamed, so a reader never sees half an index.

>>> idx = MemoryIndex.build(vectors, meta, stamp={"encoder": "..."})        # doctest: +SKIP
>>> idx.save("runs/mm/index"); MemoryIndex.load("runs/mm/index", expect=stamp)  # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from somelvlm.atomic import atomic_path, atomic_write_text

META_COLUMNS = ("id", "label", "task", "source", "text")
KINDS = ("flat", "hnsw")


class EncoderMismatch(ValueError):
    """The index was built by a different encoder than the one asking to use it."""


def _faiss():
    try:
        import faiss
    except ImportError as err:
        raise ImportError(f"the retrieval index needs FAISS: pip install 'somelvlm[retrieval]' ({err})") from None
    return faiss


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, float32, C-contiguous (zero rows stay zero)."""
    v = np.ascontiguousarray(vectors, dtype=np.float32)
    if v.ndim != 2:
        raise ValueError(f"vectors must be 2-d (n, dim), got shape {v.shape}")
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    return np.ascontiguousarray(v / np.maximum(norms, 1e-12))


class MemoryIndex:
    """Labelled post embeddings, searchable by cosine similarity."""

    def __init__(self, index: Any, meta: dict[str, list], stamp: dict) -> None:
        self.index = index
        self.meta = {c: list(meta.get(c, [])) for c in META_COLUMNS}
        self.stamp = dict(stamp)
        if index.ntotal != len(self.meta["id"]):
            raise ValueError(f"index holds {index.ntotal} vectors but metadata {len(self.meta['id'])} rows")

    # -- building -------------------------------------------------------------------------------
    @staticmethod
    def _empty(dim: int, kind: str):
        faiss = _faiss()
        if kind == "flat":
            return faiss.IndexFlatIP(dim)
        if kind == "hnsw":
            index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efSearch = 64
            return index
        raise ValueError(f"index kind must be one of {KINDS}, got {kind!r}")

    @classmethod
    def build(cls, vectors: np.ndarray, meta: dict[str, list], stamp: dict, kind: str = "flat") -> MemoryIndex:
        """A new index over ``vectors`` (n, dim) with ``meta`` columns (``id`` and ``label`` required)."""
        v = normalise(vectors)
        index = cls._empty(v.shape[1], kind)
        out = cls(index, {c: [] for c in META_COLUMNS}, {**stamp, "kind": kind, "dim": int(v.shape[1])})
        out.add(v, meta)
        return out

    def add(self, vectors: np.ndarray, meta: dict[str, list]) -> int:
        """Append labelled vectors; returns how many. Ids must be new; labels must be given."""
        v = normalise(vectors)
        n = v.shape[0]
        if v.shape[1] != self.index.d:
            raise ValueError(f"vectors have dimension {v.shape[1]}, the index {self.index.d}")
        for col in ("id", "label"):
            if len(meta.get(col, [])) != n:
                raise ValueError(f"metadata column {col!r} needs {n} values, got {len(meta.get(col, []))}")
        ids = [str(i) for i in meta["id"]]
        seen = set(self.meta["id"])
        dup = [i for i in ids if i in seen] or [i for j, i in enumerate(ids) if i in ids[:j]]
        if dup:
            raise ValueError(f"ids already in the index (or repeated): {dup[:5]}")
        if any(lab is None or str(lab) == "" for lab in meta["label"]):
            raise ValueError("every added item needs a label")
        self.index.add(v)
        for c in META_COLUMNS:
            values = meta.get(c)
            self.meta[c].extend([None if values is None else values[j] for j in range(n)] if c != "id" else ids)
        self.meta["label"][-n:] = [str(x) for x in self.meta["label"][-n:]]
        return n

    def __len__(self) -> int:
        return int(self.index.ntotal)

    # -- searching ------------------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int, exclude: list[str | None] | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
        """``(similarities (n, k), positions (n, k))``, best first; position -1 pads a short result.

        ``exclude[i]``: an id never returned for query i (the query itself, when it is in the index).
        """
        q = normalise(queries)
        extra = 1 if exclude is not None else 0
        kk = min(k + extra, len(self))
        if kk == 0:
            return np.zeros((len(q), k), np.float32), -np.ones((len(q), k), np.int64)
        sims, pos = self.index.search(q, kk)
        out_s = np.zeros((len(q), k), np.float32)
        out_p = -np.ones((len(q), k), np.int64)
        ids = self.meta["id"]
        for i in range(len(q)):
            keep = [(s, p) for s, p in zip(sims[i], pos[i])
                    if p >= 0 and (exclude is None or ids[p] != exclude[i])][:k]
            for j, (s, p) in enumerate(keep):
                out_s[i, j], out_p[i, j] = s, p
        return out_s, out_p

    # -- disk -----------------------------------------------------------------------------------
    def save(self, folder: Path | str) -> Path:
        """Write index.faiss, meta.parquet and stamp.json into ``folder`` (each atomically)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        faiss = _faiss()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / "index.faiss") as tmp:
            faiss.write_index(self.index, str(tmp))
        table = pa.table({c: pa.array([None if v is None else str(v) for v in self.meta[c]], pa.string())
                          for c in META_COLUMNS})
        with atomic_path(folder / "meta.parquet") as tmp:
            pq.write_table(table, tmp)
        stamp = {**self.stamp, "count": len(self)}
        atomic_write_text(folder / "stamp.json", json.dumps(stamp, indent=2, sort_keys=True))
        return folder

    @classmethod
    def load(cls, folder: Path | str, expect: dict | None = None) -> MemoryIndex:
        """Read a saved index; with ``expect``, refuse one made by a different encoder."""
        import pyarrow.parquet as pq

        faiss = _faiss()
        folder = Path(folder)
        missing = [n for n in ("index.faiss", "meta.parquet", "stamp.json") if not (folder / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder} is not a retrieval index: missing {', '.join(missing)}")
        stamp = json.loads((folder / "stamp.json").read_text(encoding="utf-8"))
        if expect is not None:
            check_stamp(stamp, expect, folder)
        index = faiss.read_index(str(folder / "index.faiss"))
        table = pq.read_table(folder / "meta.parquet")
        meta = {c: table.column(c).to_pylist() if c in table.column_names else [None] * table.num_rows
                for c in META_COLUMNS}
        return cls(index, meta, stamp)


ENCODER_KEYS = ("encoders", "head_digest", "embedding")
"""Stamp fields that must agree between an index and the model using it."""


def check_stamp(stamp: dict, expect: dict, where: Path | str = "index") -> None:
    """Raise ``EncoderMismatch`` when ``stamp`` and ``expect`` differ in an encoder field."""
    diff = [k for k in ENCODER_KEYS if k in expect and stamp.get(k) != expect.get(k)]
    if diff:
        lines = "; ".join(f"{k}: index has {stamp.get(k)!r}, model has {expect.get(k)!r}" for k in diff)
        raise EncoderMismatch(f"{where} was built with a different encoder ({lines}). Rebuild it with "
                              "`somelvlm index build` for this model, or use the model that built it.")
