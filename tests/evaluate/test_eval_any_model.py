"""``somelvlm eval`` scores any registered model kind through the Pipeline: the compact classifier
on its heads, the generative some-lvlm by generation (Acc, Acc*, valid share); a folder with no
known backend is one line naming the known backends."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("peft")


def test_eval_some_lvlm_by_generation(data_root, tmp_path):
    from somelvlm.cli import main

    try:
        from somelvlm.models import load_generator

        load_generator("some-lvlm")
    except (ImportError, FileNotFoundError, ValueError) as err:
        pytest.skip(f"some-lvlm cannot load here: {err}")
    out = tmp_path / "eval"
    main(["eval", "--model", "some-lvlm", "--tasks", "irony", "--limit", "8", "--data-root", str(data_root),
          "--out", str(out)])
    summary = json.loads(out.with_suffix(".json").read_text())
    row = summary["tasks"]["irony"]
    assert row["n"] == 8 and row["by"] == "generation"
    assert {"accuracy", "acc_star", "valid_share", "f1_of[irony]"} <= set(row)
    assert summary["model"] == "some-lvlm"


def test_unknown_backend_is_one_line(tmp_path, capsys):
    from somelvlm.cli import main

    folder = tmp_path / "weird"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"backend": "nope", "x": 1}))
    with pytest.raises(SystemExit) as e:
        main(["eval", "--model", str(folder), "--data-root", str(tmp_path)])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "nope" in err and "compact" in err and "lvlm" in err and "keys: backend, x" in err
