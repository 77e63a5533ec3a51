"""Conversations, token counts, stop strings and streaming of the local generators (``chat``), on
tiny random models built from configs: the ``lvlm`` backend over a ChatML Llama and the ``hf_vlm``
backend over a tiny LLaVA. ``generate`` stays the same answers as strings."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
import torch

pytest.importorskip("peft")
from gen_helpers import make_tiny_lm  # noqa: E402
from vlm_helpers import make_llava  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "serve"))
from tiny_generator import make_tiny_llama  # noqa: E402

from somelvlm.models.decoding import StopCriteria, answers, cut_at_stop  # noqa: E402
from somelvlm.models.generation import ChatGenerator, Generated, GenerationConfig  # noqa: E402

CONVERSATION = [{"role": "system", "content": "You rewrite posts politely."},
                {"role": "user", "content": "you are an idiot, shut up."}]


@pytest.fixture(scope="module")
def chatml(tmp_path_factory):
    from somelvlm.models.lvlm import LVLMGenerator

    torch.set_num_threads(1)
    return LVLMGenerator.from_base(make_tiny_lm(tmp_path_factory.mktemp("lm")), name="tiny")


@pytest.fixture(scope="module")
def wordy(tmp_path_factory):
    """A tiny random Llama with a WordPiece vocabulary: its greedy answers are words (no template)."""
    from somelvlm.models.lvlm import LVLMGenerator

    return LVLMGenerator.from_base(make_tiny_llama(tmp_path_factory.mktemp("llama") / "m"), name="wordy")


def test_lvlm_chat_uses_the_template_and_counts_tokens(chatml):
    assert isinstance(chatml, ChatGenerator)
    cfg = GenerationConfig(max_new_tokens=5)
    got = chatml.chat([CONVERSATION, "Rewrite politely: shut up"], config=cfg)
    rendered = chatml.tokenizer.apply_chat_template(CONVERSATION, tokenize=False, add_generation_prompt=True)
    assert "<|im_start|>system\nYou rewrite posts politely.<|im_end|>" in chatml.render_messages(CONVERSATION)
    assert got[0].prompt_tokens == len(chatml.tokenizer(rendered, add_special_tokens=False)["input_ids"])
    assert all(g.completion_tokens <= 5 and g.finish_reason in ("stop", "length") for g in got)
    assert got[1].text == chatml.generate(["Rewrite politely: shut up"], config=cfg)[0]  # one user turn = a prompt


def test_lvlm_stop_strings_and_streaming_pieces_add_up(wordy):
    chatml = wordy
    cfg = GenerationConfig(max_new_tokens=16)
    full = chatml.chat([CONVERSATION], config=cfg)[0]
    assert len(full.text.split()) > 4, full
    stop = full.text.split()[3]
    cut = chatml.chat([CONVERSATION], config=GenerationConfig(max_new_tokens=16, stop=(stop,)))[0]
    assert cut.text == full.text.split(stop)[0].strip() and cut.finish_reason == "stop"
    assert cut.completion_tokens < full.completion_tokens
    pieces: list[str] = []
    streamed = chatml.chat([CONVERSATION], config=cfg, on_text=pieces.append)[0]
    assert streamed == full and "".join(pieces).strip() == full.text
    with pytest.raises(ValueError, match="one conversation"):
        chatml.chat([CONVERSATION, CONVERSATION], config=cfg, on_text=pieces.append)


def test_a_set_cancel_event_stops_that_row_only(wordy):
    chatml = wordy
    cancel = [threading.Event(), None]
    cancel[0].set()
    got = chatml.chat([CONVERSATION, CONVERSATION], config=GenerationConfig(max_new_tokens=12), cancel=cancel)
    assert got[0].completion_tokens <= 1 and got[1].completion_tokens > 1


def test_answers_count_tokens_up_to_the_end_and_name_the_finish_reason():
    class Tok:
        def batch_decode(self, rows, skip_special_tokens=True):
            return [" ".join(f"w{t}" for t in row.tolist() if t not in (0, 2)) for row in rows]

        def decode(self, ids, skip_special_tokens=True):
            return self.batch_decode(ids[None])[0]

    new = torch.tensor([[5, 6, 2, 0], [5, 6, 7, 8], [5, 9, 7, 0]])           # eos=2, pad=0
    stopper = StopCriteria(Tok(), ("w9",), prompt_len=0, rows=3)
    stopper(new[:, :2], None)                                                   # row 2 wrote "w9" at step 2
    got = answers(Tok(), new, [3, 4, 5], {2}, stopper, max_new_tokens=4, stop=("w9",))
    assert got[0] == Generated("w5 w6", 3, 3, "stop")
    assert got[1] == Generated("w5 w6 w7 w8", 4, 4, "length")
    assert got[2] == Generated("w5", 5, 2, "stop")
    assert cut_at_stop("a b STOP c", ("STOP", "b")) == ("a ", True)


def test_hf_vlm_chat_renders_turns_with_the_image_slot(tmp_path):
    from PIL import Image

    from somelvlm.models.hf_vlm import HFVisionGenerator, render_prompt

    gen = HFVisionGenerator(make_llava(tmp_path / "vlm"), num_threads=1)
    assert isinstance(gen, ChatGenerator)
    text = render_prompt(gen.processor, CONVERSATION[:1] + [{"role": "user", "content": "<image>\nExplain the meme."}],
                         True)
    assert text.index("You rewrite posts politely.") < text.index("<image>") < text.index("Explain the meme.")
    image = Image.new("RGB", (40, 40), (200, 10, 10))
    cfg = GenerationConfig(max_new_tokens=3)
    got = gen.chat([CONVERSATION, [{"role": "user", "content": "Explain the meme."}]], [None, image], cfg)
    assert [g.completion_tokens for g in got] == [3, 3] and all(g.prompt_tokens > 0 for g in got)
    assert got[1].text == gen.generate(["Explain the meme."], [image], cfg)[0]
    assert render_prompt(gen.processor, "Explain.", True) == gen.render("Explain.", True)
