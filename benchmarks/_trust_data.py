"""Shared by fit_trust.py, calibration.py and transfer.py: the heads' items from ../shared/data and a
disk cache of the model's embeddings, so each post is encoded once across the three scripts.

The cache is keyed by the model folder's weights digest (``out/trust-cache/<digest>-{emb.npy,texts.json}``),
so a retrained model never reads another model's embeddings.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CACHE = REPO / "out" / "trust-cache"


def load_head_items(data_root: Path, tasks: list[str]):
    """``task -> split -> [Item(text, target, group)]`` from the same adapters the heads were trained on."""
    try:  # the module may live in data/ (head_items) or train/ (head_data) depending on the tree
        from somelvlm.data.head_items import load_items
    except ImportError:
        from somelvlm.train.head_data import load_items
    return load_items(Path(data_root), tasks)


def sample(items: list, cap: int | None, seed: int = 0) -> list:
    """At most ``cap`` items, a fixed random subset (the same for every run with this seed)."""
    if cap is None or len(items) <= cap:
        return list(items)
    return random.Random(seed).sample(list(items), cap)


class EmbeddingStore:
    """The model's pooled embeddings of texts, computed once and kept on disk (float32, (n, dim))."""

    def __init__(self, model, digest: str, root: Path = CACHE, chunk: int = 1000) -> None:
        self.model, self.chunk = model, chunk
        root.mkdir(parents=True, exist_ok=True)
        self.emb_path, self.text_path = root / f"{digest}-emb.npy", root / f"{digest}-texts.json"
        self.texts: list[str] = []
        self.emb = np.zeros((0, model.net.encoder.config.hidden_size), dtype=np.float32)
        if self.emb_path.is_file() and self.text_path.is_file():
            texts = json.loads(self.text_path.read_text(encoding="utf-8"))
            emb = np.load(self.emb_path)
            if len(texts) == len(emb):
                self.texts, self.emb = texts, emb
        self.index = {t: i for i, t in enumerate(self.texts)}

    def __call__(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) embeddings; the missing ones are computed in chunks and saved after each."""
        missing = list(dict.fromkeys(t for t in texts if t not in self.index))
        start = time.perf_counter()
        for i in range(0, len(missing), self.chunk):
            part = missing[i:i + self.chunk]
            self.emb = np.concatenate([self.emb, self.model.embed(part)])
            for t in part:
                self.index[t] = len(self.texts)
                self.texts.append(t)
            self._save()
            print(f"  embedded {min(i + self.chunk, len(missing))}/{len(missing)} new posts "
                  f"({time.perf_counter() - start:.0f} s)", file=sys.stderr, flush=True)
        return self.emb[[self.index[t] for t in texts]] if texts else self.emb[:0]

    def _save(self) -> None:
        tmp = self.emb_path.with_suffix(".tmp.npy")
        np.save(tmp, self.emb)
        tmp.replace(self.emb_path)
        tmp = self.text_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.texts), encoding="utf-8")
        tmp.replace(self.text_path)
