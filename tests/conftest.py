"""Shared fixtures: the real data root (skipped with one line where it is absent), and a tiny
random BERT encoder saved to a folder (real MiniLM tokenizer files, tiny dims)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def find_data_root() -> Path | None:
    """``$SOMELVLM_DATA``, else ``../shared/data`` beside the checkout, else None."""
    env = os.environ.get("SOMELVLM_DATA")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "data")
    for path in candidates:
        if path.is_dir() and (path / "README.md").is_file():
            return path
    return None


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = find_data_root()
    if root is None:
        pytest.skip("real data not found: set SOMELVLM_DATA or put shared/data beside the checkout")
    return root


def make_tiny_encoder(folder: Path, seed: int = 0) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    from somelvlm.models.encoder import resolve_encoder

    torch.manual_seed(seed)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    source = Path(resolve_encoder("minilm"))
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (source / name).is_file():
            shutil.copy(source / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory) -> Path:
    pytest.importorskip("peft")
    return make_tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory) -> Path:
    """Exported ONNX encoders go to a per-session folder, not the user's ~/.cache (tiny test models get
    a new weights digest every run); the shipped model is exported once per session and reused."""
    folder = tmp_path_factory.mktemp("somelvlm-cache")
    before = os.environ.get("SOMELVLM_CACHE")
    os.environ["SOMELVLM_CACHE"] = str(folder)
    yield folder / "onnx"
    if before is None:
        os.environ.pop("SOMELVLM_CACHE", None)
    else:
        os.environ["SOMELVLM_CACHE"] = before
