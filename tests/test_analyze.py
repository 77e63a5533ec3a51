"""The main job with the shipped default model: the API, the CLI on a file with bad rows, resume after
SIGKILL, and eval on real test data."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from somelvlm.models.compact import ASSETS

pytestmark = pytest.mark.skipif(not (ASSETS / "some-mini" / "config.json").is_file(),
                                reason="the default model is not shipped in this checkout")


@pytest.fixture(scope="module")
def analyzer():
    from somelvlm.analysis import Analyzer

    return Analyzer()


def test_api_labels_every_task(analyzer):
    from somelvlm import analyze

    rows = analyze(["I am so happy today, best day ever!", "you are a disgusting idiot"], tasks=["emotion", "offensive"])
    assert rows[0]["emotion"]["label"] == "joy"
    assert rows[1]["offensive"]["label"] == "offensive"
    # every head is served, or withheld by default with its reason (no better than trivial baselines on val)
    assert set(analyzer.tasks) | set(analyzer.withheld) >= {"emotion", "irony", "hate", "offensive", "stance", "emoji",
                                                            "sentiment", "hate_offensive", "fake_news",
                                                            "claim_veracity", "humor", "sarcasm"}
    assert all(analyzer.withheld.values())


def test_levels_select_tasks_and_unknown_tasks_fail(analyzer):
    from somelvlm.analysis import Analyzer

    app = Analyzer(levels=["application"])
    assert app.tasks and all(t in ("emoji", "humor_rating", "offense_rating", "humor_controversy", "hate_target")
                             for t in app.tasks)
    with pytest.raises(KeyError, match="irony"):
        Analyzer(tasks=["ironyy"])
    # generation tasks have no head: they go to the generative model (loaded on first use)
    gen_only = Analyzer(tasks=["detoxify"])
    assert gen_only.choice.classify == [] and gen_only.choice.generate == ["detoxify"]


def test_cli_on_a_file_with_bad_rows(tmp_path):
    from somelvlm.cli import main

    rows = [{"id": "a", "text": "What a wonderful surprise, thank you all!"}, {"id": "b", "text": ""},
            {"id": "c", "text": "x" * 100_000}, {"id": "d", "image": "missing.png"}]
    src = tmp_path / "posts.jsonl"
    src.write_bytes(("".join(json.dumps(r) + "\n" for r in rows)).encode() + b'{"id": "e", "text": "\xff"}\n')
    out = tmp_path / "out.jsonl"
    main(["analyze", str(src), "--out", str(out), "--tasks", "emotion,irony", "--no-show"])
    records = {r["id"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert set(records["a"]) == {"id", "emotion", "irony"}
    assert {k: records[k]["error"]["reason"] for k in "bcde"} == {
        "b": "empty post", "c": "text too long", "d": "missing image", "e": "invalid UTF-8"}


def test_sigkill_part_way_through_analyze_then_rerun(tmp_path, data_root):
    texts = (data_root / "tweeteval/datasets/offensive/train_text.txt").read_text(encoding="utf-8").splitlines()[:3000]
    src = tmp_path / "tweets.jsonl"
    src.write_text("".join(json.dumps({"id": f"t{i}", "text": t}) + "\n" for i, t in enumerate(texts)), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "somelvlm.cli", "analyze", str(src), "--out", str(out), "--batch-size", "32", "--no-show"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not (out.exists() and out.stat().st_size > 20_000):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = len(out.read_text(encoding="utf-8").splitlines())
    assert 0 < before < len(texts), "killed part-way"
    subprocess.run(cmd, check=True, timeout=300, capture_output=True)
    ids = [json.loads(line)["id"] for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(ids) == len(texts) and set(ids) == {f"t{i}" for i in range(len(texts))}


def test_eval_writes_json_and_markdown(tmp_path, data_root):
    from somelvlm.cli import main

    out = tmp_path / "results"
    main(["eval", "--tasks", "irony,stance,humor_rating", "--limit", "200", "--data-root", str(data_root),
          "--out", str(out)])
    summary = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    assert summary["tasks"]["irony"]["macro_f1[irony]"] > 40
    assert "macro_f1[against,favor]" in summary["tasks"]["stance"]
    assert "pearson" in summary["tasks"]["humor_rating"]
    assert "| level | task |" in out.with_suffix(".md").read_text(encoding="utf-8")


def test_demo_table_shows_ratings_stance_and_generated_answers():
    """Every kind of prediction gets a visible answer cell (a merge once blanked ratings and stance)."""
    from somelvlm.views import _cell

    assert _cell({"value": 1.5}) == ("1.50 / 5", "")
    assert _cell({"targets": {"hillary": {"label": "against", "prob": 0.6}, "atheism": {"label": "none", "prob": 0.9}}})[0] == "hillary: against"
    assert _cell({"text": "a polite rewrite"}) == ("a polite rewrite", "")
    assert _cell({"label": "not_hate", "answer": "not hate"}) == ("not hate", "")
    assert _cell({"label": "joy", "prob": 0.5, "probs": {}})[0] == "joy"
