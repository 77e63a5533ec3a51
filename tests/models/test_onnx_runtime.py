"""The compact model's runtimes: ONNX export, equality with torch fp32, batch invariance of the
default path (on the real shipped model), the torch fallback when onnxruntime is missing."""

import sys

import numpy as np
import pytest
import torch

from somelvlm.digests import export_state_digest
from somelvlm.models.compact import CompactModel, save_compact
from somelvlm.models.encoder import encoder_digest, load_encoder
from somelvlm.models.heads import MultiTaskNet
from somelvlm.models.onnx_encoder import EXPORT_VERSION, OPSET, load_onnx_encoder
from somelvlm.taxonomy.heads import head_spec

SALT = f"somelvlm-onnx-v{EXPORT_VERSION}-opset{OPSET}"

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

LORA = {"r": 4, "alpha": 8, "targets": ["query", "value"]}


def mixed_posts(n: int = 64) -> list[str]:
    """Posts of very different lengths (1 to ~100 tokens), written here."""
    words = ("the vote was rigged and everyone knows it #stopthesteal what a lovely morning by the sea "
             "I can't believe they cancelled my flight again, worst airline ever @delta so proud of my "
             "daughter today she graduated top of her class 😍 feminism is about equality not hating men").split()
    rng = np.random.default_rng(7)
    return [" ".join(rng.choice(words, size=int(rng.integers(1, 60)))) for _ in range(n)]


@pytest.fixture(scope="module")
def tiny_model(tiny_encoder, tmp_path_factory):
    from peft import LoraConfig, get_peft_model

    _, base = load_encoder(str(tiny_encoder))
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=LORA["targets"]))
    torch.manual_seed(0)
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.5)
    specs = [head_spec(t) for t in ("emotion", "stance", "humor_rating")]
    folder = tmp_path_factory.mktemp("tiny-compact")
    save_compact(MultiTaskNet(peft_model, specs).eval(), specs, folder, encoder=str(tiny_encoder),
                 encoder_digest=encoder_digest(str(tiny_encoder)), lora=LORA, max_length=64)
    return folder


@pytest.fixture(scope="module")
def shipped():
    """The real SoMe-mini on the default runtime and on torch fp32."""
    return CompactModel(threads=2), CompactModel(runtime="torch", threads=2)


def test_export_is_cached_by_weights_digest_and_equals_torch(tiny_model, onnx_cache):
    onnx_model = CompactModel(tiny_model, runtime="onnx")
    torch_model = CompactModel(tiny_model, runtime="torch")
    assert onnx_model.runtime == "onnx" and torch_model.runtime == "torch"
    path = onnx_model.onnx.path
    assert path.parent == onnx_cache and path.name == f"encoder-{export_state_digest(torch_model.net.encoder, SALT)}.onnx"
    texts = mixed_posts(20)
    assert np.abs(onnx_model.embed(texts) - torch_model.embed(texts)).max() < 1e-4
    mtime = path.stat().st_mtime_ns
    again = load_onnx_encoder(torch_model.net.encoder, threads=1)
    assert again.path == path and path.stat().st_mtime_ns == mtime  # reused, not exported again
    assert not list(onnx_cache.glob("*.tmp*")) and not [p for p in onnx_cache.iterdir() if p.is_dir()]


def test_default_runtime_is_onnx_and_batch_invariant_on_the_shipped_model(shipped):
    model, reference = shipped
    assert model.runtime == "onnx"
    texts = mixed_posts(64)
    model.batch_size = 64
    batched = model.predict_proba(texts)
    model.batch_size = 1
    single = model.predict_proba(texts)
    model.batch_size = 64
    expected = reference.predict_proba(texts)
    for task, probs in batched.items():
        assert np.abs(probs - single[task]).max() < 1e-4, task
        assert np.abs(probs - expected[task]).max() < 1e-4, task
        if probs.ndim > 1:
            assert (probs.argmax(-1) == single[task].argmax(-1)).all(), task
    # a post keeps its labels whatever it is batched with
    alone = model.predict([texts[5]])[0]
    assert alone == model.predict(texts)[5]


def test_missing_onnxruntime_falls_back_to_torch_with_one_warning(tiny_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    with pytest.warns(RuntimeWarning, match=r"onnxruntime is not installed.*somelvlm\[onnx\]") as record:
        model = CompactModel(tiny_model)
    assert model.runtime == "torch" and len(record) == 1
    assert model.predict_proba(["hello"])["emotion"].shape == (1, 4)
    with pytest.raises(ImportError, match=r"somelvlm\[onnx\]"):
        CompactModel(tiny_model, runtime="onnx")


def test_int8_is_an_explicit_torch_opt_in_and_bad_runtimes_are_named(tiny_model):
    assert CompactModel(tiny_model, int8=True).runtime == "torch-int8"
    with pytest.raises(ValueError, match="runtime must be one of auto, onnx, torch, torch-int8"):
        CompactModel(tiny_model, runtime="tensorrt")
    with pytest.raises(ValueError, match="runtime='torch-int8'"):
        CompactModel(tiny_model, runtime="onnx", int8=True)
