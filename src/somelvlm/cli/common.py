"""What every command shares: consoles, logging, progress bars, signals, the data root, ``-`` files.

Results go to stdout; progress, summaries and messages to stderr, so ``--out -`` (JSONL on stdout)
can be piped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from rich.console import Console

from somelvlm.cli.args import resolve_data_root

console = Console()
err_console = Console(stderr=True)
QUIET = False
"""Set by ``--quiet``: no progress bars, only errors on stderr."""

ENVIRONMENT = {
    "SOMELVLM_DATA": "the data root (folder with tweeteval/, davidson/, ...) when --data-root is not given; "
                     "default ../shared/data",
    "SOMELVLM_MODELS": "where converted base language models are cached (default ~/.cache/somelvlm/models)",
    "SOMELVLM_CACHE": "the feature cache, the exported ONNX encoders in its onnx/ and the CTranslate2 decoders in its "
                      "ctranslate2/ (default ~/.cache/somelvlm/features, ~/.cache/somelvlm/onnx, ~/.cache/somelvlm/ctranslate2)",
    "SOMELVLM_GENERATION_RUNTIME": "how generative models decode text prompts: auto (ctranslate2 when installed, else "
                                   "torch), torch or ctranslate2 (default auto)",
    "SOMELVLM_MODEL_PATH": "folders (':'-separated) of model folders that --model / --generator names resolve in, "
                           "before the shipped ones",
    "SOMELVLM_SERVE_CONFIG": "set by `somelvlm serve --workers N` for its worker processes (the server's options as "
                             "JSON); not for users to set",
    "SOMELVLM_API_TOKEN": "the bearer token of `somelvlm serve` when --token is not given",
    "SOMELVLM_SHARDING": "how `train instruct` shares the model over torchrun / accelerate processes: ddp or fsdp "
                         "(default: the config's `sharding`, else ddp; accelerate's FSDP config sets fsdp)",
}
"""Every environment variable somelvlm reads (shown in ``somelvlm --help`` and the README)."""


class Terminated(BaseException):
    """SIGTERM arrived: raised in the main thread so ``finally`` blocks run (journals close)."""


class Stopped(BaseException):
    """A command interrupted by a signal, with what the user should know (where to resume)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def stop_code(stop: BaseException) -> int:
    """The exit status of a run stopped by ``stop``: 130 for SIGINT, 143 for SIGTERM."""
    return 143 if isinstance(stop, Terminated) else 130


@contextlib.contextmanager
def signals() -> Iterator[None]:
    """SIGTERM raises ``Terminated`` while the command runs (SIGINT already raises KeyboardInterrupt)."""
    def on_term(signum, frame):
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread (in-process callers): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def setup_logging(verbose: int, quiet: bool) -> None:
    """stdlib logging of the ``somelvlm`` package (and ``warnings``) on stderr, configured once:
    warnings by default, info with ``-v``, debug with ``-vv``, errors only with ``--quiet``."""
    global QUIET
    QUIET = quiet
    level = logging.ERROR if quiet else (logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    logger = logging.getLogger("somelvlm")
    for handler in list(logger.handlers):
        if getattr(handler, "_somelvlm_cli", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler._somelvlm_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)  # records still propagate: an application's or pytest's root handlers see them
    logging.captureWarnings(True)
    warn_logger = logging.getLogger("py.warnings")
    warn_logger.setLevel(logging.ERROR if quiet else logging.WARNING)
    if not any(getattr(h, "_somelvlm_cli", False) for h in warn_logger.handlers):
        warn_logger.addHandler(handler)


def require_data_root(root: str | Path | None) -> Path:
    """The resolved data root (``resolve_data_root``), which must be a folder."""
    path = resolve_data_root(root)
    if not path.is_dir():
        raise FileNotFoundError(f"data root {path} not found: pass --data-root (or set SOMELVLM_DATA)")
    return path


def check_out(path: Path, suffixes: tuple[str, ...] = (".jsonl", ".parquet")) -> Path:
    """``--out`` must be a writable file path; a missing folder is created (``mkdir -p``); one clear error
    otherwise (a folder named like the file, a parent that is a file, no permission)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"--out {path}: is a directory; name a {' or '.join(suffixes)} file")
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"--out {path}: name the output {' or '.join(suffixes)}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise FileNotFoundError(f"--out {path}: cannot create the folder {parent} ({err.strerror})") from None
    if path.exists() and not os.access(path, os.W_OK):
        raise PermissionError(f"--out {path}: the file is not writable (permission denied)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"--out {path}: cannot write in the folder {parent} (permission denied)")
    return path


@contextlib.contextmanager
def stdin_file(name: str, suffix: str = ".jsonl", image_base: Path | None = None) -> Iterator[tuple[Path, bool]]:
    """``(path, from_stdin)``: ``name`` itself, or for ``-`` a temporary copy of stdin (removed after).

    ``image_base``: relative ``image`` paths of JSONL lines from stdin are made absolute against it
    (readers resolve them against the file's folder, which is the temporary one); other lines are
    copied unchanged, so a bad line still fails where the reader reads it."""
    if name != "-":
        yield Path(name), False
        return
    with tempfile.TemporaryDirectory(prefix="somelvlm-stdin-") as folder:
        path = Path(folder) / f"stdin{suffix}"
        with path.open("wb") as f:
            if image_base is None:
                shutil.copyfileobj(sys.stdin.buffer, f)
            else:
                for line in sys.stdin.buffer:
                    f.write(_absolute_image(line, image_base))
        yield path, True


def _absolute_image(line: bytes, base: Path) -> bytes:
    import json

    try:
        row = json.loads(line)
    except ValueError:
        return line
    image = row.get("image") if isinstance(row, dict) else None
    if not isinstance(image, str) or not image or Path(image).is_absolute():
        return line
    row["image"] = str(base / image)
    return (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")


def copy_to_stdout(path: Path) -> None:
    """Write a file's bytes to stdout (the JSONL of ``--out -``)."""
    sys.stdout.flush()
    if path.is_file():
        with path.open("rb") as f:
            shutil.copyfileobj(f, sys.stdout.buffer)
    sys.stdout.flush()


class Progress:
    """Rich progress bars on stderr, one per stage; ``update(stage, done, total)`` is the callback
    handed to library functions (``progress=``). No-op with ``--quiet`` or when disabled."""

    def __init__(self, enabled: bool = True) -> None:
        self.bar = None
        self.tasks: dict[str, int] = {}
        if enabled and not QUIET:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar

            self.bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                           TimeRemainingColumn(), console=err_console, transient=False)

    def __enter__(self) -> Progress:  # noqa: PYI034 - the bar is used by this class's name
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def update(self, stage: str, done: int, total: int | None = None) -> None:
        """Show ``done`` of ``total`` for ``stage`` (a new bar the first time a stage is named)."""
        if self.bar is None:
            return
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(stage, total=total)
        self.bar.update(self.tasks[stage], completed=done, total=total)

    def advance(self, stage: str, n: int = 1) -> None:
        """Count ``n`` more items of an open-ended ``stage``."""
        if self.bar is None:
            return
        if stage not in self.tasks:
            self.tasks[stage] = self.bar.add_task(stage, total=None)
        self.bar.advance(self.tasks[stage], n)

    def stage(self, name: str) -> Callable[[int, int], None]:
        """A ``progress(done, total)`` callback for one named stage."""
        return lambda done, total: self.update(name, done, total)


def split_commas(values: list[str] | None) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]
