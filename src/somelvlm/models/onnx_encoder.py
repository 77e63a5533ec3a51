"""The compact model's encoder under ONNX Runtime: fast on CPU and batch-invariant.

Why: torch's dynamic int8 quantization computes one activation scale per input tensor, i.e. over
the whole padded batch, so a post's probabilities depended on its batch neighbours. ONNX Runtime in
fp32 has no such coupling (every row is computed on its own; padding is masked) and runs the
encoder about as fast as torch's int8 on this CPU (``benchmarks/speed.py``).

The merged encoder (``input_ids``, ``attention_mask`` -> mean-pooled embedding) is exported once
with ``torch.onnx.export`` into a local cache keyed by a digest of its weights
(``$SOMELVLM_CACHE/onnx`` or ``~/.cache/somelvlm/onnx``); it is never shipped (about 90 MB).
Needs ``onnxruntime`` plus ``onnx`` (and ``onnxscript`` for the dynamo exporter):
``pip install 'somelvlm[onnx]'``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from somelvlm.atomic import atomic_path
from somelvlm.digests import export_state_digest

EXPORT_VERSION = "1"
"""Bumped when the exported graph changes (inputs, pooling, opset), so stale cache entries are not reused."""
OPSET = 17


def cache_dir() -> Path:
    """Where exported encoders live: ``$SOMELVLM_CACHE/onnx``, else ``~/.cache/somelvlm/onnx``."""
    root = os.environ.get("SOMELVLM_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "somelvlm") / "onnx"


def onnx_available() -> bool:
    """True when onnxruntime can be imported (the runtime ``auto`` picks ONNX then)."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def export_path(encoder, cache: Path | None = None) -> Path:
    """Where ``encoder``'s export lives: ``encoder-<export_state_digest>.onnx`` in the cache."""
    digest = export_state_digest(encoder, f"somelvlm-onnx-v{EXPORT_VERSION}-opset{OPSET}")
    return Path(cache or cache_dir()) / f"encoder-{digest}.onnx"


class _Pooled:
    """The graph to export: encoder + mean pooling, (batch, seq) ids and mask -> (batch, dim)."""

    @staticmethod
    def build(encoder):
        import torch

        from somelvlm.models.encoder import mean_pool

        class Pooled(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.encoder = encoder

            def forward(self, input_ids, attention_mask):
                hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
                return mean_pool(hidden, attention_mask)  # (batch, dim)

        return Pooled().eval()


def export_encoder(encoder, path: Path) -> Path:
    """Export ``encoder`` (a transformers BERT-style model, eval mode) with mean pooling to ``path``,
    atomically. Tries the legacy TorchScript exporter first, then ``dynamo=True``."""
    import torch

    try:
        import onnx  # noqa: F401 - torch.onnx.export needs it
    except ImportError:
        raise ImportError("exporting the encoder to ONNX needs the onnx package: pip install 'somelvlm[onnx]'") from None
    model = _Pooled.build(encoder)
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.long)  # (2, 4)
    mask = (ids != 0).long()  # (2, 4)
    errors = []
    with atomic_path(path) as tmp:
        for dynamo in (False, True):
            try:
                _export(model, (ids, mask), tmp, dynamo)
                break
            except Exception as err:  # noqa: BLE001 - the other exporter gets its chance; both errors are reported
                errors.append(f"{'dynamo' if dynamo else 'legacy'} exporter: {type(err).__name__}: {str(err)[:300]}")
        else:
            raise RuntimeError("could not export the encoder to ONNX; " + "; ".join(errors))
    return path


def _export(model, args, path: Path, dynamo: bool) -> None:
    import warnings

    import torch

    names = {"input_names": ["input_ids", "attention_mask"], "output_names": ["embedding"]}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        if not dynamo:
            torch.onnx.export(model, args, str(path), dynamo=False, opset_version=OPSET, **names,
                              dynamic_axes={"input_ids": {0: "batch", 1: "seq"},
                                            "attention_mask": {0: "batch", 1: "seq"}, "embedding": {0: "batch"}})
        else:
            batch, seq = torch.export.Dim("batch", min=1), torch.export.Dim("seq", min=1)
            program = torch.onnx.export(model, args, dynamo=True, opset_version=OPSET, **names,
                                        dynamic_shapes={"input_ids": {0: batch, 1: seq},
                                                        "attention_mask": {0: batch, 1: seq}})
            program.save(str(path), external_data=False)


class OnnxEncoder:
    """The exported encoder in an ONNX Runtime session: ``embed(ids, mask)`` -> (batch, dim) float32.

    Full graph optimizations; ``threads`` intra-op threads (one inter-op thread) that sleep instead of
    spinning between calls (spinning threads steal the cores of a shared machine)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError("the onnx runtime needs onnxruntime: pip install 'somelvlm[onnx]'") from None
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = int(threads or 0)  # 0: onnxruntime's default (all cores)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy-waiting on shared CPUs
        self.path = Path(path)
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}

    def embed(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """``input_ids``, ``attention_mask`` (batch, seq) int64 -> pooled embeddings (batch, dim)."""
        feed = {"input_ids": np.ascontiguousarray(input_ids, dtype=np.int64),
                "attention_mask": np.ascontiguousarray(attention_mask, dtype=np.int64)}
        return self.session.run(["embedding"], {k: v for k, v in feed.items() if k in self.inputs})[0]


def load_onnx_encoder(encoder, threads: int | None = None, cache: Path | None = None) -> OnnxEncoder:
    """An ``OnnxEncoder`` for the torch ``encoder``, exporting it into the cache on first use."""
    if not onnx_available():
        raise ImportError("the onnx runtime needs onnxruntime: pip install 'somelvlm[onnx]'")
    path = export_path(encoder, cache)
    if not path.is_file():
        export_encoder(encoder, path)
    return OnnxEncoder(path, threads)
