"""Fixtures of the server tests: a tiny compact classifier and a tiny generator built from configs,
and servers started on free loopback ports (uvicorn in a thread) and stopped after use."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("prometheus_client")
pytest.importorskip("httpx")

TINY_TASKS = ("emotion", "irony", "hate", "stance", "humor_rating", "emoji", "offense_rating", "sarcasm_type",
              "verify_post")


@pytest.fixture(scope="session")
def tiny_model(tiny_encoder, tmp_path_factory):
    """A compact model folder: tiny random encoder + LoRA + heads for TINY_TASKS."""
    from peft import LoraConfig, get_peft_model

    from somelvlm.models.compact import save_compact
    from somelvlm.models.encoder import encoder_digest, load_encoder
    from somelvlm.models.heads import MultiTaskNet
    from somelvlm.taxonomy.heads import head_spec

    lora = {"r": 4, "alpha": 8, "targets": ["query", "value"]}
    _, base = load_encoder(str(tiny_encoder))
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=lora["targets"]))
    specs = [head_spec(t) for t in TINY_TASKS]
    net = MultiTaskNet(peft_model, specs).eval()
    folder = tmp_path_factory.mktemp("tiny-compact") / "tiny-mini"
    save_compact(net, specs, folder, encoder=str(tiny_encoder), encoder_digest=encoder_digest(str(tiny_encoder)),
                 lora=lora, max_length=64)
    return folder


@pytest.fixture(scope="session")
def tiny_analyzer(tiny_model):
    from somelvlm.analysis import Analyzer

    return Analyzer(tiny_model, int8=False, ocr=False)


@pytest.fixture(scope="session")
def tiny_generator(tmp_path_factory):
    from tiny_generator import make_tiny_llama

    from somelvlm.models.generation import load_generator

    folder = make_tiny_llama(tmp_path_factory.mktemp("tiny-llama") / "tiny-llama")
    return load_generator(str(folder))


@pytest.fixture(scope="module")
def start_server():
    """``start_server(analyzer, generator=None, **config) -> BackgroundServer``; all stopped at the end."""
    from somelvlm.serve.app import create_app
    from somelvlm.serve.config import ServeConfig
    from somelvlm.serve.server import BackgroundServer

    started = []

    def start(analyzer, generator=None, **options):
        config = ServeConfig(**options)
        server = BackgroundServer(create_app(config, analyzer=analyzer, generator=generator), config).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def server(start_server, tiny_analyzer, tiny_generator):
    """The tiny classifier and generator behind a server with default limits."""
    return start_server(tiny_analyzer, tiny_generator)


@pytest.fixture(scope="module")
def bare_server(start_server, tiny_analyzer):
    """The tiny classifier only (no generator)."""
    return start_server(tiny_analyzer)


@pytest.fixture(scope="session")
def shipped_analyzer():
    """The shipped SoMe-mini in fp32, as `somelvlm serve` runs it by default."""
    from somelvlm.analysis import Analyzer

    try:
        return Analyzer("some-mini", int8=False, ocr=True)
    except (ImportError, FileNotFoundError) as err:
        pytest.skip(f"the shipped model cannot load here: {err}")
