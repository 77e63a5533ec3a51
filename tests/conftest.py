"""Shared fixtures: the real data root (skipped with one line where it is absent)."""

from __future__ import annotations

import os
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
