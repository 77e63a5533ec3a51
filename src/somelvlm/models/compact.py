"""SoMe-mini: the compact multi-task classifier (encoder + LoRA adapter + one head per task).

On disk (a folder, e.g. ``somelvlm/assets/some-mini``)::

    config.json        encoder name + weights digest, LoRA settings, heads, max_length
    model.safetensors  LoRA weights (``lora.*``, fp16) and head weights (``head.<task>.*``)
    README.md          the model card (Hub front matter): data, config, training time, metrics

The encoder's base weights come from a package (or a local folder / hub id); the adapter refuses
to load on a base whose weights digest differs from the one it was trained on.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from somelvlm.models import ASSETS  # noqa: F401 - re-exported
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


def load_net(folder: Path, encoder_override: str | None = None):
    """``(tokenizer, net, config)`` with the adapter merged into the encoder, in eval mode."""
    import torch
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file

    from somelvlm.models.encoder import encoder_digest as weights_digest, load_encoder
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
                                                 target_modules=lora["targets"], lora_dropout=0.0))
    tensors = load_file(str(folder / "model.safetensors"))
    lora_sd = {k[5:]: v.float() for k, v in tensors.items() if k.startswith("lora.")}
    set_peft_model_state_dict(peft_model, lora_sd)
    encoder = peft_model.merge_and_unload()
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
        self.max_length = int(self.config["max_length"])
        self.batch_size = batch_size

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

    def predict_proba(self, texts: list, tasks: list[str] | None = None) -> dict[str, np.ndarray]:
        """``task -> array``: (n, labels) probabilities, (n, groups, labels) for stance, (n,) ratings.
        ``texts``: strings, or posts whose ``text`` the pipeline has read."""
        import torch

        from somelvlm.models.base import texts_of

        texts = texts_of(texts)

        tasks = tasks or self.tasks
        unknown = [t for t in tasks if t not in self.specs]
        if unknown:
            from somelvlm.registry import unknown as unknown_error

            raise unknown_error("task of this model", unknown[0], self.specs)
        emb = torch.from_numpy(self.embed(texts))
        result = {}
        with torch.inference_mode():
            for task in tasks:
                out = self.net.head(task, emb)
                result[task] = (out if self.specs[task].kind == "regression" else out.softmax(-1)).numpy()
        return result

    def predict(self, texts: list[str], tasks: list[str] | None = None) -> list[dict]:
        """One dict per text: ``{task: {"label", "prob", "probs"}}``, ``{"value"}`` for ratings, and
        for stance ``{"targets": {topic: {"label", "prob", "probs"}}}`` (``models.base.format_prediction``)."""
        from somelvlm.models.base import format_prediction

        start = time.perf_counter()
        probs = self.predict_proba(texts, tasks)
        rows: list[dict] = [{task: format_prediction(self.specs[task], arr[i]) for task, arr in probs.items()}
                            for i in range(len(texts))]
        self.last_seconds = time.perf_counter() - start
        return rows
