"""A miniature data root in the real CM_MEMES format (drawn memes, English captions), a feature
cache of its own, and a synthetic feature table for recipe unit tests."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from mm_helpers import draw_meme, synthetic_table

N_MEMES = 32


@pytest.fixture(scope="session")
def mini_root(tmp_path_factory) -> Path:
    """``root/cm_memes/{sample_data.csv, LREC_COLING_meme/*.png}``: 32 memes, half offensive."""
    root = tmp_path_factory.mktemp("mini-data")
    folder = root / "cm_memes" / "LREC_COLING_meme"
    folder.mkdir(parents=True)
    rows = []
    for i in range(N_MEMES):
        off = i % 2 == 0
        name = f"meme_{i:03d}.png"
        draw_meme(i, off).save(folder / name)
        text = (f"you people are stupid idiots number {i}" if off else f"happy birthday friend have fun {i}")
        rows.append({"Name": name, "Text": text, "Ground truth reality": "x", "Level1": "off" if off else "non-off",
                     "Level2": "explicit" if off else "non-off", "Valence": "", "Sarcasm": "non-sarcastic",
                     "Joy": "", "Sadness": "", "Anger": "", "Fear": "", "Surprise": ""})
    with open(root / "cm_memes" / "sample_data.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return root


@pytest.fixture(scope="session")
def feature_cache(tmp_path_factory):
    """Points $SOMELVLM_CACHE at a fresh folder for the session (restored after)."""
    folder = tmp_path_factory.mktemp("feature-cache")
    old = os.environ.get("SOMELVLM_CACHE")
    os.environ["SOMELVLM_CACHE"] = str(folder)
    yield folder
    if old is None:
        os.environ.pop("SOMELVLM_CACHE", None)
    else:
        os.environ["SOMELVLM_CACHE"] = old


@pytest.fixture
def table():
    return synthetic_table()
