"""The FAISS retrieval memory (save / load / add / stamp) and RKC against hand computations."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("faiss", reason="the retrieval extra (faiss-cpu) is needed")

from somelvlm.retrieval import EncoderMismatch, MemoryIndex, rkc_predict, rkc_scores  # noqa: E402

STAMP = {"encoders": {"image": "efficientnet_lite0|a", "text": "minilm|b"}, "head_digest": "0123", "embedding": "g"}


def memory(kind="flat"):
    vectors = np.array([[1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0.2, 0.9, 0.1]], np.float32)
    meta = {"id": ["a", "b", "c", "d"], "label": ["real", "real", "fake", "fake"], "task": ["verify_post"] * 4,
            "source": ["t"] * 4, "text": ["x", "y", "z", "w"]}
    return MemoryIndex.build(vectors, meta, STAMP, kind=kind)


def test_rkc_scores_by_hand():
    sims = np.array([[0.9, 0.8, 0.5], [0.7, 0.6, 0.0]], np.float32)
    labels = np.array([[1, 0, 1], [0, 1, -1]])  # -1: a missing neighbour
    s = rkc_scores(sims, labels, 2)
    assert s[0, 1] == pytest.approx((3 * 0.9 - 2 * 0.8 + 1 * 0.5) / 6)
    assert s[1, 1] == pytest.approx((-3 * 0.7 + 2 * 0.6) / 5)
    np.testing.assert_allclose(s[:, 0], -s[:, 1])
    multi = rkc_scores(np.array([[1.0, 1.0]]), np.array([[2, 0]]), 3)
    assert multi[0].argmax() == 2 and multi[0, 1] == pytest.approx(-1.0)


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_save_load_search_and_exclude(tmp_path, kind):
    memory(kind).save(tmp_path / "idx")
    assert {p.name for p in (tmp_path / "idx").iterdir()} == {"index.faiss", "meta.parquet", "stamp.json"}
    idx = MemoryIndex.load(tmp_path / "idx", expect=STAMP)
    assert len(idx) == 4 and idx.meta["label"] == ["real", "real", "fake", "fake"] and idx.stamp["kind"] == kind
    sims, pos = idx.search(np.array([[1, 0, 0]], np.float32), 2)
    assert pos[0].tolist() == [0, 1] and sims[0, 0] == pytest.approx(1.0)
    _, pos = idx.search(np.array([[1, 0, 0]], np.float32), 2, exclude=["a"])
    assert pos[0].tolist() == [1, 3]  # the item itself is never its own neighbour
    _, pos = idx.search(np.array([[1, 0, 0]], np.float32), 6)
    assert pos[0].tolist()[4:] == [-1, -1]  # padded when the index is small


def test_mismatched_encoder_is_refused(tmp_path):
    memory().save(tmp_path / "idx")
    other = {**STAMP, "encoders": {"image": "efficientnet_lite0|a", "text": "e5|c"}}
    with pytest.raises(EncoderMismatch, match="different encoder.*text.*minilm"):
        MemoryIndex.load(tmp_path / "idx", expect=other)
    with pytest.raises(EncoderMismatch, match="head_digest"):
        MemoryIndex.load(tmp_path / "idx", expect={**STAMP, "head_digest": "ffff"})
    with pytest.raises(FileNotFoundError, match="not a retrieval index"):
        MemoryIndex.load(tmp_path)


def test_adding_labelled_items_changes_predictions_without_retraining(tmp_path):
    idx = memory()
    query = np.array([[0.5, 0.5, 1.0]], np.float32)
    before = rkc_predict(idx, query, ["real", "fake"], k=2)[0]
    idx.add(np.array([[0.45, 0.5, 1.0], [0.5, 0.45, 1.0]], np.float32),
            {"id": ["new1", "new2"], "label": ["real", "real"]})
    idx.save(tmp_path / "idx")
    after = rkc_predict(MemoryIndex.load(tmp_path / "idx"), query, ["real", "fake"], k=2)[0]
    assert after["label"] == "real" and set(after["neighbours"][:2]) == {"new1", "new2"}
    assert after["score"] < before["score"]  # score is the evidence for "fake"
    with pytest.raises(ValueError, match="already in the index"):
        idx.add(np.ones((1, 3), np.float32), {"id": ["a"], "label": ["real"]})
    with pytest.raises(ValueError, match="dimension"):
        idx.add(np.ones((1, 4), np.float32), {"id": ["z"], "label": ["real"]})
    with pytest.raises(ValueError, match="label"):
        idx.add(np.ones((1, 3), np.float32), {"id": ["z"], "label": [""]})
