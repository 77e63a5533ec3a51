"""Calibrated probabilities for the compact model's classification heads: temperature scaling.

A head's logits ``z`` (n, labels) become ``softmax(z / T)``: one temperature ``T > 0`` per head, fit
on the VALIDATION split by minimising the negative log-likelihood (Guo et al., "On Calibration of
Modern Neural Networks", ICML 2017). The argmax, hence every label and accuracy-type metric, stays
the same; only the confidence changes. Per-target heads (stance) get one temperature per target.
Regression heads are left alone.

On disk, in the model folder::

    calibration.json   {"format": "somelvlm-calibration-v1", "method": "temperature",
                        "temperatures": {task: T, "stance": {target: T, ...}}, "fit": {...}}

A folder without the file loads with temperature 1 everywhere (the raw softmax).

>>> import numpy as np
>>> z = np.array([[4.0, 0.0], [3.0, 0.0], [0.0, 2.0], [2.5, 0.0]])
>>> y = np.array([0, 1, 1, 0])
>>> t = fit_temperature(z, y)
>>> bool(nll(z / t, y) <= nll(z, y))
True
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FILE = "calibration.json"
FORMAT = "somelvlm-calibration-v1"
ECE_BINS = 15


def softmax(z: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, numerically stable."""
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def nll(logits: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of labels ``y`` (n,) under ``softmax(logits)`` (n, labels)."""
    z = logits - logits.max(axis=-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    return float(-log_p[np.arange(len(y)), y.astype(int)].mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray, lo: float = 0.05, hi: float = 20.0) -> float:
    """The temperature in ``[lo, hi]`` minimising ``nll(logits / T, y)``.

    ``logits`` (n, labels), ``y`` (n,) label indices. The NLL is smooth and unimodal in ``log T`` for
    practical purposes; a coarse grid over ``log T`` then a golden-section search around its best point
    finds the minimum to about 1e-4 in ``log T`` without any optimiser dependency.
    """
    if len(y) == 0:
        raise ValueError("fit_temperature needs at least one labelled item")
    logits = np.asarray(logits, dtype=np.float64)
    grid = np.linspace(math.log(lo), math.log(hi), 61)
    losses = [nll(logits / math.exp(g), y) for g in grid]
    k = int(np.argmin(losses))
    a, b = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    ratio = (math.sqrt(5) - 1) / 2
    for _ in range(40):
        c, d = b - ratio * (b - a), a + ratio * (b - a)
        if nll(logits / math.exp(c), y) <= nll(logits / math.exp(d), y):
            b = d
        else:
            a = c
    best = (a + b) / 2
    # never worse than T = 1 on the data it was fit on
    return float(math.exp(best)) if nll(logits / math.exp(best), y) <= nll(logits, y) else 1.0


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE of the top label: ``sum_b |B_b| / n * |acc(B_b) - conf(B_b)|`` over ``bins`` equal-width
    confidence bins (Naeini et al. 2015; Guo et al. 2017). ``probs`` (n, labels), ``y`` (n,).

    >>> round(expected_calibration_error(np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([0, 1])), 3)
    0.35
    """
    probs = np.asarray(probs, dtype=np.float64)
    if len(y) == 0:
        return float("nan")
    conf = probs.max(axis=-1)
    correct = (probs.argmax(axis=-1) == np.asarray(y).astype(int)).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, bins - 1)  # bin b holds (e_b, e_b+1]
    total = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            total += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(total)


@dataclass
class Calibration:
    """Per-head temperatures; a head without one (or a regression head) keeps ``T = 1``."""

    temperatures: dict[str, float | dict[str, float]] = field(default_factory=dict)
    """``task -> T``, or for per-target heads ``task -> {target: T}``."""
    fit: dict = field(default_factory=dict)
    """How and on what the temperatures were fit (split, items per head, NLL before / after)."""
    model_digest: str = ""
    """The ``model.safetensors`` digest the temperatures were fit for (``applicability.model_digest``)."""

    def scale(self, task: str, logits: np.ndarray, groups: tuple[str, ...] = ()) -> np.ndarray:
        """``logits`` (n, labels) or (n, groups, labels) divided by the head's temperature(s)."""
        t = self.temperatures.get(task)
        if t is None:
            return logits
        if isinstance(t, dict):
            ts = np.array([float(t.get(g, 1.0)) for g in groups], dtype=logits.dtype)  # (groups,)
            return logits / ts[None, :, None]
        return logits / float(t)

    def save(self, folder: Path) -> Path:
        """Write ``calibration.json`` into ``folder`` atomically; returns its path."""
        from somelvlm.atomic import atomic_write_text

        return atomic_write_text(Path(folder) / FILE, json.dumps(
            {"format": FORMAT, "method": "temperature", "model_digest": self.model_digest,
             "temperatures": self.temperatures, "fit": self.fit}, indent=1) + "\n")

    @classmethod
    def load(cls, folder: Path, *, check_digest: bool = True) -> Calibration | None:
        """The folder's calibration, or None when it has no ``calibration.json``; a file fit for other
        weights than the folder's ``model.safetensors`` is an error saying how to refit it."""
        from somelvlm.models.applicability import REDO, model_digest

        path = Path(folder) / FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: not valid JSON ({err}); {REDO}") from None
        if data.get("format") != FORMAT:
            raise ValueError(f"{path}: format {data.get('format')!r}, expected {FORMAT!r}; {REDO}")
        if check_digest and data.get("model_digest") != model_digest(folder):
            raise ValueError(f"{path} was fit on other weights than {Path(folder) / 'model.safetensors'} "
                             f"(digest {data.get('model_digest')} != {model_digest(folder)}); {REDO}")
        temps = data.get("temperatures", {})
        for task, t in temps.items():
            values = t.values() if isinstance(t, dict) else [t]
            if not all(isinstance(v, (int, float)) and v > 0 for v in values):
                raise ValueError(f"{path}: temperatures.{task} must be positive numbers, got {t!r}; {REDO}")
        return cls(temps, data.get("fit", {}), data.get("model_digest", ""))
