"""The cross-domain target check of benchmarks/lmm_rgcl.py (issue 16): RKC + 50 target memes against the
zero-shot LMM and the BEST of the frozen-feature floor's rows."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from lmm_rgcl import verdict  # noqa: E402


def _summary(**auroc):
    names = {"rkc50": "stage 1 + 2 + RKC, +50 target memes", "zero": "zero-shot LMM (generation)",
             "mlp": "RGCL frozen features (MLP)", "rkc": "RGCL frozen features + RKC",
             "floor50": "RGCL frozen features + RKC, +50 target memes"}
    return {names[k]: {"auroc": {"mean": v, "std": 0.0, "seeds": [v]}} for k, v in auroc.items()}


def test_met_only_when_five_points_over_zero_shot_and_every_floor_row():
    assert verdict(_summary(rkc50=60.0, zero=50.0, mlp=54.0, rkc=52.0, floor50=55.0))["met"] is True
    v = verdict(_summary(rkc50=60.0, zero=50.0, mlp=54.0, rkc=52.0, floor50=56.0))
    assert v["met"] is False and v["floor_row"] == "RGCL frozen features + RKC, +50 target memes"
    assert verdict(_summary(rkc50=60.0, zero=56.0, mlp=50.0, rkc=50.0, floor50=50.0))["met"] is False


def test_missing_rows_are_not_measurable():
    assert verdict(_summary(zero=50.0, mlp=54.0))["met"] is None
