"""benchmarks/lmm_rgcl_curves.py reads the runs folder lmm_rgcl.py leaves and writes the figure and table."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import lmm_rgcl_curves  # noqa: E402


def _log(path: Path, rows: list[dict]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_curves_from_a_runs_folder(tmp_path):
    runs = tmp_path / "harm-c"
    for seed in (0, 1):
        _log(runs / f"lmm-seed{seed}" / "stage1", [{"step": 10, "lm": 0.3, "bce": 0.7}, {"step": 20, "lm": 0.25, "bce": 0.4}])
        _log(runs / f"lmm-seed{seed}" / "stage2", [{"epoch": e, "train_rgcl": 2.7 - e / 10, "train_ce": 0.3,
                                                    "train_pos_sim": 0.6, "train_neg_sim": 0.5, "val_macro_f1": 60.0}
                                                   for e in (1, 2, 3)])
        _log(runs / f"sft-seed{seed}" / "stage1", [{"step": 10, "lm": 0.3}])
    out = tmp_path / "curves"
    lmm_rgcl_curves.main(["--source", f"harm-c={runs}", "--out", str(out)])
    assert out.with_suffix(".png").stat().st_size > 0
    table = out.with_suffix(".md").read_text()
    assert "| harm-c | 1 | 0.300 → 0.250 | 0.700 → 0.400 | 0.300 → 0.300 | 2.600 → 2.400 |" in table
    assert set(json.loads(out.with_suffix(".json").read_text())["harm-c"]) == {"0", "1"}
