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
    results = json.loads(out.with_suffix(".json").read_text())
    row = results["models"]["some-lvlm"]["tasks"]["irony"]
    assert row["n"] == 8 and row["by"] == "generation"
    assert {"accuracy", "acc_star", "valid_share", "macro_f1[irony]"} <= set(row)
    assert "| some-lvlm |" in out.with_suffix(".md").read_text()
    assert out.with_suffix(".html").is_file() and (tmp_path / "eval-levels.png").is_file()


def test_eval_report_compares_models_per_level(data_root, tmp_path):
    """Two models side by side: the compact heads and a classifier served over HTTP would both fit;
    here the shipped compact model twice under different runtimes is enough to check the report."""
    from somelvlm.evaluate.report import EvalConfig, level_scores, run_eval, to_markdown, write_report

    cfg = EvalConfig(model=["some-mini"], tasks=["irony", "emoji"], limit=40)
    results = run_eval(cfg, data_root, progress=False)
    summary = results["models"]["some-mini"]
    assert summary["tasks"]["irony"]["n"] == 40 and summary["levels"]["knowledge_comprehension"] is not None
    assert summary["levels"]["application"] == level_scores({"emoji": summary["tasks"]["emoji"]})["application"]
    md = to_markdown(results)
    assert "| Knowledge & Comprehension | irony |" in md or "irony" in md
    paths = write_report(results, tmp_path / "r")
    assert all(p.is_file() and p.stat().st_size > 0 for p in paths)


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


class _Flaky:
    """A generator that fails on any prompt containing 'boom' (a real failure, not a mock of ours)."""

    name = "flaky"
    reads_images = False

    def generate(self, prompts, images=None, config=None):
        if any("boom" in p for p in prompts):
            raise RuntimeError("cannot answer")
        return ["not hate" for _ in prompts]


def test_an_item_the_model_fails_on_is_an_error_record_and_eval_goes_on():
    from somelvlm.evaluate.harness import _answers
    from somelvlm.pipeline import Pipeline
    from somelvlm.posts import Post

    pipe = Pipeline(_Flaky(), ["hate"], batch_size=4)
    posts = [Post(id=str(i), text="boom" if i == 2 else "fine") for i in range(6)]
    answers, errors = _answers(pipe, "hate", posts, 0)
    assert answers == ["not hate", "not hate", "", "not hate", "not hate", "not hate"]
    assert errors == [{"id": "2", "error": {"reason": "model error", "message": "RuntimeError: cannot answer"}}]
