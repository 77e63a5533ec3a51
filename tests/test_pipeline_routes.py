"""Which head answers: image+text heads only where their image helps (``image_helps``, chosen on
validation), an image no chosen task reads is never decoded, and withheld heads are not served by
default but say why when named. Real shipped models (skipped where they cannot load)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")

from somelvlm.models import ModelFolderError
from somelvlm.posts import Post

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"


@pytest.fixture(scope="module")
def shipped():
    from somelvlm.pipeline import Pipeline

    try:
        pipe = Pipeline("some-mini", ocr=False)
    except (ImportError, FileNotFoundError) as err:
        pytest.skip(f"the shipped model cannot load here: {err}")
    if pipe.image_heads is None:
        pytest.skip("the image+text heads cannot load here (features extra)")
    return pipe


def test_image_helps_is_the_shipped_val_decision(shipped):
    """The shipped ``image_helps`` map is the one benchmarks/image_helps.py decided on validation."""
    from somelvlm.models.mm_runtime import MM_ASSETS

    config = json.loads((MM_ASSETS / "config.json").read_text(encoding="utf-8"))
    measured = json.loads((RESULTS / "image_helps.json").read_text(encoding="utf-8"))["heads"]
    assert config["image_helps"] == {t: r["image_helps"] for t, r in measured.items()}
    for row in measured.values():
        assert row["image_helps"] == (row["val"]["image_text"] > row["val"]["text"])  # decided on val, not test
    assert shipped.image_heads.image_helps == {t: config["image_helps"].get(t, True) for t in shipped.image_heads.specs}
    assert shipped.image_tasks == {t for t, helps in shipped.image_heads.image_helps.items()
                                   if helps and t in shipped.head_tasks}


def _image_post():
    from somelvlm.posts import load_image

    return Post(id="m", text="WHEN IT'S MONDAY AND THE COFFEE IS GONE", image=load_image(EXAMPLES / "monday_meme.png"))


def test_modality_names_the_route(shipped):
    post = _image_post()
    tasks = tuple(t for t in shipped.image_heads.specs if t in shipped.head_tasks) + ("emotion",)
    row = shipped.run([(post, tasks)])[0]
    for task in tasks:
        want = "image+text" if task in shipped.image_tasks else "text"
        assert row[task]["modality"] == want, task
    text_only = shipped.run([(Post(id="t", text=post.text), tasks)])[0]
    for task in tasks:
        assert text_only[task]["modality"] == "text"
        if task not in shipped.image_tasks:  # the image does not help: the same answer as without it
            assert text_only[task] == row[task]


def test_needs_image(shipped):
    text_tasks = ("emotion", "irony") + tuple(t for t in shipped.image_heads.specs
                                              if t in shipped.head_tasks and t not in shipped.image_tasks)
    assert not shipped.needs_image(True, text_tasks)
    for task in shipped.image_tasks:
        assert shipped.needs_image(True, text_tasks + (task,))
    ocr = type(shipped)(shipped.classifier, image_heads=shipped.image_heads, ocr=True)
    assert ocr.needs_image(False, text_tasks)  # no caption: OCR reads the image


def corrupt_png() -> bytes:
    """A PNG whose header (size, format) reads fine and whose pixel data is broken: only decoding fails."""
    data = (EXAMPLES / "monday_meme.png").read_bytes()
    return data[:data.index(b"IDAT") + 44] + bytes(range(256)) * 2


def _corrupt_posts(tmp_path: Path) -> Path:
    (tmp_path / "bad.png").write_bytes(corrupt_png())
    (tmp_path / "meme.png").write_bytes((EXAMPLES / "monday_meme.png").read_bytes())
    (tmp_path / "text.png").write_bytes(b"hello, I am text")
    rows = [{"id": "bad", "text": "WHEN IT'S MONDAY AND THE COFFEE IS GONE", "image": "bad.png"},
            {"id": "good", "text": "WHEN IT'S MONDAY AND THE COFFEE IS GONE", "image": "meme.png"},
            {"id": "no-image", "text": "WHEN IT'S MONDAY AND THE COFFEE IS GONE", "image": "text.png"}]
    path = tmp_path / "posts.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_an_image_no_task_reads_is_never_decoded(shipped, tmp_path, monkeypatch):
    """Tasks that all go to text heads: no image is decoded (decodes counted), so one whose pixel data is
    corrupt is no error; its header is still checked (a file that is no image stays an error record).
    A task whose image helps: every image is decoded, and the corrupt one is an error record naming why."""
    from somelvlm.batch import runner
    from somelvlm.batch.runner import RunConfig, run
    from somelvlm.pipeline import Pipeline

    decoded = []
    real = runner.load_image
    monkeypatch.setattr(runner, "load_image", lambda *a, **k: decoded.append(a[0]) or real(*a, **k))
    posts = _corrupt_posts(tmp_path)
    text_tasks = ["emotion"] + [t for t in shipped.image_heads.specs
                                if t in shipped.head_tasks and t not in shipped.image_tasks]
    pipe = Pipeline(shipped.classifier, text_tasks, image_heads=shipped.image_heads, ocr=False)
    out = tmp_path / "text.jsonl"
    run(posts, out, pipe, RunConfig(batch_size=4), progress=False)
    records = {r["id"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert decoded == []
    assert "error" not in records["bad"] and records["bad"]["emotion"]["modality"] == "text"
    assert records["no-image"]["error"]["reason"] == "not an image"
    for task in text_tasks:
        assert records["bad"][task] == records["good"][task]
    if not shipped.image_tasks:
        return
    task = min(shipped.image_tasks)
    pipe = Pipeline(shipped.classifier, ["emotion", task], image_heads=shipped.image_heads, ocr=False)
    out = tmp_path / "image.jsonl"
    run(posts, out, pipe, RunConfig(batch_size=4), progress=False)
    records = {r["id"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    assert len(decoded) == 3
    assert records["bad"]["error"]["reason"] == "corrupt image"
    assert records["no-image"]["error"]["reason"] == "not an image"
    assert records["good"][task]["modality"] == "image+text"


def _copy_model(tmp_path: Path, **changes) -> Path:
    from somelvlm.models import ASSETS

    folder = tmp_path / "some-mini"
    shutil.copytree(ASSETS / "some-mini", folder)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def test_withheld_heads_are_not_served_by_default_and_say_why(tmp_path):
    from somelvlm.pipeline import Pipeline

    folder = _copy_model(tmp_path, withheld={"irony": "no better than chance on validation"})
    pipe = Pipeline(str(folder), multimodal=False, ocr=False)
    assert "irony" not in pipe.tasks and "irony" not in pipe.head_tasks and "emotion" in pipe.tasks
    assert pipe.withheld == {"irony": "no better than chance on validation"}
    with pytest.raises(ValueError, match="irony.*withheld: no better than chance on validation"):
        Pipeline(pipe.classifier, ["emotion", "irony"], multimodal=False)
    plan = Pipeline(pipe.classifier, multimodal=False, strict=False).plan(["emotion", "irony"])
    assert plan.classify == ["emotion"] and "withheld" in plan.skipped["irony"]
    opted = Pipeline(pipe.classifier, ["emotion", "irony"], multimodal=False, withheld=True)
    assert opted.tasks == ["emotion", "irony"]
    assert opted([Post(id="1", text="yeah right, I love mondays")])[0]["irony"]["label"] in ("irony", "non_irony")


def test_a_bad_withheld_field_names_the_file(tmp_path):
    from somelvlm.models.compact import CompactModel

    with pytest.raises(ModelFolderError, match="no_such_task"):
        CompactModel(_copy_model(tmp_path / "a", withheld={"no_such_task": "x"}), runtime="torch")
    with pytest.raises(ModelFolderError, match="non-empty reason"):
        CompactModel(_copy_model(tmp_path / "b", withheld={"irony": ""}), runtime="torch")


def test_shipped_withheld_heads_are_the_val_decision(shipped):
    """The shipped ``withheld`` maps are what benchmarks/baselines.py decided on validation."""
    from somelvlm.models import ASSETS

    measured = json.loads((RESULTS / "baselines.json").read_text(encoding="utf-8"))["heads"]
    for model in ("some-mini", "some-mini-mm"):
        config = json.loads((ASSETS / model / "config.json").read_text(encoding="utf-8"))
        want = {r["task"] for r in measured.values() if r["model"] == model and r["withheld"]}
        assert set(config.get("withheld", {})) == want, model
    for row in measured.values():
        assert row["withheld"] == (not row["clearly_val"]) and (row["beats_val"] or row["withheld"])
    shipped_config = json.loads((ASSETS / "some-mini" / "config.json").read_text(encoding="utf-8"))
    assert set(shipped.withheld) == set(shipped_config.get("withheld", {}))
    # a withheld text head's task runs only where an image+text head in service answers it (image posts)
    assert set(shipped.withheld) & set(shipped.tasks) == set(shipped.withheld) & shipped.image_tasks


def test_a_withheld_text_head_with_an_image_head_in_service(shipped, tmp_path):
    """The text head withheld, the image+text head serving: posts with an image get the image+text answer,
    posts without one a ``withheld`` record naming why (in the table as "withheld")."""
    from somelvlm.pipeline import Pipeline
    from somelvlm.views import _answer

    if not shipped.image_tasks:
        pytest.skip("no image+text head is in service here")
    task = min(shipped.image_tasks)
    folder = _copy_model(tmp_path, withheld={task: "not better than chance on validation"})
    pipe = Pipeline(str(folder), image_heads=shipped.image_heads, ocr=False)
    assert task in pipe.tasks and task in pipe.withheld
    image_post, text_post = _image_post(), Post(id="t", text="WHEN IT'S MONDAY AND THE COFFEE IS GONE")
    rows = pipe.run([(image_post, (task, "emotion")), (text_post, (task, "emotion"))])
    assert rows[0][task]["modality"] == "image+text" and rows[0][task]["label"] in pipe.spec(task).labels
    assert rows[1][task] == {"label": None, "withheld": "not better than chance on validation", "modality": "text",
                             "in_domain": None, "domain_score": None}
    assert rows[1]["emotion"]["modality"] == "text"
    assert "withheld" in _answer(rows[1][task])[0]
    with pytest.raises(ValueError, match="withheld"):
        pipe.head_probs([text_post], task)
    assert Pipeline(pipe.classifier, [task], multimodal=False, strict=False).choice.skipped[task].startswith(
        f"the {task} head")
