"""One registry of model backends, keyed by the ``backend`` each model folder's ``config.json`` names.

Targets are lazy ``"module:Class"`` strings, so torch / transformers / httpx load only when a
backend is asked for. Every backend class is built as ``Backend(folder, **options)``; remote
servers are URLs instead of folders (``http://host:8000/v1``, optionally ``#MODEL`` to pick one of
the models the server lists).

>>> load_model("some-mini")                      # doctest: +SKIP  (compact classifier)
>>> load_model("some-lvlm")                      # doctest: +SKIP  (lvlm generator)
>>> load_model("http://127.0.0.1:8000/v1#some-mini")   # doctest: +SKIP  (remote classifier)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from somelvlm.registry import Registry

BACKENDS = Registry("model backend", {
    "compact": "somelvlm.models.compact:CompactModel",
    "image_text": "somelvlm.models.mm_runtime:ImageTextClassifier",
    "lvlm": "somelvlm.models.lvlm:LVLMGenerator",
    "hf_vlm": "somelvlm.models.hf_vlm:HFVisionGenerator",
    "openai_classifier": "somelvlm.models.openai_http:OpenAIClassifier",
    "openai_http": "somelvlm.models.openai_http:OpenAIGenerator",
    "vllm": "somelvlm.models.vllm_backend:VLLMGenerator",
    "lmm_rgcl": "somelvlm.models.lmm_rgcl_vlm:load_lmm_rgcl",
})
"""Backend name -> ``"module:Class"``. Classifiers: compact, image_text, openai_classifier;
generators: lvlm, hf_vlm, openai_http, vllm (in-process vLLM on a GPU)."""

CLASSIFIER_BACKENDS = frozenset({"compact", "image_text", "openai_classifier", "lmm_rgcl"})
DEFAULT_MODEL = "some-mini"
ASSETS = Path(__file__).resolve().parents[1] / "assets"
"""Models shipped in the package, one folder each."""


class ModelFolderError(ValueError):
    """A folder whose ``config.json`` names no known backend."""


def model_dirs() -> list[Path]:
    """Where short model names are looked up: ``SOMELVLM_MODEL_PATH`` (``os.pathsep``-separated folders of
    model folders), then the package's assets."""
    extra = [Path(p) for p in os.environ.get("SOMELVLM_MODEL_PATH", "").split(os.pathsep) if p]
    return extra + [ASSETS]


def model_folder(name: str | Path | None) -> Path:
    """A model's folder for a short name (``some-mini``) or a path to a folder holding ``config.json``."""
    name = DEFAULT_MODEL if name is None else name
    for root in model_dirs():
        if (root / str(name) / "config.json").is_file():
            return root / str(name)
    path = Path(name)
    if (path / "config.json").is_file():
        return path
    known = sorted({p.name for root in model_dirs() for p in root.glob("*") if (p / "config.json").is_file()})
    raise FileNotFoundError(f"no model {str(name)!r}: pass a shipped name ({', '.join(known) or 'none shipped'}), "
                            "a folder holding config.json, or a server URL (http://host:port/v1)")


def read_model_config(folder: str | Path) -> dict:
    """A model folder's ``config.json`` with its ``backend`` resolved.

    Folders written before every config named its backend are recognised by their shape (a compact
    model's ``format``, a multimodal head's ``encoders``); anything else is an error naming the known
    backends and the keys the folder's config has.
    """
    path = Path(folder) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{folder} is not a model folder (no config.json)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ModelFolderError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(config, dict):
        raise ModelFolderError(f"{path} must hold a JSON object")
    if "backend" not in config:
        if str(config.get("format", "")).startswith("somelvlm-compact"):
            config["backend"] = "compact"
        elif "encoders" in config and "task" in config:
            config["backend"] = "image_text"
    backend = config.get("backend")
    if backend not in BACKENDS:
        raise ModelFolderError(f"{path} names backend {backend!r}; known backends: {', '.join(BACKENDS)} "
                               f"(its config has keys: {', '.join(sorted(config)) or 'none'})")
    return config


def withheld_heads(config: dict, folder: str | Path, tasks) -> dict[str, str]:
    """``task -> reason`` of the heads a model folder ships but does not serve by default (``withheld`` in
    its ``config.json``: a head that did not beat the majority and stratified baselines on VALIDATION,
    ``benchmarks/baselines.py``). Names a task the model has no head for, or gives no reason: an error."""
    withheld = config.get("withheld", {})
    path = Path(folder) / "config.json"
    if not isinstance(withheld, dict):
        raise ModelFolderError(f"{path}: withheld must map a task to the reason it is withheld, got {withheld!r}")
    for task, why in withheld.items():
        if task not in tasks:
            raise ModelFolderError(f"{path}: withheld names {task!r}, which has no head here")
        if not isinstance(why, str) or not why.strip():
            raise ModelFolderError(f"{path}: withheld[{task!r}] must be a non-empty reason")
    return dict(withheld)


def is_url(name: str | Path | None) -> bool:
    return isinstance(name, str) and name.lower().startswith(("http://", "https://"))


def load_model(name: str | Path | None = None, **options):
    """A ``Classifier`` or ``Generator`` by shipped name, folder or server URL, built by its backend.

    ``options`` go to the backend's constructor (e.g. ``runtime`` for compact); options a backend
    does not take are dropped, so one call site can load any kind.
    """
    if is_url(name):
        return _load_remote(str(name), **options)
    folder = model_folder(name)
    backend = read_model_config(folder)["backend"]
    return _construct(BACKENDS.get(backend), folder, options)


def load_classifier(name: str | Path | None = None, **options):
    """``load_model`` that refuses a generator (one line naming what it is)."""
    model = load_model(name, **options)
    if not hasattr(model, "predict_proba"):
        raise ModelFolderError(f"{name} is a generative model ({type(model).__name__}); a classifier is "
                               f"needed here (backends: {', '.join(sorted(CLASSIFIER_BACKENDS))})")
    return model


def load_generator(name: str | Path, **options):
    """``load_model`` that refuses a classifier (one line naming what it is)."""
    model = load_model(name, **options)
    if not hasattr(model, "generate"):
        raise ModelFolderError(f"{name} is not a generative model (it is a {type(model).__name__} classifier; "
                               "generators: lvlm, hf_vlm, openai_http)")
    return model


def _load_remote(url: str, **options):
    """A server URL: the model after ``#`` (else the first listed); our server marks classifiers."""
    from somelvlm.models.openai_http import list_models

    base, _, wanted = url.partition("#")
    listed = list_models(base, api_key=options.get("api_key"))
    chosen = [m for m in listed if not wanted or m.get("id") == wanted]
    if not chosen:
        raise ModelFolderError(f"{base} serves no model {wanted!r}; it lists {[m.get('id') for m in listed]}")
    entry = chosen[0]
    backend = "openai_classifier" if entry.get("kind") == "classifier" else "openai_http"
    return _construct(BACKENDS.get(backend), base, {**options, "model": entry["id"]})


def _construct(cls, source, options: dict):
    import inspect

    params = inspect.signature(cls.__init__ if isinstance(cls, type) else cls).parameters  # a class or a loader
    if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        options = {k: v for k, v in options.items() if k in params}
    return cls(source, **options)
