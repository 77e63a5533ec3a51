"""LMM-RGCL end to end on a tiny random Llama and a dozen synthetic memes (some with drawn images):
stage 1 (LoRA + head, named finite loss terms, checkpoint resume), stage 2 (head with RGCL on the
frozen LMM), the model folder through ``load_model`` and the Pipeline (head + RKC), ``index add``
changing an RKC answer, a foreign index refused, bad memes skipped with their reason."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("peft")
pytest.importorskip("faiss")
from gen_helpers import MEME_BAD, MEME_GOOD, make_tiny_lm, write_memes

from somelvlm.train.lmm_rgcl import LMMRGCLConfig
from somelvlm.train.lmm_rgcl_run import train

REPO = Path(__file__).resolve().parents[2]
BAD, GOOD = MEME_BAD, MEME_GOOD


def _memes(root: Path) -> Path:
    """train/val memes of harmful_meme (3 labels -> binary), four with images, plus bad rows."""
    return write_memes(root)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("lmm-rgcl")
    lm = make_tiny_lm(root / "lm")
    memes = _memes(root / "data")
    common = {"domain": str(memes), "task": "harmful_meme", "init": str(lm), "max_len": 64, "batch_size": 4,
              "lr": 5e-3, "head_lr": 5e-3, "warmup_steps": 1, "lora_r": 4, "lora_alpha": 8, "lora_layers": None,
              "head_width": 16, "checkpoint_every": 2, "log_every": 1, "num_threads": 1, "max_train": None,
              "epochs": 3, "l2": 0.5, "stage2_epochs": 3, "stage2_batch_size": 4, "k": 4}
    logs: list[str] = []
    run = root / "run"
    train(LMMRGCLConfig(stage=1, out=str(run), max_steps=2, **common), log=logs.append)
    train(LMMRGCLConfig(stage=1, out=str(run), max_steps=4, **common), log=logs.append)
    train(LMMRGCLConfig(stage=2, out=str(run), **common), log=logs.append)
    s1, s2 = run / "stage1", run / "stage2"
    return {"root": root, "s1": s1, "s2": s2, "logs": logs, "memes": memes}


def test_stage1_names_finite_terms_resumes_and_skips_bad_memes(trained):
    s1 = trained["s1"]
    rows = [json.loads(line) for line in (s1 / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert any("resumed from" in m and "step 2" in m for m in trained["logs"])
    for r in rows:
        assert {"loss", "lm", "bce", "rgcl"} <= set(r) and all(math.isfinite(r[k]) for k in ("loss", "lm", "bce", "rgcl"))
    report = json.loads((s1 / "report.json").read_text())
    assert report["trained_on"] == 12
    assert report["skipped_by_reason"] == {"unreadable image": 1, "no text": 1, "bad label": 1}
    config = json.loads((s1 / "model" / "config.json").read_text())
    assert config["backend"] == "lmm_rgcl" and config["labels"] == ["not_harmful", "harmful"]
    assert config["connector"] is not None  # images among the training memes: a connector was trained
    assert (s1 / "model" / "adapter" / "adapter_config.json").is_file()


def test_stage2_trains_only_the_head(trained):
    from safetensors.torch import load_file

    a1 = load_file(str(trained["s1"] / "model" / "adapter" / "adapter_model.safetensors"))
    a2 = load_file(str(trained["s2"] / "model" / "adapter" / "adapter_model.safetensors"))
    assert a1.keys() == a2.keys() and all(torch.equal(a1[k], a2[k]) for k in a1)
    h1 = load_file(str(trained["s1"] / "model" / "head.safetensors"))
    h2 = load_file(str(trained["s2"] / "model" / "head.safetensors"))
    assert any(not torch.equal(h1[k], h2[k]) for k in h1)
    rows = [json.loads(line) for line in (trained["s2"] / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all(math.isfinite(r["train_rgcl"]) and math.isfinite(r["train_ce"]) for r in rows)


def test_model_folder_loads_and_the_pipeline_answers_with_head_and_rkc(trained):
    from somelvlm.models import load_model
    from somelvlm.pipeline import Pipeline
    from somelvlm.posts import Post

    folder = trained["s2"] / "model"
    model = load_model(folder)
    assert model.modalities == {"image", "text"}
    probs = model.predict_proba(["you are an idiot", "lovely day #sun"])["harmful_meme"]
    assert probs.shape == (2, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
    by_words = load_model(folder, method="generation").predict_proba(["you are an idiot"])["harmful_meme"]
    assert by_words.shape == (1, 2) and np.allclose(by_words.sum(1), 1, atol=1e-5)
    assert len(model.answer(["you are an idiot"], max_new_tokens=2)) == 1
    pipe = Pipeline(folder, tasks=["harmful_meme"], multimodal=False, rkc=folder / "index")
    [row] = pipe([Post(id="q", text="shut up you idiot")])
    assert row["harmful_meme"]["label"] in ("not_harmful", "harmful")
    assert row["rkc"]["task"] == "harmful_meme" and row["rkc"]["label"] in ("not_harmful", "harmful")


def test_index_add_changes_rkc_and_a_foreign_index_is_refused(trained, tmp_path):
    import shutil

    from somelvlm.batch.index_build import add_to_index
    from somelvlm.posts import Post
    from somelvlm.retrieval.index import EncoderMismatch, MemoryIndex
    from somelvlm.retrieval.stage import RKCStage

    folder = tmp_path / "model"
    shutil.copytree(trained["s2"] / "model", folder)
    query = "a brand new domain meme about cats"

    def rkc(text: str) -> dict:
        rows = [{}]
        RKCStage(folder / "index")([Post(id="q", text=text)], [text], rows)
        return rows[0]["rkc"]

    before = rkc(query)
    flipped = "harmful" if before["label"] == "not_harmful" else "not_harmful"
    new = tmp_path / "new.jsonl"
    new.write_text("".join(json.dumps({"id": f"n{i}", "text": query, "label": flipped}) + "\n" for i in range(20))
                   + json.dumps({"id": "n-empty", "text": "", "label": "harmful"}) + "\n")
    summary = add_to_index(folder / "index", folder, new)
    assert summary.added == 20 and summary.total == 32
    assert rkc(query)["label"] == flipped

    foreign = tmp_path / "foreign"
    MemoryIndex.build(np.ones((2, 16), np.float32), {"id": ["a", "b"], "label": ["harmful", "not_harmful"]},
                      {"encoders": {"image": "efficientnet_lite0", "text": "minilm"}, "embedding": "g",
                       "head_digest": "0123", "model": str(folder)}).save(foreign)
    with pytest.raises(EncoderMismatch, match="index has .*minilm.*model has .*lora"):
        add_to_index(foreign, folder, new)


def test_configs_load_and_errors_name_the_option():
    for path in sorted((REPO / "configs").glob("lmm-rgcl-*.yaml")):
        first = path.read_text().splitlines()[0]
        assert first.startswith("# somelvlm train lmm-rgcl"), path
        LMMRGCLConfig.from_yaml(path, stage=1)
    with pytest.raises(ValueError, match="--stage"):
        LMMRGCLConfig(stage=3, out="o")
    with pytest.raises(ValueError, match="task"):
        LMMRGCLConfig(stage=1, out="o", domain="memes.jsonl")
    with pytest.raises(KeyError, match="harm-c"):
        LMMRGCLConfig(stage=1, out="o", domain="harm_c")


def test_cached_bottom_layers_give_the_same_h_and_loss(trained, tmp_path, monkeypatch):
    """The CPU speed path (frozen layers below LoRA computed once, from disk) equals the full forward."""
    from peft import LoraConfig, get_peft_model

    from somelvlm.models.lmm_rgcl import StateCache, collate_memes, encode_meme, load_init, lvlm_forward

    monkeypatch.setenv("SOMELVLM_CACHE", str(tmp_path))
    lvlm, tok, init = load_init(str(trained["root"] / "lm"))
    lvlm.lm = get_peft_model(lvlm.lm, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                 layers_to_transform=[1], init_lora_weights=False))
    lvlm.eval()
    items = [encode_meme(tok, f"Is this hateful? {t}", "hate", 0, False, 64) for t in BAD + GOOD]
    full = lvlm_forward(lvlm, collate_memes(items, tok.pad_token_id))
    StateCache(init["digest"], 1).fill(lvlm, items, tok.pad_token_id)
    again = [dict(it) for it in items]
    StateCache(init["digest"], 1).fill(lvlm, again, tok.pad_token_id)  # read back from disk
    split = lvlm_forward(lvlm, collate_memes(again, tok.pad_token_id), from_layer=1)
    assert torch.allclose(full["h"], split["h"], atol=1e-5) and torch.allclose(full["lm"], split["lm"], atol=1e-5)


def test_the_cli_command_runs_the_recipe_from_a_config():
    """``somelvlm train lmm-rgcl --stage N --config FILE`` reads the recipe's own dataclass."""
    from somelvlm.cli import main

    with pytest.raises(SystemExit) as e:  # a config typo is one line, exit 2, before any training
        main(["train", "lmm-rgcl", "--stage", "1", "--config", str(REPO / "configs" / "lmm-rgcl-harm-c.yaml"), "--l0", "heavy"])
    assert e.value.code == 2


def test_stage2_standardises_h_with_its_training_stats_and_inference_applies_the_same(trained):
    """The head's saved mean / std are the stage-2 training memes' h statistics, and the loaded model
    embeds a training meme to the same g the index holds for it (same standardisation at inference)."""
    from safetensors.numpy import load_file as load_np
    from safetensors.torch import load_file

    from somelvlm.models import load_model
    from somelvlm.retrieval.index import MemoryIndex

    s2 = trained["s2"]
    config = json.loads((s2 / "model" / "config.json").read_text())
    assert config["head"]["norm"] == "standard" and config["head"]["embed"] == "post"
    state = load_file(str(s2 / "model" / "head.safetensors"))
    h_files = sorted(s2.glob("h-*.safetensors"), key=lambda p: len(load_np(str(p))["h"]))
    h = load_np(str(h_files[-1]))["h"]  # the training memes (12) vs val (4)
    assert len(h) == 12 and int(state["h_fitted"]) == 12
    assert np.allclose(state["h_mean"].numpy(), h.mean(0), atol=1e-5)
    assert np.allclose(state["h_std"].numpy(), np.maximum(h.std(0, ddof=1), 1e-4), atol=1e-5)
    # training: the index holds g of the training memes' h (rows in the same order) through the saved head
    memory = MemoryIndex.load(s2 / "model" / "index")
    stored = memory.index.reconstruct_n(0, len(memory))
    model = load_model(s2 / "model")
    with torch.no_grad():
        g_train = model.head(torch.from_numpy(h))["g"].numpy()
    assert np.allclose(g_train / np.linalg.norm(g_train, axis=1, keepdims=True), stored, atol=1e-5)
    # inference: the loaded model's g of new text is GELU(W (h - saved mean) / saved std + b)
    out = model.forward(["shut up you idiot", "a lovely day"])
    z = ((out["h"] - state["h_mean"].numpy()) / state["h_std"].numpy()) @ state["embed.weight"].numpy().T
    g = torch.nn.functional.gelu(torch.from_numpy(z + state["embed.bias"].numpy())).numpy()
    assert np.allclose(out["g"], g, atol=1e-4)


def test_mean_pooled_h_is_the_mean_over_prompt_tokens_and_the_answer_still_reads_the_last(trained):
    """``pool="mean"``: h averages the last hidden states over the prompt tokens (padding and answer
    tokens left out); the label-word logits still come from the last prompt token."""
    from somelvlm.models.lmm_rgcl import collate_memes, encode_meme, load_init, lvlm_forward

    lvlm, tok, _ = load_init(str(trained["root"] / "lm"))
    lvlm.eval()
    items = [encode_meme(tok, f"Is this hateful? {t}", "hate", 0, False, 64) for t in ["idiot", BAD[1]]]
    batch = collate_memes(items, tok.pad_token_id)
    with torch.no_grad():
        mean = lvlm_forward(lvlm, batch, option_tokens=[5, 7], pool="mean")
        last = lvlm_forward(lvlm, batch, option_tokens=[5, 7], pool="last")
        hidden = lvlm.lm(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         output_hidden_states=True).hidden_states[-1]
    for row, it in enumerate(items):
        assert torch.allclose(mean["h"][row], hidden[row, :it["last"] + 1].mean(0), atol=1e-5)
        assert torch.allclose(last["h"][row], hidden[row, it["last"]], atol=1e-5)
    assert torch.allclose(mean["options"], last["options"]) and torch.allclose(mean["last"], last["h"])
    with pytest.raises(ValueError, match="pool"):
        lvlm_forward(lvlm, batch, pool="max")
    config = json.loads((trained["s2"] / "model" / "config.json").read_text())
    assert config["h_pool"] == "mean"
