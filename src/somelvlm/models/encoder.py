"""The shared text encoder of the compact model: a BERT-style encoder from a package, a local
folder or a hub id, with mean pooling over real tokens.

Named encoders resolve offline to weights shipped inside pip packages; anything else is passed to
``transformers`` as a local path or hub id (never with ``trust_remote_code`` unless asked).
"""

from __future__ import annotations

from functools import cache

from somelvlm.features.packaged import PACKAGED, resolve_packaged

__all__ = ["PACKAGED", "encoder_digest", "load_encoder", "mean_pool", "resolve_encoder"]


def resolve_encoder(name: str) -> str:
    """A local folder for a packaged short name (``minilm``, ``mpnet``: ``features.packaged``);
    otherwise ``name`` unchanged (a local path or hub id)."""
    return resolve_packaged(name) or name


@cache
def encoder_digest(name: str) -> str:
    """``weight_files_digest`` of encoder ``name``'s folder: stamps what an adapter was trained on;
    ``"unknown"`` for hub ids not on disk."""
    from somelvlm.digests import weight_files_digest

    return weight_files_digest(resolve_encoder(name))


def load_encoder(name: str, trust_remote_code: bool = False):
    """``(tokenizer, model)`` for encoder ``name``."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging

    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    path = resolve_encoder(name)
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    model = AutoModel.from_pretrained(path, trust_remote_code=trust_remote_code)
    return tokenizer, model


def mean_pool(hidden, mask):
    """Mean of token states over real tokens: ``hidden`` (batch, seq, dim), ``mask`` (batch, seq)
    -> (batch, dim)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)  # (batch, seq, 1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1e-6)
