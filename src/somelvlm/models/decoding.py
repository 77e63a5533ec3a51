"""What the local generators (``lvlm``, ``hf_vlm``) share around ``model.generate``: stop strings,
early cancel, token-by-token text for streaming, and each answer's token counts and finish reason.

>>> stopper = StopCriteria(tokenizer, stop=("\\n\\n",), prompt_len=0, rows=2)      # doctest: +SKIP
>>> out = lm.generate(..., stopping_criteria=StoppingCriteriaList([stopper]))      # doctest: +SKIP
>>> answers(tokenizer, out, prompt_tokens=[12, 9], eos_ids={2}, stopper=stopper, max_new_tokens=32)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import torch
from transformers import StoppingCriteria, TextStreamer

from somelvlm.models.generation import Generated


class StopCriteria(StoppingCriteria):
    """Ends a row of a batch once its generated text contains a stop string, or once its cancel
    event is set (the client left or timed out); remembers at which step each row stopped."""

    def __init__(self, tokenizer, stop: Sequence[str], prompt_len: int, rows: int,
                 cancel: Sequence[threading.Event | None] | None = None) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(stop)
        self.prompt_len = prompt_len
        self.cancel = list(cancel) if cancel is not None else [None] * rows
        self.stopped_at: dict[int, int] = {}
        """Row -> number of generated tokens when its stop string appeared (or it was cancelled)."""
        # tokens enough to hold the longest stop string (a token is at least one character, or a
        # piece of one for byte-level vocabularies)
        self.window = 4 * max((len(s) for s in self.stop), default=0) + 8

    def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
        """input_ids: (batch, prompt_len + generated) -> (batch,) bool, True where the row is done."""
        new = input_ids[:, self.prompt_len:]                                     # (batch, generated)
        done = torch.zeros(new.shape[0], dtype=torch.bool, device=input_ids.device)
        for row in range(new.shape[0]):
            event = self.cancel[row] if row < len(self.cancel) else None
            if row in self.stopped_at:
                done[row] = True
                continue
            if event is not None and event.is_set():
                self.stopped_at[row] = new.shape[1]
                done[row] = True
                continue
            if self.stop:
                tail = self.tokenizer.decode(new[row, -self.window:], skip_special_tokens=True)
                if any(s in tail for s in self.stop):
                    self.stopped_at[row] = new.shape[1]
                    done[row] = True
        return done


class CallbackStreamer(TextStreamer):
    """transformers' ``TextStreamer`` (decodes new tokens, hands over whole words) calling ``on_text``
    with each finished piece of the answer instead of printing it. Batch size 1 only."""

    def __init__(self, tokenizer, on_text: Callable[[str], None]) -> None:
        super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self.on_text = on_text

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        if text:
            self.on_text(text)


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``(text before the earliest stop string, whether one was found)``."""
    hits = [i for i in (text.find(s) for s in stop) if i >= 0]
    return (text[: min(hits)], True) if hits else (text, False)


def eos_ids(tokenizer, generation_config=None) -> set[int]:
    """Token ids that end an answer: the tokenizer's EOS and the model's generation config's."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    extra = getattr(generation_config, "eos_token_id", None)
    if extra is not None:
        ids |= set(extra) if isinstance(extra, (list, tuple)) else {extra}
    return ids


def answers(tokenizer, new_tokens: torch.Tensor, prompt_tokens: Sequence[int], eos: set[int],
            stopper: StopCriteria | None, max_new_tokens: int, stop: Sequence[str] = ()) -> list[Generated]:
    """One ``Generated`` per row of ``new_tokens`` (batch, generated): the decoded answer cut at a
    stop string and stripped, its token counts, and ``finish_reason`` (``length`` when the row ran
    to ``max_new_tokens`` without an end-of-answer token or a stop string)."""
    texts = tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    out = []
    for row, text in enumerate(texts):
        ids = new_tokens[row].tolist()
        text, hit = cut_at_stop(text, stop)
        stopped = stopper.stopped_at.get(row) if stopper is not None else None
        end = next((i for i, t in enumerate(ids) if t in eos), None)
        if stopped is not None and (end is None or stopped <= end):
            count, reason = stopped, "stop"
        elif end is not None:
            count, reason = end + 1, "stop"
        else:
            count = len(ids)
            reason = "stop" if hit or count < max_new_tokens else "length"
        out.append(Generated(text.strip(), int(prompt_tokens[row]), count, reason))
    return out
