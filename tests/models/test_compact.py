"""The compact model's on-disk format: save, load (adapter merged), predict, refuse a wrong base."""

import json

import numpy as np
import pytest
import torch

from somelvlm.models.compact import AdapterMismatchError, CompactModel, save_compact
from somelvlm.models.encoder import encoder_digest, load_encoder
from somelvlm.models.heads import MultiTaskNet
from somelvlm.taxonomy.heads import head_spec

LORA = {"r": 4, "alpha": 8, "targets": ["query", "value"]}
TEXTS = ["what a lovely day", "this is the worst service ever, I am furious #fail"]


def build(encoder_path, tasks=("emotion", "stance", "humor_rating")):
    from peft import LoraConfig, get_peft_model

    _, base = load_encoder(str(encoder_path))
    peft_model = get_peft_model(base, LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], target_modules=LORA["targets"]))
    for name, p in peft_model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.5)  # so that merging the adapter matters
    specs = [head_spec(t) for t in tasks]
    return MultiTaskNet(peft_model, specs).eval(), specs


def test_save_load_round_trip_gives_the_same_outputs(tiny_encoder, tmp_path):
    net, specs = build(tiny_encoder)
    tok, _ = load_encoder(str(tiny_encoder))
    batch = tok(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = net.head("emotion", net.embed(batch["input_ids"], batch["attention_mask"])).softmax(-1).numpy()
    save_compact(net, specs, tmp_path / "m", encoder=str(tiny_encoder), encoder_digest=encoder_digest(str(tiny_encoder)),
                 lora=LORA, max_length=32)
    files = {p.name for p in (tmp_path / "m").iterdir()}
    assert files == {"config.json", "model.safetensors"}
    model = CompactModel(tmp_path / "m", int8=False)
    probs = model.predict_proba(TEXTS)
    assert np.allclose(probs["emotion"], expected, atol=1e-5)
    assert probs["stance"].shape == (2, 5, 3) and probs["humor_rating"].shape == (2,)
    rows = model.predict(TEXTS, ["emotion", "stance", "humor_rating"])
    assert rows[0]["emotion"]["label"] in ("anger", "joy", "optimism", "sadness")
    assert abs(sum(rows[0]["emotion"]["probs"].values()) - 1) < 1e-3
    assert set(rows[1]["stance"]["targets"]) == {"abortion", "atheism", "climate", "feminist", "hillary"}
    assert 0 <= rows[0]["humor_rating"]["value"] <= 5
    quantized = CompactModel(tmp_path / "m", int8=True).predict_proba(TEXTS)
    assert np.abs(quantized["emotion"] - expected).max() < 0.1
    with pytest.raises(KeyError, match="emotion"):
        model.predict(TEXTS, ["emotoin"])


def test_a_different_base_is_refused_with_the_name_it_needs(tiny_encoder, tmp_path):
    net, specs = build(tiny_encoder)
    save_compact(net, specs, tmp_path / "m", encoder=str(tiny_encoder), encoder_digest="0123456789abcdef",
                 lora=LORA, max_length=32)
    with pytest.raises(AdapterMismatchError, match="install the base it needs"):
        CompactModel(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert config["format"] == "somelvlm-compact-v1"


def test_missing_model_folder_is_a_clear_error(tmp_path):
    from somelvlm.models import load_model

    with pytest.raises(FileNotFoundError, match="config.json"):
        load_model(tmp_path / "nothing")
