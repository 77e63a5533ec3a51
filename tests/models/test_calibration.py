"""Temperature scaling and ECE: checked against hand computations and on data it must improve."""

import json

import numpy as np
import pytest

from somelvlm.models.calibration import Calibration, expected_calibration_error, fit_temperature, nll, softmax


def overconfident(n=2000, seed=0):
    """Logits of a 3-class model that is right 70% of the time but says ~99%."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    pred = np.where(rng.random(n) < 0.7, y, (y + rng.integers(1, 3, n)) % 3)
    z = rng.normal(0, 0.5, (n, 3))
    z[np.arange(n), pred] += 6.0
    return z, y


def test_temperature_fit_lowers_nll_and_ece_of_an_overconfident_model():
    z, y = overconfident()
    t = fit_temperature(z, y)
    assert t > 1.5  # softened
    assert nll(z / t, y) < nll(z, y) - 0.3
    assert expected_calibration_error(softmax(z / t), y) < 0.05 < expected_calibration_error(softmax(z), y)
    # a temperature fit on one half also helps on the other half (no fitting to noise)
    t_half = fit_temperature(z[:1000], y[:1000])
    assert nll(z[1000:] / t_half, y[1000:]) < nll(z[1000:], y[1000:])
    # the optimum: nearby temperatures are not better
    assert nll(z / t, y) <= min(nll(z / (t * 1.05), y), nll(z / (t / 1.05), y)) + 1e-9


def test_ece_by_hand():
    probs = np.array([[0.95, 0.05], [0.95, 0.05], [0.55, 0.45], [0.3, 0.7]])
    y = np.array([0, 1, 0, 1])
    # bins: 0.95 (2 items, acc 0.5) -> 0.5 * 0.45; 0.55 (acc 1) -> 0.25 * 0.45; 0.7 (acc 1) -> 0.25 * 0.3
    assert expected_calibration_error(probs, y) == pytest.approx(0.5 * 0.45 + 0.25 * 0.45 + 0.25 * 0.3)


def test_scale_per_target_and_file_round_trip(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    from somelvlm.models.applicability import model_digest

    cal = Calibration({"emotion": 2.0, "stance": {"abortion": 4.0, "atheism": 1.0}}, {"split": "val"},
                      model_digest(tmp_path))
    cal.save(tmp_path)
    back = Calibration.load(tmp_path)
    z = np.ones((2, 2, 3))
    scaled = back.scale("stance", z, ("abortion", "atheism"))
    assert np.allclose(scaled[:, 0], 0.25) and np.allclose(scaled[:, 1], 1.0)
    assert np.allclose(back.scale("emotion", np.ones((1, 4))), 0.5)
    assert back.scale("irony", z) is z  # no temperature: unchanged
    assert Calibration.load(tmp_path / "nowhere") is None
    (tmp_path / "model.safetensors").write_bytes(b"retrained weights")
    with pytest.raises(ValueError, match="fit_trust.py"):
        Calibration.load(tmp_path)
    data = json.loads((tmp_path / "calibration.json").read_text())
    data["model_digest"] = model_digest(tmp_path)
    data["temperatures"]["emotion"] = -1
    (tmp_path / "calibration.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="temperatures.emotion"):
        Calibration.load(tmp_path)
