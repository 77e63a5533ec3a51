"""Retrieval memory: a FAISS index of post embeddings with Parquet metadata and an encoder stamp
(``MemoryIndex``), and the retrieval-augmented kNN classifier over it (``rkc``). FAISS comes from
the ``retrieval`` extra and is imported only when an index is built, loaded or searched."""

from .index import EncoderMismatch, MemoryIndex
from .rkc import rkc_predict, rkc_scores

__all__ = ["EncoderMismatch", "MemoryIndex", "rkc_predict", "rkc_scores"]
