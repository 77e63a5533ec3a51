"""Everything the server can be told, as one typed dataclass shared by the CLI and the Python API."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

TOKEN_ENV = "SOMELVLM_API_TOKEN"
"""Environment variable read for the bearer token when ``--token`` is not given."""


@dataclass
class ServeConfig:
    """Options of ``somelvlm serve``; every limit has a safe default."""

    host: str = "127.0.0.1"
    """Interface to listen on; loopback by default (use 0.0.0.0 deliberately, with a token)."""
    port: int = 8000
    """TCP port."""
    model: str | None = None
    """Compact classifier: a shipped name or folder (default some-mini)."""
    generator: str | None = None
    """Generative model for /v1/generate and chat: a shipped name or folder (``load_generator``); none by default."""
    token: str | None = field(default=None, repr=False)
    """Bearer token required on /v1/* and /metrics; falls back to $SOMELVLM_API_TOKEN; None = open."""
    max_body_bytes: int = 16_000_000
    """Largest request body (base64 images count 4/3 of their size); larger bodies get 413."""
    max_image_pixels: int = 25_000_000
    """Largest image (width x height) decoded; larger ones get 413 before decoding."""
    request_timeout_s: float = 30.0
    """A request still working after this many seconds is answered 504."""
    body_timeout_s: float = 10.0
    """A client that pauses longer than this while sending its body gets 408 (slow clients)."""
    header_timeout_s: float = 10.0
    """A connection that has not sent complete request headers in this time is closed (slowloris)."""
    max_concurrency: int = 64
    """Requests processed at once on the model endpoints; more get 429 with Retry-After."""
    batch_wait_ms: float = 5.0
    """How long the micro-batcher waits for more concurrent requests before calling the model."""
    max_batch: int = 64
    """Most posts in one model call."""
    cors_origins: list[str] = field(default_factory=list, metadata={"flags": ["--cors-origin", "--cors-origins"]})
    """Origins allowed by CORS; empty (the default) means CORS is off."""
    runtime: Literal["auto", "onnx", "torch", "torch-int8"] = "auto"
    """SoMe-mini's encoder runtime: auto (onnx when onnxruntime is installed, else torch fp32), onnx,
    torch, or torch-int8 (~1.8x the throughput, but dynamic int8 quantizes each batch with its own
    scale, so a post's probabilities depend on the posts it is batched with: under load, on other
    users' requests). The fp32 runtimes give every post the same answer whatever else is in flight."""
    ocr: bool = True
    """Read the text off image-only posts (needs the features extra)."""
    withheld: bool = False
    """Also serve the heads the model withholds by default (no better than trivial baselines on validation)."""
    threads: int | None = None
    """torch CPU threads; None keeps torch's default."""
    max_new_tokens_limit: int = 512
    """Largest max_new_tokens / max_tokens a request may ask for."""
    workers: int = 1
    """Server processes (uvicorn workers), each loading the models; /metrics sums over all of them. With
    ``threads`` unset each worker gets cores / workers threads."""

    @property
    def int8(self) -> bool:
        """True for the torch dynamic int8 runtime (what ``int8=`` of the model loaders means)."""
        return self.runtime == "torch-int8"

    def __post_init__(self) -> None:
        if self.token is None:
            self.token = os.environ.get(TOKEN_ENV) or None
        if self.runtime not in ("auto", "onnx", "torch", "torch-int8"):
            raise ValueError(f"--runtime must be auto, onnx, torch or torch-int8, got {self.runtime!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"--port must be in 1..65535, got {self.port}")
        for name in ("max_body_bytes", "max_image_pixels", "max_concurrency", "max_batch", "max_new_tokens_limit",
                     "workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("request_timeout_s", "body_timeout_s", "header_timeout_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.batch_wait_ms < 0:
            raise ValueError(f"--batch-wait-ms must be >= 0, got {self.batch_wait_ms}")
        if self.token is not None and len(self.token) < 8:
            raise ValueError("--token must be at least 8 characters (or unset it to serve without a token)")
        if "*" in self.cors_origins and self.token:
            raise ValueError("--cors-origin '*' with a token would let any site use the token a browser holds: "
                             "name the origins instead")
