"""The ``vllm`` backend: in-process ``vllm.LLM`` for batch generation on a GPU (the ``vllm`` extra).

For Hugging Face causal LMs and VLMs (LLaVA, Qwen2-VL, ...): a hub id or local folder, or a folder
that ``somelvlm train instruct`` wrote on an HF base (``backend: hf_vlm``: its base and its LoRA
adapter, served with vLLM's LoRA support). Prompts go through the model's chat template, images
as ``multi_modal_data``; answers are greedy unless the config samples. One engine per GPU: under
Ray Data (``batch.ray_engine``) give each actor one GPU (``num_gpus=1``).

For online serving the documented route is ``vllm serve MODEL`` plus our ``OpenAIGenerator``
(``--generator http://host:8000/v1#MODEL``), not this class.

>>> gen = VLLMGenerator("Qwen/Qwen2-VL-7B-Instruct")                    # doctest: +SKIP
>>> gen.generate(["Rewrite politely: shut up"], config=GenerationConfig(max_new_tokens=32))
"""

from __future__ import annotations

from pathlib import Path

from somelvlm.models.base import GenerationConfig


def vllm_available() -> str | None:
    """None when vLLM can run here, else the reason (for skips and errors)."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "vLLM needs a CUDA GPU (none here)"
    try:
        import vllm  # noqa: F401
    except ImportError as err:
        return f"vLLM is not installed: pip install 'somelvlm[vllm]' ({err})"
    return None


class VLLMGenerator:
    """A ``Generator`` over an in-process vLLM engine."""

    reads_images = True

    def __init__(self, model: str | Path, *, adapter: str | Path | None = None, name: str | None = None,
                 tensor_parallel_size: int = 1, dtype: str = "auto", max_model_len: int | None = None,
                 gpu_memory_utilization: float = 0.9, trust_remote_code: bool = False, seed: int = 0) -> None:
        reason = vllm_available()
        if reason:
            raise RuntimeError(reason)
        from vllm import LLM

        from somelvlm.models.hf_vlm import read_trained

        trained = read_trained(model)
        if trained is not None:  # base + adapter written by `train instruct` on an HF base
            adapter, model = Path(model) / trained.get("adapter", "adapter"), trained["base"]["name"]
            name = name or trained.get("name")
        self.adapter = str(adapter) if adapter else None
        self.llm = LLM(model=str(model), tensor_parallel_size=tensor_parallel_size, dtype=dtype,
                       max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization,
                       trust_remote_code=trust_remote_code, enable_lora=self.adapter is not None, seed=seed)
        self.tokenizer = self.llm.get_tokenizer()
        self.name = name or Path(str(model)).name

    def _prompt(self, prompt: str, image) -> dict:
        content = [{"type": "image"}, {"type": "text", "text": prompt}] if image is not None else prompt
        text = self.tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False,
                                                  add_generation_prompt=True)
        return {"prompt": text, **({"multi_modal_data": {"image": image}} if image is not None else {})}

    def generate(self, prompts: list[str], images: list | None = None,
                 config: GenerationConfig | None = None) -> list[str]:
        """One answer per prompt (vLLM schedules the whole list with continuous batching)."""
        from vllm import SamplingParams

        from somelvlm.models.generation import paired_images

        config = config or GenerationConfig()
        params = SamplingParams(max_tokens=config.max_new_tokens, temperature=config.temperature,
                                top_p=config.top_p if config.temperature > 0 else 1.0, seed=config.seed,
                                stop=list(config.stop) or None)
        lora = None
        if self.adapter:
            from vllm.lora.request import LoRARequest

            lora = LoRARequest(self.name, 1, self.adapter)
        requests = [self._prompt(p, img) for p, img in zip(prompts, paired_images(prompts, images))]
        outputs = self.llm.generate(requests, params, lora_request=lora, use_tqdm=False)
        return [o.outputs[0].text.strip() for o in outputs]
