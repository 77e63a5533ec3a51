"""benchmarks/compare_heads.py: the model with the higher val mean over classification heads wins; test never decides."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))


def _row(val, test, chosen="shipped", lower=False):
    return {"lower_is_better": lower, "chosen": chosen, "shipped": {"val": val, "test": test},
            "refit": {"val": val + 1, "test": test + 1}}


def test_val_decides_and_test_is_only_reported(tmp_path):
    import compare_heads

    a = {"emotion": _row(70, 80), "hate": _row(75, 45), "humor_rating": _row(0.6, 0.5, lower=True)}
    # b: worse on test everywhere, better on val mean (its kept hate refit scores val + 1 = 78)
    b = {"emotion": _row(69, 70), "hate": _row(77, 30, chosen="refit"), "humor_rating": _row(0.5, 0.9, lower=True)}
    result, lines = compare_heads.compare(a, b, ("old", "new"))
    assert result["chosen"] == "new"
    assert result["old"]["val"]["classification_mean"] == 72.5 and result["new"]["val"]["classification_mean"] == 73.5
    assert result["new"]["test"]["tweeteval_five"] == 50.5  # the kept refit's test, reported
    assert sorted(result["better_on_val"]) == ["hate", "humor_rating"]  # RMSE: lower is better
    # a tie on val keeps the model shipped now
    result, _ = compare_heads.compare(a, a, ("old", "new"))
    assert result["chosen"] == "old"
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    pa.write_text(json.dumps(a)), pb.write_text(json.dumps(b))
    compare_heads.main([str(pa), str(pb), "--names", "old", "new", "--out", str(tmp_path / "cmp")])
    assert "**new**" in (tmp_path / "cmp.md").read_text()
    assert json.loads((tmp_path / "cmp.json").read_text())["chosen"] == "new"
