"""LMM-RGCL on a Hugging Face VLM: a tiny random LLaVA (and Qwen2-VL) built from configs, a dozen
synthetic memes (four with drawn images, one unreadable): stage 1 interrupted and resumed, stage 2 on
the frozen VLM, the model folder through ``load_model`` and the Pipeline (head, label words,
generation, RKC), ``index add`` changing an RKC answer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("peft")
pytest.importorskip("faiss")
from gen_helpers import write_memes
from vlm_helpers import make_llava, make_qwen2_vl

from somelvlm.train.lmm_rgcl import LMMRGCLConfig
from somelvlm.train.lmm_rgcl_run import train


def _memes(root: Path) -> Path:
    return write_memes(root, three_labels=False, bad_rows=False)


COMMON = {"task": "harmful_meme", "max_len": 96, "batch_size": 4, "lr": 5e-3, "head_lr": 5e-3,
          "warmup_steps": 1, "lora_r": 4, "lora_alpha": 8, "lora_layers": None, "head_width": 16,
          "checkpoint_every": 2, "log_every": 1, "num_threads": 1, "max_train": None, "epochs": 3, "l2": 0.5,
          "stage2_epochs": 3, "stage2_batch_size": 4, "k": 4, "quantize": "none",
          "lora_targets": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("lmm-rgcl-vlm")
    vlm = make_llava(root / "llava")
    memes = _memes(root / "data")
    common = {**COMMON, "domain": str(memes), "init": str(vlm)}
    logs: list[str] = []
    run = root / "run"
    train(LMMRGCLConfig(stage=1, out=str(run), max_steps=2, **common), log=logs.append)  # "interrupted" at 2
    train(LMMRGCLConfig(stage=1, out=str(run), max_steps=4, **common), log=logs.append)
    train(LMMRGCLConfig(stage=2, out=str(run), **common), log=logs.append)
    return {"root": root, "s1": run / "stage1", "s2": run / "stage2", "logs": logs, "vlm": vlm}


def test_stage1_on_a_vlm_resumes_logs_finite_terms_and_skips_the_bad_image(trained):
    s1 = trained["s1"]
    rows = [json.loads(line) for line in (s1 / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert any("resumed from" in m and "step 2" in m for m in trained["logs"])
    assert any("on llava" in m and "4 with images" in m for m in trained["logs"])
    for r in rows:
        assert all(math.isfinite(r[k]) for k in ("loss", "lm", "bce", "rgcl"))
    report = json.loads((s1 / "report.json").read_text())
    assert report["trained_on"] == 12 and report["skipped_by_reason"] == {"unreadable image": 1}
    config = json.loads((s1 / "model" / "config.json").read_text())
    assert config["backend"] == "lmm_rgcl" and config["init"]["kind"] == "hf_vlm"
    assert config["init"]["name"] == str(trained["vlm"]) and config["init"]["digest"]
    assert config["connector"] is None and config["h_pool"] == "mean" and config["head"]["norm"] == "standard"
    adapter = json.loads((s1 / "model" / "adapter" / "adapter_config.json").read_text())
    assert "gate_proj" in adapter["target_modules"] and "language_model" in adapter["target_modules"]


def test_stage2_on_a_vlm_trains_only_the_head(trained):
    from safetensors.torch import load_file

    a1 = load_file(str(trained["s1"] / "model" / "adapter" / "adapter_model.safetensors"))
    a2 = load_file(str(trained["s2"] / "model" / "adapter" / "adapter_model.safetensors"))
    assert a1.keys() == a2.keys() and all(torch.equal(a1[k], a2[k]) for k in a1)
    assert any(not torch.equal(a1[k], torch.zeros_like(a1[k])) for k in a1 if "lora_B" in k)  # stage 1 moved B
    h1 = load_file(str(trained["s1"] / "model" / "head.safetensors"))
    h2 = load_file(str(trained["s2"] / "model" / "head.safetensors"))
    assert any(not torch.equal(h1[k], h2[k]) for k in h1)
    rows = [json.loads(line) for line in (trained["s2"] / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert list(trained["s2"].glob("h-*.safetensors"))  # h cached


def test_vlm_model_folder_answers_by_head_words_generation_and_rkc(trained, tmp_path):
    import shutil

    from PIL import Image

    from somelvlm.batch.index_build import add_to_index
    from somelvlm.models import load_model
    from somelvlm.models.lmm_rgcl_vlm import HFVLMRGCLModel
    from somelvlm.pipeline import Pipeline
    from somelvlm.posts import Post

    folder = tmp_path / "model"
    shutil.copytree(trained["s2"] / "model", folder)
    model = load_model(folder)
    assert isinstance(model, HFVLMRGCLModel) and model.modalities == {"image", "text"}
    posts = [Post(id="a", text="you are an idiot"), Post(id="b", text="lovely day", image=Image.new("RGB", (40, 40)))]
    probs = model.predict_proba(posts)["harmful_meme"]
    assert probs.shape == (2, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
    # rows come back in the posts' order although image and text-only posts run in separate batches
    assert np.allclose(model.predict_proba(posts[::-1])["harmful_meme"][::-1], probs, atol=1e-5)
    words = load_model(folder, method="generation").predict_proba(["you are an idiot"])["harmful_meme"]
    assert words.shape == (1, 2) and np.allclose(words.sum(1), 1, atol=1e-5)
    assert len(model.answer(["you are an idiot"], max_new_tokens=2)) == 1
    pipe = Pipeline(folder, tasks=["harmful_meme"], multimodal=False, rkc=folder / "index")
    [row] = pipe([Post(id="q", text="shut up you idiot")])
    assert row["harmful_meme"]["label"] in ("not_harmful", "harmful")
    assert row["rkc"]["label"] in ("not_harmful", "harmful")

    query = "a brand new domain meme about cats"
    [before] = Pipeline(folder, tasks=["harmful_meme"], multimodal=False, rkc=folder / "index")([Post(id="q", text=query)])
    flipped = "harmful" if before["rkc"]["label"] == "not_harmful" else "not_harmful"
    new = tmp_path / "new.jsonl"
    new.write_text("".join(json.dumps({"id": f"n{i}", "text": query, "label": flipped}) + "\n" for i in range(20)))
    summary = add_to_index(folder / "index", folder, new)
    assert summary.added == 20 and summary.total == 32
    [after] = Pipeline(folder, tasks=["harmful_meme"], multimodal=False, rkc=folder / "index")([Post(id="q", text=query)])
    assert after["rkc"]["label"] == flipped


def test_a_different_base_is_refused_naming_the_one_needed(trained, tmp_path):
    import shutil

    from somelvlm.models.base_lm import BaseModelError
    from somelvlm.models.lmm_rgcl_vlm import load_lmm_rgcl

    other = make_llava(tmp_path / "other", seed=1)
    folder = tmp_path / "model"
    shutil.copytree(trained["s1"] / "model", folder)
    config = json.loads((folder / "config.json").read_text())
    config["init"]["name"] = str(other)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(BaseModelError, match="digest"):
        load_lmm_rgcl(folder)


def test_stage1_and_2_run_on_a_tiny_qwen2_vl(tmp_path):
    torch.set_num_threads(1)
    vlm = make_qwen2_vl(tmp_path / "qwen")
    memes = _memes(tmp_path / "data")
    common = {**COMMON, "domain": str(memes), "init": str(vlm), "max_len": 128, "stage2_epochs": 1,
              "lora_layers": 1}
    run = tmp_path / "run"
    train(LMMRGCLConfig(stage=1, out=str(run), max_steps=1, **common), log=lambda m: None)
    folder = train(LMMRGCLConfig(stage=2, out=str(run), **common), log=lambda m: None)
    from somelvlm.models import load_model

    probs = load_model(folder).predict_proba(["you are an idiot"])["harmful_meme"]
    assert probs.shape == (1, 2) and np.isfinite(probs).all()
