"""Name -> lazy ``"module:attr"`` target, so heavy modules import only when asked for."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Iterator
from typing import Any


class UnknownNameError(KeyError):
    """Raised for a name that is not registered; the message lists the closest names."""

    def __str__(self) -> str:  # KeyError quotes its message; show it as written
        return str(self.args[0])


def unknown(kind: str, name: str, known: Iterable[str]) -> UnknownNameError:
    """Build the error for an unknown ``name``, naming the closest known ones."""
    known = sorted(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    return UnknownNameError(f"unknown {kind} {name!r}.{hint} Known: {', '.join(known)}")


class Registry:
    """A mapping of names to ``"module:attr"`` strings, resolved on first use."""

    def __init__(self, kind: str, targets: dict[str, str] | None = None) -> None:
        self.kind = kind
        self._targets: dict[str, str] = dict(targets or {})
        self._loaded: dict[str, Any] = {}

    def register(self, name: str, target: str) -> None:
        if ":" not in target:
            raise ValueError(f"{self.kind} target must look like 'module:attr', got {target!r}")
        self._targets[name] = target
        self._loaded.pop(name, None)

    def get(self, name: str) -> Any:
        if name not in self._targets:
            raise unknown(self.kind, name, self._targets)
        if name not in self._loaded:
            module, attr = self._targets[name].split(":", 1)
            self._loaded[name] = getattr(importlib.import_module(module), attr)
        return self._loaded[name]

    def __contains__(self, name: object) -> bool:
        return name in self._targets

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._targets))

    def __len__(self) -> int:
        return len(self._targets)
