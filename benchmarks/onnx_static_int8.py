"""Experiment behind the runtime choice: ONNX Runtime STATIC int8 vs ONNX Runtime fp32 for SoMe-mini.

    python benchmarks/onnx_static_int8.py   # ~10 min on 2 loaded cores; writes results/onnx_static_int8.json

Static int8 (onnxruntime.quantization.quantize_static, QOperator, per-channel weights, MatMul only, MinMax
calibration on 400 TRAIN tweets: 80 each of emotion, hate, irony, offensive, sentiment) has fixed
activation scales, hence is batch-invariant like fp32. Measured here: posts/s of both (1 thread,
1000 TweetEval sentiment test tweets, alternating, 2 rounds), batch-64 vs batch-1 flips on 200 emotion
test tweets, and the TweetEval five-task VAL score (never test) of both. Not the default: see the md.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

OUT = Path(__file__).parent / "results"
DATA = Path(os.environ.get("SOMELVLM_DATA", "../shared/data"))
FIVE = ["emotion", "hate", "irony", "offensive", "stance"]
CALIBRATION = ["emotion", "hate", "irony", "offensive", "sentiment"]


def static_int8(src: Path, dst: Path, calib: list[str], tok, max_length: int) -> None:
    """Quantize the fp32 export ``src`` to ``dst`` with activation scales fixed on ``calib`` (train tweets)."""
    from onnxruntime.quantization import quantize_static, CalibrationDataReader, QuantFormat, QuantType
    from onnxruntime.quantization.shape_inference import quant_pre_process
    pre = dst.with_suffix(".pre.onnx")
    quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([dict(tok(calib[i:i+16], padding=True, truncation=True, max_length=max_length, return_tensors="np")) for i in range(0, len(calib), 16)])
        def get_next(self):
            b = next(self.batches, None)
            return None if b is None else {k: v.astype(np.int64) for k, v in b.items() if k in ("input_ids", "attention_mask")}
    quantize_static(str(pre), str(dst), Reader(), quant_format=QuantFormat.QOperator,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=["MatMul"], extra_options={"ActivationSymmetric": False})


def main() -> None:
    import torch

    from somelvlm.evaluate.harness import evaluate_model
    from somelvlm.models.compact import CompactModel
    from somelvlm.models.onnx_encoder import OnnxEncoder
    from somelvlm.data.head_items import load_items

    torch.set_num_threads(1)
    m = CompactModel(runtime="onnx", threads=1)
    quantized = m.onnx.path.with_name(m.onnx.path.stem + "-static-int8.onnx")
    if not quantized.is_file():
        train = load_items(DATA, CALIBRATION)
        rng = np.random.default_rng(0)
        calib = [train[t]["train"][k].text for t in CALIBRATION
                 for k in rng.choice(len(train[t]["train"]), 80, replace=False)]
        static_int8(m.onnx.path, quantized, calib, m.tokenizer, m.max_length)
    fp32, int8 = m.onnx, OnnxEncoder(quantized, 1)
    res = {"loadavg_start": os.getloadavg()[0], "calibration": "400 train tweets (80 each from emotion, hate, irony, offensive, sentiment train), MinMax, QOperator, per-channel, MatMul only"}
    sent = [t for t in (DATA / "tweeteval/datasets/sentiment/test_text.txt").read_text().splitlines() if t.strip()][:1000]
    for r in range(2):
        for name, sess in (("onnx_fp32", fp32), ("onnx_static_int8", int8)):
            m.onnx = sess; m.predict(sent[:64]); t = time.perf_counter(); m.predict(sent)
            res.setdefault(name, {})[f"posts_per_s_round{r}"] = round(len(sent) / (time.perf_counter() - t), 1)
            print(name, res[name], flush=True)
    items = load_items(DATA, ["emotion"])["emotion"]["test"][:200]
    em = [it.text for it in items]
    for name, sess in (("onnx_fp32", fp32), ("onnx_static_int8", int8)):
        m.onnx = sess; m.batch_size = 64; a = m.predict_proba(em, ["emotion"])["emotion"]
        m.batch_size = 1; b = m.predict_proba(em, ["emotion"])["emotion"]; m.batch_size = 64
        res[name]["flips_b64_vs_b1"] = int((a.argmax(1) != b.argmax(1)).sum()); res[name]["max_dp_b64_vs_b1"] = float(np.abs(a - b).max())
        print(name, res[name], flush=True)
    for name, sess in (("onnx_fp32", fp32), ("onnx_static_int8", int8)):
        m.onnx = sess
        ev = evaluate_model(m, FIVE, DATA, "val")
        res[name]["val"] = ev
        print(name, "val", ev.get("tweeteval_five"), {t: ev["tasks"][t] for t in FIVE}, flush=True)
    res["loadavg_end"] = os.getloadavg()[0]
    (OUT / "onnx_static_int8.json").write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
