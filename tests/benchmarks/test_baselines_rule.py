"""benchmarks/baselines.py: a head is served only when it beats both baselines on val by more than the val
posts' noise (paired bootstrap interval above 0); test never decides."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def _row(head, lo, macro=None, test=90.0):
    paired = {"majority": {"diff": head - 30, "ci95": [head - 40, head - 20]},
              "stratified": {"diff": head - 40, "ci95": [lo, head - 30]}}
    row = {"model": "some-mini", "metric": "macro_f1", "lower_is_better": False,
           "val": {"head": head, "majority": 30.0, "stratified": 40.0, "paired": paired},
           "test": {"head": test, "majority": 30.0, "stratified": 40.0}}
    if macro is not None:
        row["val"]["macro_f1"] = macro
    return row


def test_withheld_unless_clearly_above_both_on_val():
    import baselines

    rows = {"clear": _row(60.0, lo=5.0), "noisy": _row(43.0, lo=-2.0, test=95.0), "below": _row(35.0, lo=-12.0),
            # a one-class F1 within noise, rescued by macro-F1 over all classes clearly above both
            "rescued": _row(43.0, lo=-2.0, macro={"head": 70.0, "majority": 30.0, "stratified": 50.0, "paired": {
                "majority": {"diff": 40.0, "ci95": [30.0, 50.0]}, "stratified": {"diff": 20.0, "ci95": [10.0, 30.0]}}})}
    baselines.decide(rows)
    assert {t: r["withheld"] for t, r in rows.items()} == {"clear": False, "noisy": True, "below": True, "rescued": False}
    assert rows["noisy"]["beats_val"] and "interval of the difference includes 0" in rows["noisy"]["reason"]
    assert "does not beat" in rows["below"]["reason"]
    assert baselines.val_verdict(rows["noisy"]).startswith("**within noise**: vs stratified +3.00 [-2.00")


def test_intervals_on_real_heads_shapes():
    import baselines
    from somelvlm.taxonomy.heads import head_spec

    spec = head_spec("emotion")
    rng = np.random.default_rng(0)
    train = [(int(t), -1) for t in rng.integers(0, len(spec.labels), 400)]
    items = [(int(t), -1) for t in rng.integers(0, len(spec.labels), 300)]
    perfect = np.eye(len(spec.labels))[[t for t, _ in items]]
    ci = baselines.intervals("emotion", spec, train, items, perfect)
    assert set(ci) == {"majority", "stratified"} and baselines.clearly(ci, lower_is_better=False)
    rating = head_spec("humor_rating")
    items = [(float(t), -1) for t in rng.uniform(0, 4, 200)]
    ci = baselines.intervals("humor_rating", rating, items, items, np.array([t for t, _ in items]))
    assert set(ci) == {"majority"} and baselines.clearly(ci, lower_is_better=True)
