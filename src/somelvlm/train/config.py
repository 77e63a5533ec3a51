"""Reading a recipe's YAML into its config dataclass, shared by every training recipe."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def config_from_yaml(cls: type[T], path: Path | str, **overrides: Any) -> T:
    """``cls`` built from the YAML at ``path``; ``overrides`` that are not None win. An unknown key
    fails naming the file and the known keys, so a typo never passes silently."""
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown keys {unknown}; known: {sorted(known)}")
    data.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**data)
