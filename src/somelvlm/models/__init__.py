"""Model backends by name, loaded lazily (``"module:Class"``) so heavy imports wait until asked for."""

from __future__ import annotations

from pathlib import Path

from somelvlm.registry import Registry

BACKENDS = Registry("model backend", {"compact": "somelvlm.models.compact:CompactModel"})
DEFAULT_MODEL = "some-mini"


def model_folder(name: str | Path | None) -> Path:
    """A shipped model's folder for a short name (``some-mini``), else the given path."""
    from somelvlm.models.compact import ASSETS

    if name is None:
        name = DEFAULT_MODEL
    shipped = ASSETS / str(name)
    if (shipped / "config.json").is_file():
        return shipped
    path = Path(name)
    if (path / "config.json").is_file():
        return path
    known = sorted(p.name for p in ASSETS.glob("*") if (p / "config.json").is_file())
    raise FileNotFoundError(f"no model {str(name)!r}: pass a shipped name ({', '.join(known) or 'none shipped'}) "
                            "or a folder holding config.json")


def load_model(name: str | Path | None = None, **kwargs):
    """Load a model by shipped name or folder with the backend its config names (default compact)."""
    import json

    folder = model_folder(name)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    backend = BACKENDS.get(config.get("backend", "compact"))
    return backend(folder, **kwargs)
