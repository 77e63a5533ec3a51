"""SoMe-mini: the compact multi-task classifier (encoder + LoRA adapter + one head per task).

On disk (a folder, e.g. ``somelvlm/assets/some-mini``)::

    config.json        encoder name + weights digest, LoRA settings, heads, max_length
    model.safetensors  LoRA weights (``lora.*``, fp16) and head weights (``head.<task>.*``)
    README.md          the model card (Hub front matter): data, config, training time, metrics
    calibration.json   optional: per-head temperatures fit on validation (``models/calibration.py``)
    applicability.safetensors  optional: per-head domain classifiers and in-domain thresholds
                       (``models/applicability.py``); both written by ``benchmarks/fit_trust.py``

The encoder's base weights come from a package (or a local folder / hub id); the adapter refuses
to load on a base whose weights digest differs from the one it was trained on.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from somelvlm.models import ASSETS, withheld_heads
from somelvlm.models.applicability import Applicability
from somelvlm.models.calibration import Calibration
from somelvlm.taxonomy.heads import HeadSpec


class AdapterMismatchError(ValueError):
    """The adapter was trained on another base encoder than the one found."""


def save_compact(net, specs: list[HeadSpec], folder: Path, *, encoder: str, encoder_digest: str,
                 lora: dict, max_length: int, extra: dict | None = None) -> None:
    """Write the trainable part of ``net`` (LoRA + heads) and its config, atomically per file."""
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import save_file

    from somelvlm.atomic import atomic_path, atomic_write_text

    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"lora.{k}": v.detach().to(torch.float16).contiguous()
               for k, v in get_peft_model_state_dict(net.encoder).items()}
    for task, head in net.heads.items():
        tensors[f"head.{task}.weight"] = head.weight.detach().float().contiguous()
        tensors[f"head.{task}.bias"] = head.bias.detach().float().contiguous()
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"format": "somelvlm-compact-v1"})
    config = {"backend": "compact", "format": "somelvlm-compact-v1", "encoder": encoder,
              "encoder_digest": encoder_digest, "lora": lora, "max_length": max_length, "heads": [asdict(s) for s in specs], **(extra or {})}
    atomic_write_text(folder / "config.json", json.dumps(config, indent=1) + "\n")


def load_net(folder: Path, encoder_override: str | None = None, *, merge: bool = True, lora_dropout: float = 0.0):
    """``(tokenizer, net, config)`` with the adapter merged into the encoder, in eval mode; ``merge=False``
    keeps the adapter a trainable peft wrapper (``train.distil`` continues training it)."""
    import torch
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    from somelvlm.models.encoder import encoder_digest as weights_digest
    from somelvlm.models.encoder import load_encoder
    from somelvlm.models.heads import MultiTaskNet

    folder = Path(folder)
    from somelvlm.models import read_model_config

    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} holds no compact model (config.json missing)")
    config = read_model_config(folder)
    encoder_name = encoder_override or config["encoder"]
    digest = weights_digest(encoder_name)
    if digest != "unknown" and digest != config["encoder_digest"]:
        raise AdapterMismatchError(
            f"{folder} was trained on encoder {config['encoder']!r} (weights digest {config['encoder_digest']}), "
            f"but {encoder_name!r} has digest {digest}: install the base it needs")
    tokenizer, base = load_encoder(encoder_name)
    lora = config["lora"]
    peft_model = get_peft_model(base, LoraConfig(r=lora["r"], lora_alpha=lora["alpha"],
                                                 target_modules=lora["targets"], lora_dropout=lora_dropout))
    tensors = load_file(str(folder / "model.safetensors"))
    lora_sd = {k[5:]: v.float() for k, v in tensors.items() if k.startswith("lora.")}
    set_peft_model_state_dict(peft_model, lora_sd)
    encoder = peft_model.merge_and_unload() if merge else peft_model
    specs = [HeadSpec.from_dict(h) for h in config["heads"]]
    net = MultiTaskNet(encoder, specs)
    for task, head in net.heads.items():
        head.weight.data = tensors[f"head.{task}.weight"].float()
        head.bias.data = tensors[f"head.{task}.bias"].float()
    net.eval()
    torch.set_grad_enabled(True)
    return tokenizer, net, config


RUNTIMES = ("auto", "onnx", "torch", "torch-int8")
"""How ``CompactModel`` runs its encoder. ``auto`` (default): ``onnx`` when onnxruntime is installed, else
``torch`` with a one-line warning. ``onnx``: ONNX Runtime fp32 (fast, batch-invariant). ``torch``: torch fp32
(batch-invariant). ``torch-int8``: torch dynamic int8 (fast, but its activation scale is computed over the
whole padded batch, so a post's probabilities depend on its batch neighbours; explicit opt-in only)."""


class CompactModel:
    """Inference: texts in, per-task probabilities out; one encoder pass per post for all tasks.

    Length bucketing (posts sorted by length inside a batch window) keeps padding low. The default
    runtime (ONNX Runtime fp32, see ``RUNTIMES``) gives a post the same answer whatever else is in its
    batch; ``int8=True`` is the old torch dynamic int8 path (``runtime="torch-int8"``), batch-dependent.
    """

    def __init__(self, folder: Path | str | None = None, *, runtime: str = "auto", int8: bool = False,
                 threads: int | None = None, batch_size: int = 64, onnx_cache: Path | str | None = None) -> None:
        import torch

        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
        if int8:
            if runtime == "onnx":
                raise ValueError("int8=True is torch dynamic int8: pass runtime='torch-int8' (or 'auto'), not 'onnx'")
            runtime = "torch-int8"
        self.folder = Path(folder) if folder else ASSETS / "some-mini"
        self.name = self.folder.name
        self.modalities = frozenset({"text"})
        self.tokenizer, net, self.config = load_net(self.folder)
        if threads:
            torch.set_num_threads(threads)
        self.onnx = None
        if runtime in ("auto", "onnx"):
            runtime = self._start_onnx(net.encoder, runtime, threads, onnx_cache)
        if runtime == "torch-int8":
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                net.encoder = torch.ao.quantization.quantize_dynamic(net.encoder, {torch.nn.Linear},
                                                                     dtype=torch.qint8)
        self.runtime = runtime
        """The runtime in use: ``onnx``, ``torch`` or ``torch-int8`` (``auto`` resolved)."""
        self.net = net
        self.specs = net.specs
        self.withheld = withheld_heads(self.config, self.folder, self.specs)
        """``task -> reason`` of heads not served by default (``config.json`` ``withheld``)."""
        self.max_length = int(self.config["max_length"])
        self.batch_size = batch_size
        self.calibration = Calibration.load(self.folder)
        """Per-head temperatures (``calibration.json``), or None: probabilities are the raw softmax."""
        self.applicability = Applicability.load(self.folder)
        """Per-head reference sets and thresholds (``applicability.safetensors``), or None."""
        self._last: tuple[tuple[str, ...], np.ndarray] | None = None
        self._lock = threading.Lock()

    def _start_onnx(self, encoder, runtime: str, threads: int | None, cache) -> str:
        """Load (exporting on first use) the ONNX encoder; for ``auto``, fall back to torch with a warning."""
        import warnings

        import torch

        from somelvlm.models.onnx_encoder import load_onnx_encoder, onnx_available

        if runtime == "auto" and not onnx_available():
            warnings.warn("onnxruntime is not installed: SoMe-mini runs on torch fp32 (slower); "
                          "pip install 'somelvlm[onnx]' for the fast runtime", RuntimeWarning, stacklevel=3)
            return "torch"
        try:
            self.onnx = load_onnx_encoder(encoder, threads or torch.get_num_threads(), cache)
        except (ImportError, RuntimeError) as err:
            if runtime == "onnx":
                raise
            warnings.warn(f"ONNX runtime unavailable ({str(err)[:200]}): SoMe-mini runs on torch fp32 (slower)",
                          RuntimeWarning, stacklevel=3)
            return "torch"
        return "onnx"

    @property
    def tasks(self) -> list[str]:
        return list(self.specs)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Pooled embeddings (n, dim), in input order."""
        import torch

        out = np.zeros((len(texts), self.net.encoder.config.hidden_size), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        tensors = "np" if self.onnx is not None else "pt"
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                idx = order[start:start + self.batch_size]
                enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors=tensors)
                if self.onnx is not None:
                    out[idx] = self.onnx.embed(enc["input_ids"], enc["attention_mask"])  # (batch, dim)
                else:
                    out[idx] = self.net.embed(enc["input_ids"], enc["attention_mask"]).numpy()
        return out

    def _embeddings(self, texts: list) -> np.ndarray:
        """``embed(texts)``, memoized for the last call: ``predict_proba`` then ``domain_scores`` on the same
        texts cost one encoder pass. Thread-safe (the encoder runs outside the lock). ``texts``: strings,
        or posts whose ``text`` the pipeline has read."""
        from somelvlm.models.base import texts_of

        texts = texts_of(texts)
        key = tuple(texts)
        with self._lock:
            if self._last is not None and self._last[0] == key:
                return self._last[1]
        emb = self.embed(texts)
        emb.setflags(write=False)
        with self._lock:
            self._last = (key, emb)
        return emb

    def _check(self, tasks: list[str] | None) -> list[str]:
        tasks = tasks or self.tasks
        unknown = [t for t in tasks if t not in self.specs]
        if unknown:
            from somelvlm.registry import unknown as unknown_error

            raise unknown_error("task of this model", unknown[0], self.specs)
        return tasks

    def predict_proba(self, texts: list[str], tasks: list[str] | None = None, *,
                      calibrated: bool = True) -> dict[str, np.ndarray]:
        """``task -> array``: (n, labels) probabilities, (n, groups, labels) for stance, (n,) ratings.

        Classification probabilities are calibrated (``softmax(logits / T)`` with the head's validation-fit
        temperature) when the folder has ``calibration.json``; ``calibrated=False`` gives the raw softmax.
        """
        tasks = self._check(tasks)
        return self._proba(self._embeddings(texts), tasks, calibrated)

    def _proba(self, emb: np.ndarray, tasks: list[str], calibrated: bool) -> dict[str, np.ndarray]:
        """``predict_proba`` on embeddings (n, dim) already computed."""
        import torch

        emb = torch.from_numpy(np.array(emb))
        scale = self.calibration if calibrated else None
        result = {}
        with torch.inference_mode():
            for task in tasks:
                spec = self.specs[task]
                out = self.net.head(task, emb).numpy()
                if spec.kind == "regression":
                    result[task] = out
                    continue
                if scale is not None:
                    out = scale.scale(task, out, spec.groups)
                result[task] = torch.from_numpy(np.ascontiguousarray(out)).softmax(-1).numpy()
        return result

    def domain_scores(self, texts: list[str], tasks: list[str] | None = None) -> dict[str, np.ndarray]:
        """``task -> (n,)`` float32 domain scores in (0, 1): the head's domain classifier's probability that the
        post is like its training posts rather than other datasets' (``models/applicability.py``; higher =
        more within what the head was trained on). NaN for a head the folder has no applicability data for
        (``domain_threshold(task)`` is None then). A post with no text at all (an image alone) scores 0 for
        every head: there is nothing the text heads could have been trained on."""
        tasks = self._check(tasks)
        if self.applicability is None:
            return {t: np.full(len(texts), np.nan, dtype=np.float32) for t in tasks}
        return self._domain(self._embeddings(texts), tasks, texts)

    def _domain(self, emb: np.ndarray, tasks: list[str], texts: list | None = None) -> dict[str, np.ndarray]:
        """``domain_scores`` on embeddings (n, dim) already computed (of ``texts``, when given: empty ones score 0)."""
        from somelvlm.models.base import texts_of

        if self.applicability is None:
            return {t: np.full(len(emb), np.nan, dtype=np.float32) for t in tasks}
        empty = np.array([not t.strip() for t in texts_of(texts)], bool) if texts is not None else np.zeros(len(emb), bool)
        scores = {t: self.applicability.scores(t, emb) for t in tasks}
        for arr in scores.values():
            arr[empty] = 0.0
        return scores

    def domain_threshold(self, task: str) -> float | None:
        """The score at or above which a post is within ``task``'s domain, or None without applicability data."""
        return None if self.applicability is None else self.applicability.threshold(task)

    def predict(self, texts: list[str], tasks: list[str] | None = None) -> list[dict]:
        """One dict per text: ``{task: {"label", "prob", "probs"}}``, ``{"value"}`` for ratings, and
        for stance ``{"targets": {topic: {"label", "prob", "probs"}}}``; every task's dict also carries
        ``"in_domain"`` (bool) and ``"domain_score"`` (4 digits), both None without applicability data
        (``models.base.format_prediction``), and ``"modality": "text"`` (the route that answered, as the
        Pipeline writes it)."""
        from somelvlm.models.base import format_prediction

        start = time.perf_counter()
        tasks = self._check(tasks)
        emb = self._embeddings(texts)  # one encoder pass for the labels and the domain scores
        probs = self._proba(emb, tasks, calibrated=True)
        domain = self._domain(emb, tasks, texts)
        rows: list[dict] = [{} for _ in range(len(emb))]
        for task, arr in probs.items():
            threshold = self.domain_threshold(task)
            for i, row in enumerate(rows):
                score = float(domain[task][i])
                dom = (score, threshold) if threshold is not None and np.isfinite(score) else None
                row[task] = format_prediction(self.specs[task], arr[i], domain=dom, modality="text")
        self.last_seconds = time.perf_counter() - start
        return rows


def domain_fields(score: float, threshold: float | None) -> dict:
    """``{"in_domain": bool | None, "domain_score": float | None}`` of one prediction (score to 4 digits)."""
    if threshold is None or not np.isfinite(score):
        return {"in_domain": None, "domain_score": None}
    return {"in_domain": bool(score >= threshold), "domain_score": round(score, 4)}
