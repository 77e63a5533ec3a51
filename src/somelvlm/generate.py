"""Tasks by generation: any task of the framework asked of a ``Generator`` with the task's own
prompt templates; generation tasks return the text, classification tasks the parsed label (or
``invalid``, SoMeLVLM's zero-shot protocol).

* detoxify: a polite rewrite (ParaDetox)            * explain_sarcasm: what the post literally means
* explain_offensive_meme: why a meme is offensive   * hashtags: hashtags for a post
* any classification task: its label, parsed from the answer

>>> rows = generate_task("detoxify", [Post(id="1", text="shut up, idiot")])     # doctest: +SKIP
>>> rows[0]["answer"]                                                          # doctest: +SKIP
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from somelvlm.models.generation import GenerationConfig, Generator
from somelvlm.posts import Post
from somelvlm.taxonomy.parser import INVALID, parse_answer
from somelvlm.taxonomy.task import Task

DEFAULT_GENERATOR = "some-lvlm"
MAX_NEW_TOKENS = {"detoxify": 48, "explain_sarcasm": 48, "explain_offensive_meme": 64, "hashtags": 24}
"""Answer length per generation task; classification answers need only a few tokens."""


@dataclass
class TaskPrompt:
    """One post turned into a prompt of a task."""

    prompt: str
    image: object | None = None


def task_prompt(task: Task, post: Post, prompt_index: int = 0) -> TaskPrompt:
    """The task's template ``prompt_index`` filled with the post's text; its image (if the model
    reads images) goes with it. A classification prompt lists the task's answer choices."""
    return TaskPrompt(task.render(prompt_index, post.text or ""), post.image)


def answer_of(task: Task, raw: str) -> dict:
    """A model answer as a result row: ``{"answer": raw}`` plus ``label`` for classification
    (``invalid`` when it names no label) or ``text`` for generation (``invalid`` when empty)."""
    parsed = parse_answer(task, raw)
    if task.kind == "classification":
        return {"answer": raw, "label": parsed}
    if task.kind == "regression":
        return {"answer": raw, "value": parsed}
    return {"answer": raw, "text": parsed if parsed != INVALID else ""} | ({"invalid": True} if parsed == INVALID else {})


def run_task(generator: Generator, task: Task, posts: list[Post], prompt_index: int = 0,
             max_new_tokens: int | None = None, batch_size: int = 8) -> list[dict]:
    """One result row per post (``id``, ``text``, ``answer`` and ``label`` / ``text``), in order."""
    budget = max_new_tokens or MAX_NEW_TOKENS.get(task.name, 12 if task.kind != "generation" else 64)
    config = GenerationConfig(max_new_tokens=budget)
    rows = []
    for start in range(0, len(posts), batch_size):
        chunk = posts[start:start + batch_size]
        prompts = [task_prompt(task, p, prompt_index) for p in chunk]
        images = [tp.image for tp in prompts]
        answers = generator.generate([tp.prompt for tp in prompts],
                                     images if any(im is not None for im in images) else None, config)
        for post, raw in zip(chunk, answers):
            rows.append({"id": post.id, "text": post.text or "", **answer_of(task, raw)})
    return rows


def generate_task(task_name: str, posts: list[Post], model: str | Generator = DEFAULT_GENERATOR,
                  prompt_index: int = 0, max_new_tokens: int | None = None, batch_size: int = 8) -> list[dict]:
    """``run_task`` with a task name and a generator name / folder (loaded here) or instance."""
    from somelvlm.models.generation import load_generator
    from somelvlm.taxonomy.registry import get_task

    task = get_task(task_name)
    generator = load_generator(model) if isinstance(model, (str, Path)) else model
    return run_task(generator, task, posts, prompt_index, max_new_tokens, batch_size)


def read_posts(texts: list[str], images: list[Path], path: Path | None) -> list[Post]:
    """Posts from ``--text``/``--image`` pairs or a JSONL file (``text``, optional ``image`` and
    ``id``); a bad line is an error naming the file and line."""
    from somelvlm.posts import clean_text, load_image

    if images and len(images) != len(texts):
        raise ValueError(f"got {len(images)} --image for {len(texts)} --text: give one image per text or none")
    posts = [Post(id=str(i), text=clean_text(t), image=load_image(images[i]) if images else None)
             for i, t in enumerate(texts)]
    if path is not None:
        if not path.is_file():
            raise FileNotFoundError(f"input {path} not found")
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    image = load_image(path.parent / row["image"]) if row.get("image") else None
                    posts.append(Post(id=str(row.get("id", n)), text=clean_text(row.get("text")), image=image))
                except (ValueError, KeyError, OSError) as e:
                    raise ValueError(f"{path}:{n}: {e}") from e
    if not posts:
        raise ValueError("no posts: pass --text or --input")
    return posts


class GenerativeTasks:
    """The generation tasks of ``analyze``: a generator (loaded on first use) and the tasks it runs,
    adding ``{"text": ...}`` (or ``{"label": ...}``) per task to each row."""

    def __init__(self, tasks: list[Task], model: str | Path | Generator | None = None) -> None:
        self.tasks = tasks
        self.model = model or DEFAULT_GENERATOR
        self._generator: Generator | None = None

    @property
    def generator(self) -> Generator:
        if self._generator is None:
            from somelvlm.models.generation import load_generator

            self._generator = self.model if not isinstance(self.model, (str, Path)) else load_generator(self.model)
        return self._generator

    def __call__(self, posts: list[Post], rows: list[dict]) -> list[dict]:
        for task in self.tasks:
            # text-only generation for text tasks; memes keep their image when the task reads one
            chosen = posts if task.modality != "text" else [Post(id=p.id, text=p.text or "") for p in posts]
            for row, result in zip(rows, run_task(self.generator, task, chosen)):
                keep = ("text", "answer") if task.kind == "generation" else ("label", "value", "answer")
                row[task.name] = {k: result[k] for k in keep if k in result}
        return rows
