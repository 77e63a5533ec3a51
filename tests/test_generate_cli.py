"""``somelvlm generate``, ``somelvlm train instruct`` and generation tasks in ``analyze``, run
in-process on a tiny LVLM folder (random Llama + LoRA) and the shipped compact model."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("peft")
from gen_helpers import make_tiny_lm  # noqa: E402

from somelvlm.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def tiny_lvlm(tmp_path_factory):
    import torch
    from peft import LoraConfig, get_peft_model

    from somelvlm.models.lvlm import LVLM, base_record, load_lm, save_lvlm

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("gen-cli")
    lm, tok = load_lm(make_tiny_lm(root / "lm"))
    base = base_record(lm, str(root / "lm"))
    lm = get_peft_model(lm, LoraConfig(r=2, target_modules=["q_proj"]))
    return save_lvlm(root / "tiny-lvlm", LVLM(lm), tok, {"name": "tiny-lvlm", "base": base})


def test_generate_command_prints_jsonl(tiny_lvlm, capsys):
    main(["generate", "hate", "--text", "you idiot", "--text", "nice day", "--model", str(tiny_lvlm),
          "--max-new-tokens", "3", "--json"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in rows] == ["0", "1"] and all("label" in r for r in rows)


def test_generate_json_keeps_the_input_post_and_reads_stdin(tiny_lvlm, capsys, monkeypatch, tmp_path):
    import io
    import sys

    main(["generate", "detoxify", "--text", "shut up, you idiot", "--model", str(tiny_lvlm), "--max-new-tokens", "3",
          "--json"])
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["text"] == "shut up, you idiot" and isinstance(row["answer"], str)
    lines = '{"id": "a", "text": "you fool"}\n{"id": "b", "text": "so dumb"}\n'
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(lines.encode())))
    main(["generate", "hate", "--input", "-", "--model", str(tiny_lvlm), "--max-new-tokens", "3", "--json"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["id"], r["text"]) for r in rows] == [("a", "you fool"), ("b", "so dumb")]
    assert all("label" in r and "answer" in r for r in rows)
    monkeypatch.chdir(tmp_path)  # an image path read from stdin is relative to the working folder
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'{"text": "x", "image": "gone.png"}\n')))
    with pytest.raises(SystemExit) as e:
        main(["generate", "hate", "--input", "-", "--model", str(tiny_lvlm)])
    assert e.value.code == 2 and str(tmp_path / "gone.png") in capsys.readouterr().err


def test_generate_command_errors_are_one_line(tiny_lvlm, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["generate", "detoxify", "--model", str(tiny_lvlm)])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        main(["generate", "detoxifyy", "--text", "x", "--model", str(tiny_lvlm)])
    bad = tmp_path / "posts.jsonl"
    bad.write_text('{"text": "ok"}\nnot json\n')  # a bad line is an error record; the good row goes on
    main(["generate", "detoxify", "--input", str(bad), "--model", str(tiny_lvlm), "--max-new-tokens", "2", "--json"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows[0]["text"] == "ok" and "answer" in rows[0] and rows[1]["line"] == 2 and "error" in rows[1]


def test_analyze_runs_generation_tasks_next_to_heads(tiny_lvlm, tmp_path):
    from somelvlm.models.compact import ASSETS

    if not (ASSETS / "some-mini" / "config.json").is_file():
        pytest.skip("the compact default model is not shipped in this checkout")
    posts = tmp_path / "posts.jsonl"
    posts.write_text('{"id": "a", "text": "you are a stupid idiot"}\n{"id": "b", "text": "lovely sunny day"}\n')
    out = tmp_path / "out.jsonl"
    main(["analyze", str(posts), "--out", str(out), "--tasks", "offensive,detoxify,hashtags",
          "--generator", str(tiny_lvlm), "--no-show"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["a", "b"]
    for r in rows:
        assert "prob" in r["offensive"] and "text" in r["detoxify"] and "text" in r["hashtags"]


def test_train_instruct_command(tmp_path):
    data = tmp_path / "somedata"
    data.mkdir()
    rec = {"id": "x/1", "task": "detoxify",
           "conversations": [{"from": "human", "value": "Rewrite: you idiot"}, {"from": "gpt", "value": "you."}]}
    (data / "train.jsonl").write_text(json.dumps(rec) + "\n")
    lm = make_tiny_lm(tmp_path / "lm")
    cfg = tmp_path / "s1.yaml"
    cfg.write_text(f"# somelvlm train instruct --stage 1 --config s1.yaml\nstage: 1\ndata: {data}\nout: {tmp_path / 'o'}\n"
                   f"base: {lm}\nmax_len: 48\nmax_answer_tokens: 8\nbatch_size: 1\nlora_r: 2\nnum_threads: 1\n")
    main(["train", "instruct", "--stage", "1", "--config", str(cfg)])
    assert json.loads((tmp_path / "o" / "model" / "config.json").read_text())["backend"] == "lvlm"
    with pytest.raises(SystemExit):
        main(["train", "instruct", "--stage", "2", "--config", str(cfg)])
