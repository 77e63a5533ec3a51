"""Clients of OpenAI-compatible servers (``somelvlm serve``, vLLM, any ``/v1/chat/completions``):

* ``OpenAIGenerator`` implements the ``Generator`` protocol: each prompt (with its image as a
  ``data:`` URI) is one chat completion; up to ``max_concurrency`` run at once.
* ``OpenAIClassifier`` runs a compact classifier served by ``somelvlm serve`` remotely, with the
  surface ``evaluate_model`` uses (``tasks``, ``specs``, ``predict``, ``predict_proba``): the server
  answers a chat completion with ``model: "some-mini"`` with the analysis as JSON text, and this
  client asks for 9-digit probabilities so metrics match an in-process run exactly.

>>> gen = OpenAIGenerator("http://127.0.0.1:8000/v1", model="some-lvlm")       # doctest: +SKIP
>>> gen.generate(["Rewrite politely: shut up"])                                # doctest: +SKIP
>>> clf = OpenAIClassifier("http://127.0.0.1:8000/v1")                         # doctest: +SKIP
>>> evaluate_model(clf, ["emotion", "irony"], data_root, "test", limit=200)    # doctest: +SKIP

Needs ``httpx`` (the ``serve`` extra).
"""

from __future__ import annotations

import base64
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from somelvlm.models.base import GenerationConfig, HeadSpec, texts_of

if TYPE_CHECKING:
    from PIL.Image import Image

RETRY_STATUS = (429, 502, 503, 504)
"""Answers worth retrying (busy or restarting server); others fail at once."""


class RemoteError(RuntimeError):
    """The server refused or failed a request; the message carries its status and its reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def image_data_uri(image: Image, fmt: str = "PNG") -> str:
    """An RGB image as a ``data:image/png;base64,...`` URI (lossless, so answers match in-process)."""
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


class _Client:
    """httpx client with a base URL, bearer token, timeout, bounded retries and a thread pool."""

    def __init__(self, base_url: str, api_key: str | None, timeout: float, max_concurrency: int, retries: int) -> None:
        try:
            import httpx
        except ImportError as err:
            raise ImportError(f"the OpenAI-compatible client needs httpx: pip install 'somelvlm[serve]' ({err})") from None
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout,
                                 limits=httpx.Limits(max_connections=max_concurrency))
        self.max_concurrency = max_concurrency
        self.retries = retries
        self._httpx = httpx

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        delay = 0.2
        for attempt in range(self.retries + 1):
            try:
                response = self.http.request(method, path, json=body)
            except self._httpx.TransportError as err:
                if attempt == self.retries:
                    raise RemoteError(0, f"cannot reach {self.base_url}{path}: {err}") from None
            else:
                if response.status_code < 400:
                    return response.json()
                if response.status_code not in RETRY_STATUS or attempt == self.retries:
                    raise RemoteError(response.status_code, _reason(response))
                delay = max(delay, float(response.headers.get("retry-after", 0) or 0))
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        raise AssertionError("unreachable")

    def map(self, fn, items: list) -> list:
        if len(items) <= 1 or self.max_concurrency == 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(items))) as pool:
            return list(pool.map(fn, items))

    def close(self) -> None:
        self.http.close()


def _reason(response) -> str:
    try:
        body = response.json()
        return body["error"]["message"] if isinstance(body.get("error"), dict) else json.dumps(body)[:500]
    except Exception:  # noqa: BLE001 - not JSON
        return response.text[:500]


def list_models(base_url: str, api_key: str | None = None, timeout: float = 30.0) -> list[dict]:
    """The ``data`` of a server's ``GET /v1/models`` (our server marks classifiers with ``kind``)."""
    client = _Client(base_url, api_key, timeout, 1, 1)
    try:
        return list(client.request("GET", "/models").get("data") or [])
    finally:
        client.close()


class OpenAIGenerator:
    """A ``Generator`` over any OpenAI-compatible ``/v1/chat/completions`` (our server, vLLM, ...)."""

    def __init__(self, base_url: str | Path, model: str | None = None, api_key: str | None = None,
                 timeout: float = 120.0, max_concurrency: int = 8, retries: int = 3) -> None:
        if isinstance(base_url, Path) or (model is None and Path(str(base_url), "config.json").is_file()):
            config = json.loads((Path(base_url) / "config.json").read_text(encoding="utf-8"))
            base_url, model = config["base_url"], model or config["model"]
            api_key = api_key or config.get("api_key")
        if not model:
            raise ValueError("OpenAIGenerator needs model= (the name the server lists at /v1/models)")
        self.client = _Client(str(base_url), api_key, timeout, max_concurrency, retries)
        self.model = model
        self.name = model

    def _one(self, args) -> str:
        prompt, image, config = args
        content = prompt if image is None else [{"type": "text", "text": prompt},
                                                {"type": "image_url", "image_url": {"url": image_data_uri(image)}}]
        body = {"model": self.model, "messages": [{"role": "user", "content": content}],
                "max_tokens": config.max_new_tokens, "temperature": config.temperature, "top_p": config.top_p}
        if config.seed is not None:
            body["seed"] = config.seed
        answer = self.client.request("POST", "/chat/completions", body)
        try:
            return answer["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise RemoteError(200, f"not a chat completion: {json.dumps(answer)[:300]}") from None

    def generate(self, prompts: list[str], images: list[Image | None] | None = None,
                 config: GenerationConfig | None = None) -> list[str]:
        config = config or GenerationConfig()
        images = images or [None] * len(prompts)
        if len(images) != len(prompts):
            raise ValueError(f"{len(images)} images for {len(prompts)} prompts")
        return self.client.map(self._one, [(p, img, config) for p, img in zip(prompts, images)])


class OpenAIClassifier:
    """A compact classifier served by ``somelvlm serve``, used like ``CompactModel`` (for ``evaluate_model``)."""

    def __init__(self, base_url: str, model: str | None = None, api_key: str | None = None,
                 timeout: float = 60.0, max_concurrency: int = 8, retries: int = 3) -> None:
        self.client = _Client(base_url, api_key, timeout, max_concurrency, retries)
        listed = self.client.request("GET", "/models")["data"]
        classifiers = [m for m in listed if m.get("kind") == "classifier" and "heads" in m]
        chosen = [m for m in classifiers if model in (None, m["id"])]
        if not chosen:
            raise ValueError(f"{self.client.base_url} serves no classifier {model or ''}; it lists "
                             f"{[m['id'] for m in listed]}")
        self.model = chosen[0]["id"]
        self.specs = {h["task"]: HeadSpec.from_dict(h) for h in chosen[0]["heads"]}
        self.name = self.model
        self.modalities = frozenset({"text"})
        self.folder = Path(self.model)  # harness and CLI print model.folder.name

    @property
    def tasks(self) -> list[str]:
        return list(self.specs)

    def _one(self, args) -> dict:
        text, tasks = args
        body = {"model": self.model, "messages": [{"role": "user", "content": text}], "tasks": tasks,
                "probability_digits": 9}
        answer = self.client.request("POST", "/chat/completions", body)
        return json.loads(answer["choices"][0]["message"]["content"])["results"]

    def predict(self, texts: list[str], tasks: list[str] | None = None) -> list[dict]:
        """One dict per text, as ``CompactModel.predict`` gives it (probabilities to 9 digits)."""
        tasks = tasks or self.tasks
        return self.client.map(self._one, [(t, tasks) for t in texts])

    def predict_proba(self, texts: list, tasks: list[str] | None = None) -> dict[str, np.ndarray]:
        """``task -> array`` in the shapes of ``CompactModel.predict_proba`` (texts or posts)."""
        texts = texts_of(texts)
        tasks = tasks or self.tasks
        unknown = [t for t in tasks if t not in self.specs]
        if unknown:
            from somelvlm.registry import unknown as unknown_error

            raise unknown_error("task of this model", unknown[0], self.specs)
        rows = self.predict(texts, tasks)
        out = {}
        for task in tasks:
            spec = self.specs[task]
            held = next((r[task]["withheld"] for r in rows if r[task].get("withheld")), None)
            if held:  # the server answers text posts of this task with no head (its text head is withheld)
                raise ValueError(f"task {task}: the server's text head is withheld: {held}")
            if spec.kind == "regression":
                out[task] = np.array([r[task]["value"] for r in rows], dtype=np.float32)
            elif spec.groups:
                out[task] = np.array([[[r[task]["targets"][g]["probs"][lab] for lab in spec.labels]
                                       for g in spec.groups] for r in rows], dtype=np.float32)
            else:
                out[task] = np.array([[r[task]["probs"][lab] for lab in spec.labels] for r in rows], dtype=np.float32)
        return out
