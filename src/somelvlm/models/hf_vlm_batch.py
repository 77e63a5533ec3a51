"""What a Hugging Face VLM reads in one batch: a conversation record encoded by the model's own
processor and chat template (image placement, middle truncation, answer labels), and right-padded
batches of such records. Used by the instruct recipe (``train.instruct_vlm``) and by LMM-RGCL's
HF-VLM route, for training and for inference alike."""

from __future__ import annotations

import torch

TOKEN_KEYS = ("mm_token_type_ids", "token_type_ids")
"""Per-token outputs of some processors, kept beside the ids (padded with 0 over the answer)."""


def encode_record(processor, record: dict, image, config) -> dict:
    """One record through the processor (``config``: ``max_len``, ``max_answer_tokens``): ``ids``, ``labels`` (-100 on the prompt), the per-token and
    text-side extras (kept), and which outputs are per image (recomputed per batch, not kept).
    A prompt too long for ``max_len`` loses the middle of its text."""
    from somelvlm.models.hf_vlm import render_prompt

    tokenizer = getattr(processor, "tokenizer", processor)
    human = record["conversations"][0]["value"].replace("<image>", "").strip()
    answer = record["conversations"][1]["value"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"][: config.max_answer_tokens]
    answer_ids = answer_ids + [tokenizer.eos_token_id]
    truncated = 0
    for _ in range(2):
        text = render_prompt(processor, human, image is not None)
        kwargs = {"images": [image]} if image is not None else {}
        enc = processor(text=[text], return_tensors="pt", **kwargs)  # as HFVisionGenerator encodes it
        ids = enc["input_ids"][0].tolist()
        excess = len(ids) + len(answer_ids) - config.max_len
        if excess <= 0:
            break
        words = tokenizer(human, add_special_tokens=False)["input_ids"]
        keep = len(words) - excess
        if keep < 8 or truncated:
            raise ValueError(f"record {record['id']}: its prompt ({len(ids)} tokens with the image's) cannot fit "
                             f"max_len {config.max_len} with a {len(answer_ids)}-token answer: raise max_len")
        human = tokenizer.decode(words[: keep // 2] + words[len(words) - (keep - keep // 2):])
        truncated = excess
    n = len(ids)
    tokens = {k: enc[k][0].tolist() + [0] * len(answer_ids) for k in TOKEN_KEYS if k in enc}
    text_side = {k: enc[k][0] for k in enc if k.startswith("qformer_")}
    image_keys = [k for k in enc if k not in ("input_ids", "attention_mask", *TOKEN_KEYS, *text_side)]
    return {"ids": ids + answer_ids, "labels": [-100] * n + answer_ids, "tokens": tokens, "text_side": text_side,
            "image_keys": image_keys, "truncated": truncated}


def collate(items: list[dict], pixels: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded (batch, longest) ids / attention mask / labels / per-token extras; text-side
    extras (InstructBLIP's Q-Former prompt) padded and stacked; per-image outputs (``pixels``, one
    dict per item with an image) concatenated along their first dimension."""
    n = max(len(it["ids"]) for it in items)
    batch = {"input_ids": torch.full((len(items), n), pad_id, dtype=torch.long),
             "attention_mask": torch.zeros((len(items), n), dtype=torch.long),
             "labels": torch.full((len(items), n), -100, dtype=torch.long)}
    for key in items[0]["tokens"]:
        batch[key] = torch.zeros((len(items), n), dtype=torch.long)
    for row, it in enumerate(items):
        k = len(it["ids"])
        batch["input_ids"][row, :k] = torch.tensor(it["ids"])
        batch["attention_mask"][row, :k] = 1
        batch["labels"][row, :k] = torch.tensor(it["labels"])
        for key, values in it["tokens"].items():
            batch[key][row, :k] = torch.tensor(values)
    for key in items[0]["text_side"]:
        m = max(len(it["text_side"][key]) for it in items)
        batch[key] = torch.zeros((len(items), m), dtype=torch.long)
        for row, it in enumerate(items):
            batch[key][row, : len(it["text_side"][key])] = it["text_side"][key]
    for key in (pixels[0] if pixels else {}):
        batch[key] = torch.cat([p[key] for p in pixels])     # pixel_values: (images, ...) or (patches, dim)
    return batch
