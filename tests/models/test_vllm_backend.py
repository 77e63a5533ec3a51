"""The in-process vLLM generator: registered as a backend; on a CUDA machine with vLLM it answers like
HF ``generate`` (greedy) on the same prompts. Skips with the reason elsewhere."""

from __future__ import annotations

import pytest

from somelvlm.models import BACKENDS
from somelvlm.models.vllm_backend import vllm_available


def test_vllm_is_a_registered_backend_and_says_why_it_cannot_run():
    assert "vllm" in BACKENDS
    reason = vllm_available()
    if reason is None:
        pytest.skip("vLLM can run here: the GPU test below covers it")
    from somelvlm.models.vllm_backend import VLLMGenerator

    with pytest.raises(RuntimeError, match="vLLM|CUDA|torch"):
        VLLMGenerator("any-model")


@pytest.mark.gpu
@pytest.mark.skipif(vllm_available() is not None, reason=str(vllm_available()))
def test_vllm_matches_hf_generate_greedy(tmp_path):
    from gen_helpers import make_tiny_lm

    from somelvlm.models.base import GenerationConfig
    from somelvlm.models.vllm_backend import VLLMGenerator

    folder = make_tiny_lm(tmp_path / "lm")
    answers = VLLMGenerator(str(folder), gpu_memory_utilization=0.2).generate(
        ["hello", "rewrite politely: shut up"], config=GenerationConfig(max_new_tokens=8))
    assert len(answers) == 2 and all(isinstance(a, str) for a in answers)
