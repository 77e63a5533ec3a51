"""Tiny generative models for the generation tests: a byte-level BPE tokenizer trained on a few
sentences (with a ChatML template like SmolLM2's) and random Llama / VLM weights from configs."""

from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CORPUS = [
    "This is a toxic post: rewrite it so that it is polite and not offensive, keeping its meaning.",
    "Suggest hashtags that best describe it. Each hashtag begins with #. #love #sun #happy",
    "Is this tweet hateful? Answer with one of: not hate, hate. Explain what the meme means.",
    "you are an idiot, shut up. please be quiet. the meme makes fun of politicians.",
] * 4
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>", "<image>", "<|image_pad|>",
            "<|vision_start|>", "<|vision_end|>", "<|video_pad|>"]


def make_tokenizer(vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|pad|>", unk_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def make_tiny_lm(folder: Path, seed: int = 0, hidden: int = 32) -> Path:
    """A random 2-layer Llama with the tiny tokenizer, saved as a local HF folder (safetensors)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = make_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                         bos_token_id=tok.bos_token_id, tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def sft_record(i: int, task: str, prompt: str, answer: str, image: str | None = None) -> dict:
    """One SoMeData-style training record (ShareGPT conversations), with an image path if given."""
    r = {"id": f"t/{task}/{i}", "task": task, "kind": "generation",
         "conversations": [{"from": "human", "value": prompt}, {"from": "gpt", "value": answer}]}
    if image:
        r["image"] = image
        r["conversations"][0]["value"] = "<image>\n" + prompt
    return r


def write_tiny_somedata(root: Path, detox: int, hashtags: int, images: int, size: tuple[int, int] = (48, 40)) -> Path:
    """A SoMeData-style ``train.jsonl`` in ``root``: ``detox`` and ``hashtags`` text records and
    ``images`` meme-explanation records whose drawn PNGs lie under ``root/imgs``."""
    import json

    from PIL import Image

    (root / "imgs").mkdir(parents=True, exist_ok=True)
    rows = [sft_record(i, "detoxify", f"Rewrite politely: you idiot number {i}", "please be quiet.") for i in range(detox)]
    rows += [sft_record(i, "hashtags", f"Suggest hashtags: sun day {i}", "#sun #happy") for i in range(hashtags)]
    for i in range(images):
        Image.new("RGB", size, (40 * i % 256, 100, max(0, 200 - 30 * i))).save(root / "imgs" / f"{i}.png")
        rows.append(sft_record(i, "explain_offensive_meme", "Explain the meme.", "the meme makes fun of politicians.",
                               image=f"imgs/{i}.png"))
    (root / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


MEME_BAD = ["you are an idiot, shut up", "the meme makes fun of politicians, idiot", "shut up you stupid idiot"]
MEME_GOOD = ["please be quiet, lovely day #sun", "#love #sun #happy", "a polite post about the sun"]


def write_memes(root: Path, three_labels: bool = True, bad_rows: bool = True) -> Path:
    """``memes.jsonl`` of harmful_meme in ``root``: 12 train and 4 val memes, the first four with a drawn
    PNG under ``root/imgs``, plus a meme whose image is not a PNG at all; labels very / somewhat /
    not harmful (``three_labels``) or very / not; ``bad_rows`` adds an empty text and an unknown label."""
    import json

    from PIL import Image

    (root / "imgs").mkdir(parents=True)
    rows = []
    for i in range(16):
        bad = i % 2 == 0
        label = ("very_harmful" if i % 4 == 0 or not three_labels else "somewhat_harmful") if bad else "not_harmful"
        row = {"id": f"m{i}", "text": f"{(MEME_BAD if bad else MEME_GOOD)[i % 3]} {i}", "label": label,
               "split": "val" if i >= 12 else "train"}
        if i < 4:
            Image.new("RGB", (40, 40), (200 if bad else 20, 60, 90)).save(root / "imgs" / f"{i}.png")
            row["image"] = f"imgs/{i}.png"
        rows.append(row)
    (root / "imgs" / "broken.png").write_bytes(b"not a png at all")
    rows.append({"id": "broken", "text": "an idiot", "label": "very_harmful", "image": "imgs/broken.png"})
    if bad_rows:
        rows += [{"id": "empty", "text": "  ", "label": "not_harmful"}, {"id": "odd", "text": "hello", "label": "maybe"}]
    path = root / "memes.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path

