"""CTranslate2 decoding of a causal LM's text prompts: the fast CPU runtime of the ``lvlm`` backend.

Hugging Face ``generate`` spends most of a small decoder's step outside the weight reads (about
56 ms per token for SmolLM2-135M on 2 cores, 4x the memory-bandwidth bound); CTranslate2 runs the
same weights (float32, converted once) at 2-3x the rate. A prompt with an image still goes through
torch: CTranslate2 cannot take the connector's image embeddings.

The converted model is never shipped (about 0.5 GB in float32): it is written on first use into
``$SOMELVLM_CACHE/ctranslate2`` (else ``~/.cache/somelvlm/ctranslate2``) under a digest of the
merged weights, the converter's version and the compute type; nothing is downloaded.

CTranslate2 forwards a batch's prompts at once only up to the shortest one and decodes the rest
token by token, so ``generate`` groups prompts of nearly equal length (``max_spread`` tokens) into
one call each; the prefix all prompts of a request share (the chat template's system turn, a task's
instruction) is forwarded once and cached as CTranslate2's static prompt.

>>> decoder = CT2Decoder.for_model(lm, tokenizer, threads=2)                  # doctest: +SKIP
>>> decoder.generate([ids], GenerationConfig(max_new_tokens=24))              # doctest: +SKIP
[Generated(text='...', prompt_tokens=44, completion_tokens=12, finish_reason='stop')]
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from somelvlm.digests import export_state_digest
from somelvlm.models.base import Generated, GenerationConfig
from somelvlm.models.decoding import cut_at_stop

log = logging.getLogger(__name__)

COMPUTE_TYPE = "float32"
"""int8 was slower than float32 on this CPU (no VNNI) and bfloat16 is refused by CTranslate2 here."""
CONVERT_VERSION = "1"
"""Bumped when what is converted changes, so stale cache entries are not reused."""


def ct2_available() -> bool:
    """True when ctranslate2 imports (the runtime ``auto`` picks it then)."""
    try:
        import ctranslate2  # noqa: F401
    except ImportError:
        return False
    return True


def cache_dir() -> Path:
    """Where converted decoders live: ``$SOMELVLM_CACHE/ctranslate2``, else ``~/.cache/somelvlm/ctranslate2``."""
    root = os.environ.get("SOMELVLM_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "somelvlm") / "ctranslate2"


def converted_path(lm, cache: Path | None = None) -> Path:
    """Where ``lm``'s conversion lives: ``lm-<digest of its state, converter version, compute type>``."""
    import ctranslate2

    digest = export_state_digest(lm, f"somelvlm-ct2-v{CONVERT_VERSION}-{ctranslate2.__version__}-{COMPUTE_TYPE}")
    return Path(cache or cache_dir()) / f"lm-{digest}"


def convert(lm, tokenizer, cache: Path | None = None) -> Path:
    """The CTranslate2 folder for the (merged) HF causal LM ``lm``, converting it on first use:
    saved as safetensors to a temporary folder, converted, then moved into place atomically."""
    from ctranslate2.converters import TransformersConverter

    from somelvlm.atomic import atomic_dir

    out = converted_path(lm, cache)
    if (out / "model.bin").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    log.info("converting the language model for CTranslate2 into %s (once)", out)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".hf-") as hf, atomic_dir(out) as tmp:
        lm.save_pretrained(hf, safe_serialization=True)
        tokenizer.save_pretrained(hf)
        TransformersConverter(hf, low_cpu_mem_usage=True).convert(str(tmp), quantization=COMPUTE_TYPE, force=True)
        _name_special_tokens(tmp / "config.json", tokenizer, lm.config)
    return out


def _name_special_tokens(config_file: Path, tokenizer, lm_config) -> None:
    """Fill the special tokens the converter left null (a tokenizer without BOS / EOS / UNK, e.g. a
    WordPiece one): CTranslate2 refuses to load them. We pass the end tokens on every call anyway."""
    import json

    config = json.loads(config_file.read_text(encoding="utf-8"))
    ids = {"bos_token": lm_config.bos_token_id, "eos_token": lm_config.eos_token_id, "unk_token": None}
    for key, token_id in ids.items():
        if config.get(key) is None:
            token_id = token_id[0] if isinstance(token_id, list) else token_id
            config[key] = tokenizer.convert_ids_to_tokens(token_id if isinstance(token_id, int) else 0)
    config_file.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def length_groups(lengths: Sequence[int], max_batch: int, max_spread: int) -> list[list[int]]:
    """Indices of ``lengths`` grouped for one call each: sorted by length, a group holds at most
    ``max_batch`` prompts whose lengths differ by at most ``max_spread`` tokens."""
    groups: list[list[int]] = []
    for i in sorted(range(len(lengths)), key=lambda k: lengths[k]):
        if groups and len(groups[-1]) < max_batch and lengths[i] - lengths[groups[-1][0]] <= max_spread:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


MIN_PREFIX = 16
"""Prompts of one call that share at least this many leading tokens (the chat template's system turn,
a task's instruction) get that prefix forwarded once and its state cached (CTranslate2's static prompt)."""


def shared_prefix(prompts: Sequence[Sequence[int]]) -> int:
    """Length of the token prefix every prompt shares, leaving each at least one token of its own."""
    n = min(len(p) for p in prompts) - 1
    first = prompts[0]
    for k in range(max(n, 0)):
        if any(p[k] != first[k] for p in prompts):
            return k
    return max(n, 0)


class _Rows:
    """Per-row state during one ``generate_batch`` call: tokens so far, and why a row stopped early
    (a stop string, a cancel event); feeds the streaming callback of a single row."""

    def __init__(self, tokenizer, n: int, stop: Sequence[str], eos: set[int],
                 cancel: Sequence[threading.Event | None], on_text: Callable[[str], None] | None) -> None:
        self.tokenizer, self.stop, self.eos, self.on_text = tokenizer, tuple(stop), eos, on_text
        self.cancel = list(cancel) + [None] * (n - len(cancel))
        self.tokens: list[list[int]] = [[] for _ in range(n)]
        self.stopped: dict[int, str] = {}
        self.streamed = ""
        self.window = 4 * max((len(s) for s in self.stop), default=0) + 8

    def step(self, row: int, token: int) -> bool:
        """Record ``token`` for ``row``; True stops the row (CTranslate2's callback contract)."""
        ids = self.tokens[row]
        ids.append(token)
        event = self.cancel[row]
        if event is not None and event.is_set():
            self.stopped[row] = "cancel"
            return True
        if self.on_text is not None and token not in self.eos:
            self._stream(ids)
        if self.stop and token not in self.eos:
            tail = self.tokenizer.decode(ids[-self.window:], skip_special_tokens=True)
            if any(s in tail for s in self.stop):
                self.stopped[row] = "stop"
                return True
        return False

    def _stream(self, ids: list[int]) -> None:
        """Hand over the answer's new text, holding back an incomplete UTF-8 character."""
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return
        text, _ = cut_at_stop(text, self.stop) if self.stop else (text, False)
        if len(text) > len(self.streamed) and text.startswith(self.streamed):
            self.on_text(text[len(self.streamed):])
            self.streamed = text

    def result(self, row: int, prompt_tokens: int, max_new_tokens: int) -> Generated:
        """The row's answer: text before an end token or stop string, its counts and finish reason."""
        ids = self.tokens[row]
        end = next((i for i, t in enumerate(ids) if t in self.eos), None)
        body = ids[:end] if end is not None else ids
        text, hit = cut_at_stop(self.tokenizer.decode(body, skip_special_tokens=True), self.stop)
        if self.on_text is not None and len(text) > len(self.streamed) and text.startswith(self.streamed):
            self.on_text(text[len(self.streamed):])
        if row in self.stopped or end is not None or hit:
            reason = "stop"
        else:
            reason = "length" if len(ids) >= max_new_tokens else "stop"
        count = end + 1 if end is not None else len(ids)
        return Generated(text.strip(), prompt_tokens, count, reason)


class CT2Decoder:
    """Greedy or sampled decoding of token-id prompts with a CTranslate2 ``Generator`` (CPU)."""

    def __init__(self, folder: str | Path, tokenizer, threads: int | None = None, eos: set[int] | None = None,
                 max_batch: int = 8, max_spread: int = 8) -> None:
        import ctranslate2
        import torch

        self.tokenizer = tokenizer
        self.eos = set(eos) if eos else ({tokenizer.eos_token_id} - {None})
        self.max_batch, self.max_spread = max_batch, max_spread
        self.generator = ctranslate2.Generator(str(folder), device="cpu", compute_type=COMPUTE_TYPE,
                                               inter_threads=1, intra_threads=threads or torch.get_num_threads())
        self._lock = threading.Lock()

    @classmethod
    def for_model(cls, lm, tokenizer, cache: Path | None = None, **kwargs) -> CT2Decoder:
        """The decoder of an in-memory HF causal LM (converted into the cache on first use)."""
        return cls(convert(lm, tokenizer, cache), tokenizer, **kwargs)

    def generate(self, prompts: list[list[int]], config: GenerationConfig,
                 cancel: Sequence[threading.Event | None] | None = None,
                 on_text: Callable[[str], None] | None = None) -> list[Generated]:
        """One ``Generated`` per prompt (token ids, chat-formatted), in the order given. Sampling is
        not seeded (CTranslate2 decodes in its own thread): callers that need a seeded sample use torch."""
        if on_text is not None and len(prompts) != 1:
            raise ValueError(f"streaming takes one prompt at a time, got {len(prompts)}")
        cancel = list(cancel) if cancel is not None else []
        sampling = ({"sampling_topk": 0, "sampling_topp": config.top_p, "sampling_temperature": config.temperature}
                    if config.temperature > 0 else {"sampling_topk": 1})
        out: list[Generated | None] = [None] * len(prompts)
        with self._lock:  # one call at a time: the groups of one request stay together
            shared = shared_prefix(prompts) if len(prompts) > 1 else 0
            prefix = self.tokenizer.convert_ids_to_tokens(prompts[0][:shared]) if shared >= MIN_PREFIX else None
            start = shared if prefix else 0
            for group in length_groups([len(p) for p in prompts], self.max_batch, self.max_spread):
                rows = _Rows(self.tokenizer, len(group), config.stop, self.eos,
                             [cancel[i] if i < len(cancel) else None for i in group], on_text)
                tokens = [self.tokenizer.convert_ids_to_tokens(prompts[i][start:]) for i in group]
                self.generator.generate_batch(
                    tokens, max_length=config.max_new_tokens, include_prompt_in_result=False,
                    end_token=sorted(self.eos), return_end_token=True, static_prompt=prefix,
                    callback=lambda s, rows=rows: rows.step(s.batch_id, s.token_id), **sampling)
                for row, i in enumerate(group):
                    out[i] = rows.result(row, len(prompts[i]), config.max_new_tokens)
        return out  # type: ignore[return-value]
