"""SoMeData in the formats other training stacks read: LLaVA's JSON arrays and LLaMA-Factory's
ShareGPT files with their ``dataset_info.json`` entries.

Both read a SoMeData build (``train.jsonl val.jsonl test.jsonl``, see ``data.somedata``) one line
at a time and write to a temporary folder renamed into place, so a failed export leaves the
previous one intact. A bad line is an error naming the file and line.

``llava-json`` (LLaVA's ``--data_path``; ``--image_folder`` = the data root)::

    OUT/train.json val.json test.json   [{"id": ..., "image": "memotion/images/x.jpg",   # with an image only
                                          "conversations": [{"from": "human", "value": "<image>\\n..."},
                                                            {"from": "gpt", "value": "..."}]}, ...]

``llama-factory`` (LLaMA-Factory's ``dataset_dir``; ``media_dir`` = the data root)::

    OUT/somedata_train.json ...     [{"messages": [{"role": "user", "content": "<image>\\n..."},
                                                   {"role": "assistant", "content": "..."}],
                                      "images": ["memotion/images/x.jpg"]}, ...]      # [] without an image
    OUT/dataset_info.json           {"somedata_train": {"file_name": ..., "formatting": "sharegpt",
                                                        "columns": {"messages": "messages", "images": "images"},
                                                        "tags": {...}, "media_dir": DATA_ROOT}, ...}
    OUT/README.md                   how to point LLaMA-Factory at it

>>> export_somedata("runs/somedata", "runs/llava", "llava-json")                          # doctest: +SKIP
>>> export_somedata("runs/somedata", "runs/lf", "llama-factory", media_dir="../shared/data")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from somelvlm.atomic import atomic_dir

from somelvlm.data.example import SPLITS
from somelvlm.data.somedata import IMAGE_TOKEN
from somelvlm.registry import Registry

ROLES = {"human": "user", "gpt": "assistant", "system": "system"}
"""SoMeData (ShareGPT) speakers -> chat roles."""
LLAMA_FACTORY_TAGS = {"role_tag": "role", "content_tag": "content", "user_tag": "user",
                      "assistant_tag": "assistant", "system_tag": "system"}


class ExportError(ValueError):
    """A SoMeData file that cannot be exported; the message names the file and line."""


@dataclass
class ExportResult:
    out: Path
    format: str
    counts: dict[str, int] = field(default_factory=dict)
    """Records written per split."""
    files: list[Path] = field(default_factory=list)


def read_records(path: Path) -> Iterator[dict]:
    """The records of one SoMeData JSONL file, checked: an id, and human / gpt turns whose
    ``<image>`` placeholders match the record's image (one with an image, none without)."""
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ExportError(f"{where}: not JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(record, dict) or not isinstance(record.get("id"), str) or not record["id"]:
                raise ExportError(f"{where}: a record needs a string 'id'")
            turns = record.get("conversations")
            if (not isinstance(turns, list) or len(turns) < 2
                    or not all(isinstance(t, dict) and t.get("from") in ROLES and isinstance(t.get("value"), str)
                               for t in turns)):
                raise ExportError(f"{where} (id {record['id']}): 'conversations' must be a list of at least two "
                                  f"{{'from': human|gpt|system, 'value': str}} turns")
            placeholders = sum(t["value"].count(IMAGE_TOKEN) for t in turns)
            image = record.get("image")
            if image is not None and (not isinstance(image, str) or os.path.isabs(image) or ".." in Path(image).parts):
                raise ExportError(f"{where} (id {record['id']}): 'image' must be a path relative to the data root, "
                                  f"got {image!r}")
            if placeholders != (1 if image else 0):
                raise ExportError(f"{where} (id {record['id']}): {placeholders} {IMAGE_TOKEN} placeholders for "
                                  f"{'one image' if image else 'no image'}")
            yield record


def to_llava(record: dict) -> dict:
    """A record as LLaVA's training data reads it (``id``, ``image`` when there is one, ``conversations``)."""
    out = {"id": record["id"]}
    if record.get("image"):
        out["image"] = record["image"]
    out["conversations"] = [{"from": t["from"], "value": t["value"]} for t in record["conversations"]]
    return out


def to_llama_factory(record: dict) -> dict:
    """A record in LLaMA-Factory's ShareGPT layout with OpenAI-style roles (``messages``, ``images``)."""
    return {"messages": [{"role": ROLES[t["from"]], "content": t["value"]} for t in record["conversations"]],
            "images": [record["image"]] if record.get("image") else []}


def write_json_array(path: Path, records: Iterator[dict]) -> int:
    """Write ``records`` as one JSON array, one record per line, without holding them all; returns the count."""
    n = 0
    with path.open("w", encoding="utf-8", newline="\n") as f:
        f.write("[")
        for record in records:
            f.write(",\n" if n else "\n")
            f.write(json.dumps(record, ensure_ascii=False))
            n += 1
        f.write("\n]\n")
    return n


def export_llava_json(somedata: Path, tmp: Path, *, media_dir: Path | None = None, name: str = "somedata") -> ExportResult:
    """``{split}.json``: a JSON array of LLaVA records per split (``json.load`` reads it)."""
    result = ExportResult(tmp, "llava-json")
    for split, source in _splits(somedata):
        path = tmp / f"{split}.json"
        result.counts[split] = write_json_array(path, (to_llava(r) for r in read_records(source)))
        result.files.append(path)
    return result


def export_llama_factory(somedata: Path, tmp: Path, *, media_dir: Path | None = None,
                         name: str = "somedata") -> ExportResult:
    """``{name}_{split}.json`` (ShareGPT with ``messages`` / ``images``), their ``dataset_info.json``
    entries (``media_dir`` in each when given) and a README on how to train on them."""
    result = ExportResult(tmp, "llama-factory")
    info = {}
    for split, source in _splits(somedata):
        file_name = f"{name}_{split}.json"
        result.counts[split] = write_json_array(tmp / file_name, (to_llama_factory(r) for r in read_records(source)))
        result.files.append(tmp / file_name)
        entry = {"file_name": file_name, "formatting": "sharegpt",
                 "columns": {"messages": "messages", "images": "images"}, "tags": dict(LLAMA_FACTORY_TAGS)}
        if media_dir is not None:
            entry["media_dir"] = str(Path(media_dir).resolve())
        info[f"{name}_{split}"] = entry
    (tmp / "dataset_info.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    (tmp / "README.md").write_text(_llama_factory_readme(name, info, media_dir), encoding="utf-8")
    result.files += [tmp / "dataset_info.json", tmp / "README.md"]
    return result


EXPORTS = Registry("export format", {
    "llava-json": "somelvlm.data.exports:export_llava_json",
    "llama-factory": "somelvlm.data.exports:export_llama_factory",
})
"""``somelvlm data export --format NAME`` -> its writer ``(somedata, tmp_out, media_dir=, name=)``."""


def export_somedata(somedata: str | Path, out: str | Path, fmt: str, *, media_dir: str | Path | None = None,
                    name: str = "somedata") -> ExportResult:
    """Export the SoMeData build in ``somedata`` to ``out`` in format ``fmt`` (``llava-json`` or
    ``llama-factory``), atomically: ``out`` is replaced only when every file was written.

    ``media_dir`` is the folder the records' image paths are relative to (the data root the build
    read); LLaMA-Factory's entries carry it, and it is checked to hold the first image."""
    somedata, out = Path(somedata), Path(out)
    writer: Callable = EXPORTS.get(fmt)
    if not (somedata / "train.jsonl").is_file():
        raise FileNotFoundError(f"{somedata} holds no SoMeData build (train.jsonl is missing): build it with "
                                "`somelvlm data build --out FOLDER`")
    if media_dir is not None and not Path(media_dir).is_dir():
        raise FileNotFoundError(f"media_dir {media_dir} is not a folder: pass the data root the build read")
    if not name.replace("_", "").replace("-", "").isalnum():
        raise ValueError(f"dataset name {name!r}: use letters, digits, '-' and '_' only")
    if out.resolve() == somedata.resolve():
        raise ValueError(f"the export folder {out} is the SoMeData folder itself: pass another --out")
    _check_media(somedata, media_dir)
    with atomic_dir(out) as tmp:  # out is replaced only when every file was written
        result = writer(somedata, tmp, media_dir=Path(media_dir) if media_dir is not None else None, name=name)
        written = [f.relative_to(tmp) for f in result.files]
    result.out = out
    result.files = [out / f for f in written]
    return result


def _splits(somedata: Path) -> Iterator[tuple[str, Path]]:
    for split in SPLITS:
        path = somedata / f"{split}.jsonl"
        if path.is_file():
            yield split, path


def _check_media(somedata: Path, media_dir: str | Path | None) -> None:
    """With a ``media_dir``: the first record with an image must find it there (a wrong folder fails now)."""
    if media_dir is None:
        return
    for _, path in _splits(somedata):
        for record in read_records(path):
            if record.get("image"):
                if not (Path(media_dir) / record["image"]).is_file():
                    raise FileNotFoundError(f"{path}: image {record['image']} of record {record['id']} is not "
                                            f"under media_dir {media_dir}: pass the data root the build read")
                return


def _llama_factory_readme(name: str, info: dict, media_dir: Path | None) -> str:
    media = str(Path(media_dir).resolve()) if media_dir is not None else "/path/to/the/data/root"
    train = f"{name}_train"
    evals = [k for k in info if k != train]
    return "\n".join([
        f"# {name} for LLaMA-Factory", "",
        "SoMeData instruction records in LLaMA-Factory's ShareGPT format (`messages` with `role` / `content`, "
        "and `images`: a list with the post's image, empty for text posts). `dataset_info.json` registers "
        f"{', '.join(f'`{k}`' for k in info)}.", "",
        "Image paths are relative to the data root the SoMeData build read. LLaMA-Factory joins them to "
        "`media_dir`: recent versions read the `media_dir` written into each `dataset_info.json` entry; "
        "every version reads the training argument `media_dir`, so set it too:", "",
        "```yaml",
        "### in your LLaMA-Factory training config",
        "dataset_dir: <this folder>",
        f"dataset: {train}",
        *([f"eval_dataset: {evals[0]}"] if evals else []),
        f"media_dir: {media}",
        "template: qwen2_vl   # the template of the model you fine-tune",
        "```", "",
        "Each user turn with an image holds exactly one `<image>` placeholder (LLaMA-Factory checks that the "
        "number of placeholders equals the number of images).", "",
        "Made by `somelvlm data export --format llama-factory`.", "",
    ])
