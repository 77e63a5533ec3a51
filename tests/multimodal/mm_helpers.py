"""Helpers of the multimodal tests: drawn memes and synthetic feature tables."""

from __future__ import annotations

import numpy as np


def draw_meme(i: int, offensive: bool):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (96 + i % 5 * 7, 80), (200, 40, 40) if offensive else (40, 120, 220))
    draw = ImageDraw.Draw(img)
    draw.rectangle((10 + i % 7, 10, 50, 50 + i % 9), fill=(0, 0, 0) if offensive else (255, 255, 255))
    return img


def synthetic_table(n: int = 120, classes: int = 2, seed: int = 0, image_dim: int = 1280, text_dim: int = 384):
    """An ``MMTable`` of random features with a planted class signal in both modalities."""
    from somelvlm.features.mm_table import MMTable

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
