"""The two-step instruction recipe end to end on a tiny Llama and a tiny SoMeData folder:
stage 1 (LoRA) with checkpoint resume, stage 2 (connector on a frozen LM) with real image features,
the saved model through ``load_generator``; configs in configs/ load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

pytest.importorskip("peft")
from gen_helpers import make_tiny_lm, write_tiny_somedata  # noqa: E402

from somelvlm.models.generation import GenerationConfig, load_generator  # noqa: E402
from somelvlm.train.instruct import InstructConfig, train  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    torch.set_num_threads(1)
    return write_tiny_somedata(tmp_path_factory.mktemp("somedata"), detox=12, hashtags=6, images=6, size=(40, 40))


def test_stage1_resumes_and_stage2_trains_only_the_connector(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("SOMELVLM_CACHE", str(tmp_path / "cache"))
    lm = make_tiny_lm(tmp_path / "lm")
    common = dict(data=str(tiny_data), base=str(lm), max_len=64, max_answer_tokens=16, batch_size=4,
                  lr=5e-3, warmup_steps=1, lora_r=4, lora_alpha=8, checkpoint_every=2, log_every=1, num_threads=1)
    s1 = tmp_path / "s1"
    logs: list[str] = []
    train(InstructConfig(stage=1, out=str(s1), max_steps=2, **common), log=logs.append)
    assert (s1 / "checkpoints" / "step-000002" / "trainable.safetensors").is_file()
    train(InstructConfig(stage=1, out=str(s1), max_steps=5, **common), log=logs.append)
    assert any("resumed from" in m and "step 2" in m for m in logs)
    steps = [json.loads(line)["step"] for line in (s1 / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]
    meta = json.loads((s1 / "model" / "config.json").read_text())
    assert meta["training"]["stage1"]["per_task"] == {"detoxify": 12, "hashtags": 6}
    assert meta["connector"] is None

    s2 = tmp_path / "s2"
    train(InstructConfig(stage=2, out=str(s2), init=str(s1 / "model"), data_root=str(tiny_data), max_steps=2,
                         **common), log=logs.append)
    meta2 = json.loads((s2 / "model" / "config.json").read_text())
    assert meta2["connector"]["kind"] == "mlp" and meta2["training"]["stage2"]["per_task"] == {"explain_offensive_meme": 6}
    # stage 2 leaves the stage-1 adapter untouched
    from safetensors.torch import load_file

    a1 = load_file(str(s1 / "model" / "adapter" / "adapter_model.safetensors"))
    a2 = load_file(str(s2 / "model" / "adapter" / "adapter_model.safetensors"))
    assert a1.keys() == a2.keys() and all(torch.equal(a1[k], a2[k]) for k in a1)
    gen = load_generator(str(s2 / "model"))
    from PIL import Image

    out = gen.generate(["Explain the meme.", "Rewrite politely: you idiot"],
                       [Image.open(tiny_data / "imgs" / "0.png").convert("RGB"), None], GenerationConfig(max_new_tokens=4))
    assert len(out) == 2


def test_lora_training_lowers_the_loss(tiny_data, tmp_path):
    lm = make_tiny_lm(tmp_path / "lm")
    out = tmp_path / "run"
    train(InstructConfig(stage=1, data=str(tiny_data), out=str(out), base=str(lm), tasks=["detoxify"], max_len=64,
                         max_answer_tokens=16, batch_size=12, lr=3e-2, warmup_steps=1, epochs=12, lora_r=8,
                         lora_alpha=16, lora_dropout=0.0, checkpoint_every=100, log_every=1, num_threads=1),
          log=lambda _: None)
    losses = [json.loads(line)["lm"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0] - 0.2  # a tiny random LM: LoRA on attention alone learns slowly


def test_config_errors_name_the_option(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="--stage"):
        InstructConfig(stage=3, data="d", out="o")
    with pytest.raises(ValueError, match="init"):
        InstructConfig(stage=2, data="d", out="o")
    with pytest.raises(ValueError, match="quantize"):
        InstructConfig(stage=1, data="d", out="o", quantize="int3")
    with pytest.raises(FileNotFoundError, match="somelvlm data build"):
        train(InstructConfig(stage=1, data=str(tmp_path), out=str(tmp_path / "o")))


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("some-lvlm*.yaml")), ids=lambda p: p.name)
def test_every_instruct_config_loads(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# somelvlm train instruct --stage")
    cfg = InstructConfig.from_yaml(path)
    assert f"--stage {cfg.stage}" in first


@pytest.mark.gpu
def test_qlora_loads_the_base_in_4bit(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("QLoRA needs CUDA")
    pytest.importorskip("bitsandbytes")
    from somelvlm.train.instruct import load_quantized_lm

    lm, _ = load_quantized_lm(str(make_tiny_lm(tmp_path / "lm", hidden=64)))
    assert any("4bit" in type(m).__name__ for m in lm.modules())
