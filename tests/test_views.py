"""The --show table: out-of-domain answers read as such, in-domain ones as before, no domain data: no column text."""

import json

from rich.console import Console

from somelvlm.views import OUT_OF_DOMAIN, _cell, _domain, analysis_tables


def test_out_of_domain_answer_is_shown_as_such_with_the_label_dimmed():
    pred = {"label": "fake", "prob": 0.95, "probs": {"real": 0.05, "fake": 0.95}, "in_domain": False, "domain_score": 0.41}
    answer, confidence = _cell(pred)
    assert answer.startswith(f"[yellow]{OUT_OF_DOMAIN}[/yellow]") and "[dim](fake)[/dim]" in answer
    assert confidence.startswith("[dim]") and "0.95" in confidence
    assert _domain(pred) == "[yellow]out[/yellow] 0.41"
    inside = dict(pred, in_domain=True, domain_score=0.8)
    assert _cell(inside)[0] == "fake" and _domain(inside) == "in 0.80"
    assert _domain({"label": "joy", "prob": 0.5, "in_domain": None, "domain_score": None}) == ""
    stance = {"targets": {"hillary": {"label": "against", "prob": 0.6}}, "in_domain": False, "domain_score": 0.3}
    assert OUT_OF_DOMAIN in _cell(stance)[0] and "hillary: against" in _cell(stance)[0]
    assert OUT_OF_DOMAIN in _cell({"value": 2.5, "in_domain": False, "domain_score": 0.2})[0]


def test_table_renders_out_of_domain_rows(tmp_path):
    record = {"id": "t1", "fake_news": {"label": "fake", "prob": 0.9, "probs": {"real": 0.1, "fake": 0.9},
                                        "in_domain": False, "domain_score": 0.3},
              "emotion": {"label": "joy", "prob": 0.8, "probs": {}, "in_domain": True, "domain_score": 0.9}}
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    console = Console(record=True, width=140)
    for table in analysis_tables(path, ["fake_news", "emotion"]):
        console.print(table)
    text = console.export_text()
    fake_line = next(line for line in text.splitlines() if "fake_news" in line)
    assert "out of domain (fake)" in fake_line and "out 0.30" in fake_line
    joy_line = next(line for line in text.splitlines() if "emotion" in line)
    assert "joy" in joy_line and "in 0.90" in joy_line and OUT_OF_DOMAIN not in joy_line
