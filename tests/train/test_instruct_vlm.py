"""``somelvlm train instruct`` on a pretrained Hugging Face VLM: tiny random LLaVA / Qwen2-VL /
InstructBLIP built from configs, a tiny SoMeData folder (text records and records with a drawn
image). Stage 1 (LoRA on the LM) through the Python API and the CLI, resume, the saved adapter
through ``HFVisionGenerator`` / ``load_generator``; stage 2 (the model's own projector); clear
errors for a missing adapter or another base; the example config loads."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

pytest.importorskip("peft")
from gen_helpers import sft_record, write_tiny_somedata  # noqa: E402
from vlm_helpers import make_instructblip, make_llava, make_qwen2_vl  # noqa: E402

from somelvlm.models.generation import GenerationConfig  # noqa: E402
from somelvlm.train.instruct import InstructConfig, train  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "configs" / "hf-vlm-lora.example.yaml"


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    torch.set_num_threads(1)
    return write_tiny_somedata(tmp_path_factory.mktemp("somedata"), detox=6, hashtags=0, images=4)


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    return make_llava(tmp_path_factory.mktemp("llava") / "vlm")


def _common(tiny_data, base, **extra) -> dict:
    return dict(data=str(tiny_data), data_root=str(tiny_data), base=str(base), max_len=96, max_answer_tokens=16,
                batch_size=4, lr=2e-2, warmup_steps=1, lora_r=4, lora_alpha=8, lora_dropout=0.0,
                checkpoint_every=1, log_every=1, num_threads=1, quantize="none", **extra)


def _logits(gen, prompt: str) -> torch.Tensor:
    inputs = gen.processor(text=[gen.render(prompt, False)], return_tensors="pt")
    with torch.inference_mode():
        return gen.model(**inputs).logits


def test_stage1_on_llava_resumes_and_the_adapter_generates(tiny_data, llava, tmp_path):
    from safetensors.torch import load_file

    from somelvlm.models.generation import load_generator
    from somelvlm.models.hf_vlm import HFVisionGenerator

    out = tmp_path / "s1"
    logs: list[str] = []
    train(InstructConfig(stage=1, out=str(out), max_steps=2, **_common(tiny_data, llava)), log=logs.append)
    assert (out / "checkpoints" / "step-000002" / "trainable.safetensors").is_file()
    assert any("4 with an image" in m for m in logs)  # stage 1 on a VLM takes text and image records
    train(InstructConfig(stage=1, out=str(out), max_steps=3, **_common(tiny_data, llava)), log=logs.append)
    assert any("resumed from" in m and "step 2" in m for m in logs)
    steps = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == [1, 2, 3] and all(math.isfinite(s["lm"]) for s in steps)

    meta = json.loads((out / "model" / "config.json").read_text())
    assert meta["backend"] == "hf_vlm" and meta["base"]["name"] == str(llava) and meta["base"]["digest"]
    assert meta["training"]["stage1"]["per_task"] == {"detoxify": 6, "explain_offensive_meme": 4}
    adapter = load_file(str(out / "model" / "adapter" / "adapter_model.safetensors"))
    assert adapter and all("language_model" in k and "lora_" in k for k in adapter)
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in adapter.items())  # LoRA B starts at zero

    tuned = HFVisionGenerator(out / "model", num_threads=1)
    base = HFVisionGenerator(llava, num_threads=1)
    assert not torch.allclose(_logits(tuned, "Rewrite politely: you idiot"), _logits(base, "Rewrite politely: you idiot"))
    same = HFVisionGenerator(llava, adapter=out / "model", num_threads=1)  # the explicit base + adapter form
    assert torch.allclose(_logits(same, "Explain the meme."), _logits(tuned, "Explain the meme."))
    from PIL import Image

    answers = load_generator(str(out / "model"), num_threads=1).generate(
        ["Explain the meme.", "Rewrite politely: you idiot"],
        [Image.open(tiny_data / "imgs" / "0.png").convert("RGB"), None], GenerationConfig(max_new_tokens=4))
    assert len(answers) == 2


def test_cli_runs_stage1_from_a_yaml(tiny_data, llava, tmp_path):
    import yaml

    from somelvlm.cli import main

    config = tmp_path / "vlm.yaml"
    config.write_text(yaml.safe_dump(_common(tiny_data, llava)))
    main(["train", "instruct", "--stage", "1", "--config", str(config), "--out", str(tmp_path / "run"),
          "--max-steps", "1"])
    assert (tmp_path / "run" / "model" / "adapter" / "adapter_model.safetensors").is_file()
    assert json.loads((tmp_path / "run" / "model" / "config.json").read_text())["backend"] == "hf_vlm"


@pytest.mark.parametrize("builder, projector", [(make_llava, "multi_modal_projector"),
                                                (make_qwen2_vl, "visual.merger"),
                                                (make_instructblip, "language_projection")],
                         ids=["llava", "qwen2_vl", "instructblip"])
def test_stage2_tunes_only_the_models_projector(builder, projector, tiny_data, tmp_path):
    from safetensors.torch import load_file

    from somelvlm.models.hf_vlm import HFVisionGenerator

    base = builder(tmp_path / "vlm")
    common = _common(tiny_data, base)
    train(InstructConfig(stage=1, out=str(tmp_path / "s1"), max_steps=1, **common), log=lambda _: None)
    s2 = tmp_path / "s2"
    logs: list[str] = []
    train(InstructConfig(stage=2, out=str(s2), init=str(tmp_path / "s1" / "model"), max_steps=2, **common),
          log=logs.append)
    assert any("4 records, 4 with an image" in m for m in logs)  # stage 2: records with an image only
    state = load_file(str(s2 / "model" / "projector.safetensors"))
    assert state and all(projector in k or "qformer" in k or "query_tokens" in k for k in state)
    a1 = load_file(str(tmp_path / "s1" / "model" / "adapter" / "adapter_model.safetensors"))
    a2 = load_file(str(s2 / "model" / "adapter" / "adapter_model.safetensors"))
    assert a1.keys() == a2.keys() and all(torch.equal(a1[k], a2[k]) for k in a1)  # stage 1's adapter stays
    gen = HFVisionGenerator(s2 / "model", num_threads=1)
    own = gen.model.state_dict()
    assert all(torch.allclose(own[k], v) for k, v in state.items())  # the tuned projector is what runs
    from PIL import Image

    out = gen.generate(["Explain the meme."], [Image.open(tiny_data / "imgs" / "1.png").convert("RGB")],
                       GenerationConfig(max_new_tokens=3))
    assert len(out) == 1


def test_another_base_or_a_missing_adapter_is_a_clear_error(tiny_data, llava, tmp_path):
    import shutil

    from somelvlm.models.base_lm import BaseModelError
    from somelvlm.models.hf_vlm import HFVisionGenerator

    out = tmp_path / "s1"
    train(InstructConfig(stage=1, out=str(out), max_steps=1, **_common(tiny_data, llava)), log=lambda _: None)
    other = make_llava(tmp_path / "other", seed=1)
    with pytest.raises(BaseModelError, match=f"trained on base model '{llava}'"):
        HFVisionGenerator(other, adapter=out / "model")
    moved = tmp_path / "moved"
    shutil.copytree(out / "model", moved)
    meta = json.loads((moved / "config.json").read_text())
    meta["base"]["name"] = str(tmp_path / "gone")
    (moved / "config.json").write_text(json.dumps(meta))
    with pytest.raises(FileNotFoundError, match="needs base"):
        HFVisionGenerator(moved)
    shutil.rmtree(out / "model" / "adapter")
    with pytest.raises(BaseModelError, match="adapter folder .* is missing"):
        HFVisionGenerator(out / "model")
    with pytest.raises(ValueError, match="not a stage-1 model trained on a Hugging Face VLM"):
        train(InstructConfig(stage=2, out=str(tmp_path / "s2"), init=str(llava), **_common(tiny_data, llava)))


def test_records_with_a_bad_image_are_skipped_and_named(tiny_data, llava, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    (data / "imgs" / "broken.png").write_bytes(b"not a png")
    with (data / "train.jsonl").open("a") as f:
        f.write(json.dumps(sft_record(9, "explain_offensive_meme", "Explain.", "x", image="imgs/broken.png")) + "\n")
        f.write(json.dumps(sft_record(10, "explain_offensive_meme", "Explain.", "x", image="imgs/gone.png")) + "\n")
    logs: list[str] = []
    common = {**_common(data, llava), "data": str(data), "data_root": str(data)}
    train(InstructConfig(stage=1, out=str(tmp_path / "run"), max_steps=1, **common), log=logs.append)
    assert any("2 records skipped for a bad image" in m and "t/explain_offensive_meme/" in m for m in logs)
    meta = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert meta["training"]["stage1"]["per_task"] == {"detoxify": 6, "explain_offensive_meme": 4}


def test_the_example_config_loads():
    first = EXAMPLE.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# somelvlm train instruct --stage 1 --config configs/hf-vlm-lora.example.yaml")
    cfg = InstructConfig.from_yaml(EXAMPLE)
    assert cfg.stage == 1 and cfg.stage1_images


@pytest.mark.gpu
def test_qlora_loads_the_vlm_in_4bit(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("QLoRA needs CUDA")
    pytest.importorskip("bitsandbytes")
    from somelvlm.train.instruct_vlm import load_quantized_vlm

    model = load_quantized_vlm(str(make_llava(tmp_path / "vlm")))
    assert any("4bit" in type(m).__name__ for m in model.modules())
