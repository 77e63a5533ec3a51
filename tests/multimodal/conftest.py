"""A miniature data root in the real CM_MEMES format (drawn memes, English captions), a feature
cache of its own, and a synthetic feature table for recipe unit tests."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

N_MEMES = 48


def draw_meme(i: int, offensive: bool):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (96 + i % 5 * 7, 80), (200, 40, 40) if offensive else (40, 120, 220))
    draw = ImageDraw.Draw(img)
    draw.rectangle((10 + i % 7, 10, 50, 50 + i % 9), fill=(0, 0, 0) if offensive else (255, 255, 255))
    return img


@pytest.fixture(scope="session")
def mini_root(tmp_path_factory) -> Path:
    """``root/cm_memes/{sample_data.csv, LREC_COLING_meme/*.png}``: 48 memes, half offensive."""
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


def synthetic_table(n: int = 120, classes: int = 2, seed: int = 0, image_dim: int = 1280, text_dim: int = 384):
    """An ``MMTable`` of random features with a planted class signal in both modalities."""
    from somelvlm.train.mm_data import MMTable

    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    centres_i = rng.normal(size=(classes, image_dim)).astype(np.float32)
    centres_t = rng.normal(size=(classes, text_dim)).astype(np.float32)
    image = (centres_i[y] + 2.0 * rng.normal(size=(n, image_dim))).astype(np.float32)
    text = (centres_t[y] + 2.0 * rng.normal(size=(n, text_dim))).astype(np.float32)
    split = np.array(["train"] * (n - 40) + ["val"] * 20 + ["test"] * 20)
    has_image = np.ones(n, bool)
    has_image[::17] = False
    image[~has_image] = 0
    labels = ("not_offensive", "offensive") if classes == 2 else tuple(f"c{i}" for i in range(classes))
    return MMTable(dataset="cm_memes", task="offensive_meme", labels=labels, ids=[f"p{i}" for i in range(n)],
                   split=split, y=y.astype(np.int64), image=image, has_image=has_image, text=text,
                   has_text=np.ones(n, bool), texts=[f"post {i}" for i in range(n)], group=["g"] * n,
                   encoders={"image": "efficientnet_lite0|test", "text": "minilm|test"})


@pytest.fixture
def table():
    return synthetic_table()
