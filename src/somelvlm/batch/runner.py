"""Run a model over a file of posts: streamed in batches, resumable, exactly once per id.

``run(INPUT, OUT, predict)`` reads rows (``readers``), turns each into a ``Post`` (``clean_text``,
``load_image``, only when ``predict.needs_image`` says a chosen task reads it), calls ``predict`` on batches and appends one record per row to OUT (``output``):

- a prediction: ``{"id": ..., **predict(...)[i]}`` (the id is always the row's own);
- an error record: ``{"id": ..., "line": N, "error": {"reason": ..., "message": ...}}`` (the id is
  the row's own, or ``line:N`` for a row without a usable one) for a row that cannot be read, a post ``PostError`` rejects (in loading or in ``predict``), a post the
  model raises on (``model error``: the batch is first retried post by post, so a bad post only
  errors itself) or an output that is not a JSON-able dict (``bad output``).

Resuming: a rerun with the same OUT skips every id already there, so each id is written once.
Error records count as written, so a rerun does *not* retry them (a bad row would otherwise be
retried forever); ``RunConfig(retry_errors=True)`` drops them from OUT and runs those rows again.
When the model fails on ``stop_after_model_errors`` posts in a row it is broken, not the posts:
the run stops with ``ModelFailing`` before writing that batch, and a rerun resumes.

JSONL output keeps input order within a run. Parquet output is journalled to
``OUT.partial.jsonl`` and written atomically at the end (see ``output``); temp files a killed run
left beside OUT are removed when the next run starts.

Memory: each image is reduced while it is decoded (``RunConfig.image_short_side`` / ``image_long_side``;
JPEGs decode at reduced scale), before the next row is read, so a batch holds only small images whatever their
size on disk.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from somelvlm.batch import output
from somelvlm.batch.readers import Row, RowError, detect_format, read_rows
from somelvlm.posts import (
    DEFAULT_LIMITS,
    MODEL_IMAGE_LONG_SIDE,
    MODEL_IMAGE_SHORT_SIDE,
    Limits,
    Post,
    PostError,
    check_image,
    clean_text,
    is_invisible,
    load_image,
)

Predict = Callable[[list[Post]], list[dict]]
OUT_FORMATS = {".jsonl": "jsonl", ".parquet": "parquet"}


class ModelFailing(RuntimeError):
    """The model failed on many posts in a row; what was written is kept, a rerun resumes."""


@dataclass
class RunConfig:
    """How a batch run groups, limits and retries posts."""

    batch_size: int = 64
    """Posts per ``predict`` call (also per write + fsync of OUT)."""
    limits: Limits = DEFAULT_LIMITS
    """Largest text / image a post may have; larger ones become error records."""
    image_root: Path | None = None
    """Relative image paths resolve against this folder (default: the input file's folder)."""
    retry_errors: bool = False
    """Drop the error records already in OUT and run those rows again (default: keep and skip them)."""
    stop_after_model_errors: int = 32
    """Stop (resumably) after this many consecutive posts the model raised on; 0 never stops."""
    image_short_side: int | None = MODEL_IMAGE_SHORT_SIDE
    """Images are reduced while decoded to at most this shorter side (bounds memory; None: no bound)."""
    image_long_side: int | None = MODEL_IMAGE_LONG_SIDE
    """... and to at most this longer side (very tall or wide images; None: no bound)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"--batch-size must be at least 1, got {self.batch_size}")
        for name in ("image_short_side", "image_long_side"):
            if getattr(self, name) is not None and getattr(self, name) < 32:
                raise ValueError(f"{name} must be at least 32 pixels (or None), got {getattr(self, name)}")
        if self.stop_after_model_errors < 0:
            raise ValueError(f"stop_after_model_errors must be >= 0, got {self.stop_after_model_errors}")


@dataclass
class RunSummary:
    """What one ``run`` call did."""

    written: int
    """Records written by this call, error records included."""
    skipped_existing: int
    """Input rows skipped because OUT already held their id."""
    errors: int
    """Error records among ``written``."""
    seconds: float
    out: Path


def run(input: Path, out: Path, predict: Predict, config: RunConfig | None = None, *,
        text_col: str = "text", image_col: str = "image", id_col: str = "id", fmt: str | None = None,
        progress: bool = True, fingerprint: dict | None = None) -> RunSummary:
    """Apply ``predict`` to every row of ``input`` whose id is not yet in ``out``; see the module doc.

    ``fmt`` names the input format (``jsonl``, ``csv``, ``tsv``, ``parquet``) when the extension
    does not. Raises ``ValueError`` before writing anything when the columns or OUT's extension are
    wrong, and when ``fingerprint`` (what decides the answers, e.g. ``Pipeline.fingerprint()``) differs
    from the one recorded beside OUT by the run that wrote it (``output.check_run``).
    """
    start = time.perf_counter()
    config = config or RunConfig()
    input, out = Path(input), Path(out)
    kind = OUT_FORMATS.get(out.suffix.lower())
    if kind is None:
        raise ValueError(f"--out {out}: name the output .jsonl or .parquet")
    if input.resolve() == out.resolve():
        raise ValueError(f"--out {out} is the input file: choose another output path")
    image_root = Path(config.image_root) if config.image_root else input.resolve().parent
    rows = read_rows(input, text_col=text_col, image_col=image_col, id_col=id_col, fmt=fmt)  # checks columns
    journal = out if kind == "jsonl" else out.with_name(out.name + ".partial.jsonl")
    sink, done = output.open_journal(journal, retry_errors=config.retry_errors)
    summary = RunSummary(0, 0, 0, 0.0, out)
    finished = False
    try:
        if kind == "parquet":
            output.remove_stale_temps(out)  # left by a run killed while finishing; we hold the lock
            done |= output.parquet_ids(out, retry_errors=config.retry_errors)
        if fingerprint is not None:
            output.check_run(out, fingerprint, resuming=bool(done))
        had_journal = kind == "parquet" and journal.stat().st_size > 0
        with _progress(progress, _row_estimate(input, fmt)) as advance:
            streak = 0
            for batch in _batches(rows, config.batch_size, done, summary, advance):
                records = process(batch, predict, config.limits, image_root,
                                  (config.image_long_side, config.image_short_side))
                streak = _check_model(records, streak, config.stop_after_model_errors, summary)
                encoded = [_encode(r, row) for r, row in zip(records, batch, strict=True)]
                output.append(sink, [line for line, _ in encoded])
                summary.written += len(encoded)
                summary.errors += sum(failed for _, failed in encoded)
                advance(len(encoded))
        if kind == "parquet" and (had_journal or summary.written or not out.is_file()):
            output.finish_parquet(journal, out)
        finished = True
    finally:
        output.close_journal(sink, journal, remove=finished and kind == "parquet")
    summary.seconds = time.perf_counter() - start
    return summary


def process(batch: list[Row | RowError], predict: Predict, limits: Limits, image_root: Path,
            image_fit: tuple[int | None, int | None] = (MODEL_IMAGE_LONG_SIDE, MODEL_IMAGE_SHORT_SIDE)) -> list[dict]:
    """One record per item of ``batch``, in order; bad rows and failing posts become error records."""
    records: list[dict | None] = [None] * len(batch)
    todo: list[tuple[int, Post]] = []
    for i, row in enumerate(batch):
        if isinstance(row, RowError):
            records[i] = error_record(row.id, row.line, row.reason, row.message)
            continue
        try:
            todo.append((i, to_post(row, limits, image_root, image_fit, getattr(predict, "needs_image", None))))
        except PostError as err:
            records[i] = _post_error(row, err)
    if todo:
        try:
            outputs = _checked(predict([post for _, post in todo]), len(todo))
        except Exception:  # noqa: BLE001 - one bad post must not sink the batch: retry one by one
            outputs = [_predict_one(predict, post) for _, post in todo]
        for (i, post), result in zip(todo, outputs, strict=True):
            if isinstance(result, PostError):
                records[i] = _post_error(batch[i], result)
            else:
                records[i] = {"id": post.id, **{k: v for k, v in result.items() if k != "id"}}
    return records  # type: ignore[return-value]


def to_post(row: Row, limits: Limits = DEFAULT_LIMITS, image_root: Path | None = None,
            image_fit: tuple[int | None, int | None] = (MODEL_IMAGE_LONG_SIDE, MODEL_IMAGE_SHORT_SIDE),
            needs_image: Callable[[bool], bool] | None = None) -> Post:
    """The ``Post`` for a row: text via ``clean_text``, image (a path, bytes, or a ``{"bytes",
    "path"}`` struct as Hugging Face datasets store them) via ``load_image``, reduced while
    decoded to ``image_fit`` = (longer side, shorter side) at most. Text of only invisible characters with no image is an ``empty text`` error.
    ``needs_image(has_text)`` (``Pipeline.needs_image``): False leaves the image of a post with text
    undecoded and out of the post (no chosen task reads it); its file and header are still checked
    (``check_image``), so a file that is no image is still an error record."""
    text = row.text
    if isinstance(text, float) and math.isnan(text):  # pandas' missing value
        text = None
    elif isinstance(text, (int, float)) and not isinstance(text, bool):
        text = str(text)
    image = row.image
    if isinstance(image, dict):  # {"bytes": ..., "path": ...}
        image = image.get("bytes") or image.get("path")
    if isinstance(image, float) and math.isnan(image):
        image = None
    if isinstance(image, str):
        image = image.strip() or None
        if image and image.lower().startswith(("http://", "https://")):
            raise PostError("remote image", f"{image[:100]} is a URL; download the images, give local paths")
        if image and not Path(image).is_absolute():
            image = (image_root or Path.cwd()) / image
    elif image is not None and not isinstance(image, (bytes, bytearray, memoryview)):
        raise PostError("wrong type", f"image must be a path or bytes, got {type(image).__name__}")
    if isinstance(image, (bytearray, memoryview)):
        image = bytes(image)
    raw_text = text
    text = clean_text(text, limits)  # type: ignore[arg-type]
    if text is None and image is None and isinstance(raw_text, str) and raw_text.strip() and is_invisible(raw_text):
        raise PostError("empty text", f"the text holds only invisible characters ({_codepoints(raw_text)}) "
                                      "and there is no image")
    loaded = None
    if image is not None and text is not None and needs_image is not None and not needs_image(True):
        check_image(image, limits)  # no chosen task reads it: its header is checked, it is never decoded
        image = None
    if image is not None:
        loaded = load_image(image, limits, max_side=image_fit[0], short_side=image_fit[1])
    return Post(id=row.id, text=text, image=loaded)


def _codepoints(text: str, most: int = 4) -> str:
    """``U+200B, U+200C`` for the distinct characters of ``text`` (at most ``most``)."""
    chars = list(dict.fromkeys(text.strip()))
    shown = ", ".join(f"U+{ord(c):04X}" for c in chars[:most])
    return shown + (", ..." if len(chars) > most else "")


def error_record(row_id: str, line: int, reason: str, message: str) -> dict:
    """The record written for a row that gave no prediction."""
    return {"id": row_id, "line": line, "error": {"reason": reason, "message": message}}


def _post_error(row: Row | RowError, err: PostError) -> dict:
    return error_record(row.id, row.line, err.reason, str(err).removeprefix(f"{err.reason}: "))


def _checked(outputs: object, n: int) -> list[dict | PostError]:
    if not isinstance(outputs, list) or len(outputs) != n or not all(isinstance(o, dict) for o in outputs):
        got = f"{len(outputs)} items" if isinstance(outputs, list) else type(outputs).__name__
        raise TypeError(f"predict must return a list of {n} dicts, got {got}")
    return outputs


def _predict_one(predict: Predict, post: Post) -> dict | PostError:
    try:
        return _checked(predict([post]), 1)[0]
    except PostError as err:
        return err
    except Exception as err:  # noqa: BLE001 - recorded for the user, the run goes on
        failure = PostError("model error", f"{type(err).__name__}: {err}")
        failure.__cause__ = err
        return failure


def _check_model(records: list[dict], streak: int, limit: int, summary: RunSummary) -> int:
    """The running count of consecutive ``model error`` posts; raise ``ModelFailing`` at ``limit``."""
    for record in records:
        reason = record["error"]["reason"] if output.is_error(record) else None
        if reason == "model error":
            streak += 1
            if limit and streak >= limit:
                raise ModelFailing(f"the model failed on {streak} posts in a row (last: "
                                   f"{record['error']['message']}); stopped with {summary.written} records "
                                   "written this run. Fix the model and rerun the same command to resume.")
        elif reason is None:
            streak = 0
    return streak


def _encode(record: dict, row: Row | RowError) -> tuple[bytes, bool]:
    """``(JSONL line, whether it is an error record)``; an output JSON cannot hold is an error."""
    try:
        return output.to_line(record), output.is_error(record)
    except (TypeError, ValueError) as err:
        message = f"the prediction is not JSON: {err}"
        return output.to_line(error_record(row.id, row.line, "bad output", message)), True


def _batches(rows: Iterable[Row | RowError], size: int, done: set[str], summary: RunSummary,
             advance: Callable[[int], None]) -> Iterator[list[Row | RowError]]:
    batch: list[Row | RowError] = []
    for row in rows:
        if row.id in done:
            summary.skipped_existing += 1
            advance(1)
            continue
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _row_estimate(path: Path, fmt: str | None) -> int | None:
    """Rows in the input for the progress bar: exact for Parquet, lines (approximate) otherwise."""
    try:
        kind = detect_format(path, fmt)
        if kind == "parquet":
            import pyarrow.parquet as pq

            return pq.ParquetFile(path).metadata.num_rows
        with path.open("rb") as f:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        return max(lines - (kind != "jsonl"), 0)
    except (OSError, ValueError):
        return None


class _progress:
    """A rich progress bar on stderr (``advance(n)``); a no-op when disabled."""

    def __init__(self, enabled: bool, total: int | None) -> None:
        self.bar = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("posts"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                console=Console(stderr=True), transient=False)
            self.task = self.bar.add_task("posts", total=total)

    def __enter__(self) -> Callable[[int], None]:
        if self.bar is None:
            return lambda n: None
        self.bar.start()
        return lambda n: self.bar.advance(self.task, n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def read_posts(texts: list[str], images: list[Path], path: Path | None) -> tuple[list[Post], list[dict]]:
    """``(posts, error records)`` from ``--text``/``--image`` pairs and/or a posts file (JSONL, CSV,
    TSV or Parquet, read by ``batch.readers`` like ``analyze`` does); a bad row becomes an error
    record naming its line and why, and the other rows go on."""

    if images and len(images) != len(texts):
        raise ValueError(f"got {len(images)} --image for {len(texts)} --text: give one image per text or none")
    posts = [Post(id=str(i), text=clean_text(t), image=load_image(images[i]) if images else None)
             for i, t in enumerate(texts)]
    errors: list[dict] = []
    if path is not None:
        if not Path(path).is_file():
            raise FileNotFoundError(f"input {path} not found")
        for row in read_rows(Path(path)):
            if isinstance(row, RowError):
                errors.append(error_record(row.id, row.line, row.reason, row.message))
                continue
            try:
                posts.append(to_post(row, image_root=Path(path).resolve().parent))
            except PostError as err:
                errors.append(error_record(row.id, row.line, err.reason, str(err).removeprefix(f"{err.reason}: ")))
    if not posts and not errors:
        raise ValueError("no posts: pass --text or --input")
    if not posts:
        first = errors[0]
        raise ValueError(f"no usable posts in {path} ({len(errors)} bad rows; line {first['line']}: "
                         f"{first['error']['reason']}: {first['error']['message']})")
    return posts, errors
