"""The composed LVLM (encoder features -> connector -> causal LM via inputs_embeds) and its generator,
on tiny random Llamas built from configs; images through the real EfficientNet-Lite0 features."""

from __future__ import annotations

import json
import logging

import pytest
import torch

pytest.importorskip("peft")
from gen_helpers import make_tiny_lm  # noqa: E402

from somelvlm.models.base_lm import BaseModelError  # noqa: E402
from somelvlm.models.connector import ConnectorConfig, build_connector  # noqa: E402
from somelvlm.models.generation import GenerationConfig, load_generator  # noqa: E402
from somelvlm.models.lvlm import LVLM, LVLMGenerator, base_record, encode_prompt, load_lm, save_lvlm  # noqa: E402


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory):
    torch.set_num_threads(1)
    return make_tiny_lm(tmp_path_factory.mktemp("tiny-lm"))


@pytest.mark.parametrize("kind,tokens", [("mlp", 4), ("qformer", 3)])
def test_connectors_give_short_token_runs(kind, tokens):
    c = build_connector(ConnectorConfig(vision_dim=16, lm_dim=8, grid=7, kind=kind, pool=2, num_queries=3,
                                        hidden=32, heads=4))
    assert c(torch.randn(2, 49, 16)).shape == (2, tokens, 8)
    assert c.config.num_tokens == tokens


def test_connector_config_errors_name_the_option():
    with pytest.raises(ValueError, match="connector must be one of"):
        ConnectorConfig(kind="resampler")
    with pytest.raises(ValueError, match="image_pool"):
        ConnectorConfig(pool=9)


def test_image_placeholders_and_truncation(tiny_lm):
    _, tok = load_lm(tiny_lm)
    e = encode_prompt(tok, "<image>\nExplain the meme.", 4, with_image=True, max_tokens=200)
    assert sum(e.image_mask) == 4 and len(e.ids) == len(e.image_mask)
    assert encode_prompt(tok, "no marker here", 4, with_image=True, max_tokens=200).image_mask.count(True) == 4
    assert not any(encode_prompt(tok, "<image>\ntext only", 4, with_image=False, max_tokens=200).image_mask)
    long = "Rewrite politely: " + "you idiot " * 200 + "Answer now."
    cut = encode_prompt(tok, long, 0, with_image=False, max_tokens=64)
    assert len(cut.ids) == 64 and cut.truncated > 0
    # the instruction's ends survive: the first and last tokens are those of the full prompt
    full = encode_prompt(tok, long, 0, with_image=False, max_tokens=10_000)
    assert cut.ids[:5] == full.ids[:5] and cut.ids[-5:] == full.ids[-5:]


def test_batched_greedy_equals_one_by_one_and_warns_on_long_prompts(tiny_lm, caplog):
    gen = LVLMGenerator.from_base(tiny_lm, max_prompt_tokens=48)
    prompts = ["hello", "Is this tweet hateful? you are an idiot, shut up.", "#love"]
    cfg = GenerationConfig(max_new_tokens=6)
    batched = gen.generate(prompts, config=cfg)
    assert batched == [gen.generate([p], config=cfg)[0] for p in prompts]
    with caplog.at_level(logging.WARNING):
        out = gen.generate(["please be quiet " * 100], config=cfg)
    assert len(out) == 1 and "truncated" in caplog.text
    with pytest.raises(ValueError, match="no connector"):
        gen.generate(["x"], images=[object()])


def test_option_probs_padding_invariant_and_drive_a_probability_judge(tiny_lm):
    from somelvlm.evaluate.judge import judge_scores

    gen = LVLMGenerator.from_base(tiny_lm)
    prompts = ["Rate it from 1 to 5.", "A much longer prompt, so that the first one is left-padded: rate it 1 to 5."]
    batched = gen.option_probs(prompts, ["1", "2", "3", "4", "5"])
    alone = gen.option_probs(prompts[:1], ["1", "2", "3", "4", "5"])
    assert len(batched) == 2 and all(len(row) == 5 and abs(sum(row) - 1) < 1e-5 for row in batched)
    assert max(abs(a - b) for a, b in zip(batched[0], alone[0])) < 1e-4
    result = judge_scores(gen, "detoxify", ["you idiot", "shut up"], ["you are wrong", "please stop"],
                          ["you are wrong", ""])
    assert result.mode == "probability" and result.parsed == 2
    assert all(1 <= s <= 5 for s in result.scores)
    with pytest.raises(ValueError, match="distinct"):
        gen.option_probs(prompts, ["yes", "yes"])


def _lvlm_with_lora_and_connector(folder, seed=0):
    from peft import LoraConfig, get_peft_model

    lm, tok = load_lm(folder)
    base = base_record(lm, str(folder))
    torch.manual_seed(seed)
    lm = get_peft_model(lm, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    connector = build_connector(ConnectorConfig(lm_dim=32, pool=2))
    return LVLM(lm, connector), tok, base


def test_save_load_roundtrip_with_images(tiny_lm, tmp_path, monkeypatch):
    from PIL import Image

    monkeypatch.setenv("SOMELVLM_CACHE", str(tmp_path / "cache"))
    model, tok, base = _lvlm_with_lora_and_connector(tiny_lm)
    folder = save_lvlm(tmp_path / "m", model, tok, {"name": "tiny-lvlm", "base": base, "max_prompt_tokens": 128})
    config = json.loads((folder / "config.json").read_text())
    assert config["backend"] == "lvlm" and config["base"]["digest"] == base["digest"]
    assert (folder / "adapter" / "adapter_model.safetensors").is_file() and (folder / "connector.safetensors").is_file()
    gen = load_generator(str(folder))
    img = Image.new("RGB", (64, 48), (200, 30, 30))
    cfg = GenerationConfig(max_new_tokens=5)
    direct = LVLMGenerator.from_model(model.eval(), tok)
    prompts = ["<image>\nExplain the meme.", "hello"]
    assert gen.generate(prompts, [img, None], cfg) == direct.generate(prompts, [img, None], cfg)
    # the image changes the answer's conditioning: different images, different first-step logits
    ids = torch.tensor([encode_prompt(tok, "Explain", 4, True, 64).ids])
    mask = torch.tensor([encode_prompt(tok, "Explain", 4, True, 64).image_mask])
    from somelvlm.models.lvlm import image_features

    feats = image_features([img, Image.new("RGB", (64, 48), (0, 0, 250))])
    with torch.no_grad():
        a = gen.model(ids, torch.ones_like(ids), image_mask=mask, image_feats=feats[:1]).logits[0, -1]
        b = gen.model(ids, torch.ones_like(ids), image_mask=mask, image_feats=feats[1:]).logits[0, -1]
    assert not torch.allclose(a, b)


def test_mismatched_or_missing_base_names_the_base(tiny_lm, tmp_path):
    model, tok, base = _lvlm_with_lora_and_connector(tiny_lm)
    folder = save_lvlm(tmp_path / "m", model, tok, {"name": "t", "base": base})
    other = make_tiny_lm(tmp_path / "other", seed=1)
    with pytest.raises(BaseModelError, match=str(tiny_lm)):
        LVLMGenerator(folder, base=other)
    wider = make_tiny_lm(tmp_path / "wider", seed=0, hidden=48)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["base"]["digest"] = None  # even unchecked, a different shape is caught with the base's name
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BaseModelError, match="needs base|does not fit"):
        LVLMGenerator(folder, base=wider)
    cfg["base"]["name"] = str(tmp_path / "gone")
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(BaseModelError, match="gone"):
        LVLMGenerator(folder)
    import shutil

    cfg["base"]["name"] = str(tiny_lm)
    (folder / "config.json").write_text(json.dumps(cfg))
    shutil.rmtree(folder / "adapter")
    with pytest.raises(BaseModelError, match="adapter"):
        LVLMGenerator(folder)
