"""Tasks by generation: any task of the framework asked of a ``Generator`` through the ``Pipeline``,
with the task's own prompt templates and answer budget; generation tasks return the text,
classification tasks the parsed label (or ``invalid``, SoMeLVLM's zero-shot protocol).

* detoxify: a polite rewrite (ParaDetox)            * explain_sarcasm: what the post literally means
* explain_offensive_meme: why a meme is offensive   * hashtags: hashtags for a post
* any classification task: its label, parsed from the answer

>>> rows = generate_task("detoxify", [Post(id="1", text="shut up, idiot")])     # doctest: +SKIP
>>> rows[0]["answer"]                                                          # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from somelvlm.pipeline import DEFAULT_GENERATOR, Pipeline, answer_of  # noqa: F401 - answer_of re-exported
from somelvlm.posts import Post


def generate_task(task_name: str, posts: list[Post], model=DEFAULT_GENERATOR, prompt_index: int = 0,
                  max_new_tokens: int | None = None, batch_size: int = 8) -> list[dict]:
    """One row per post, in order: ``{"id", "text": the input post, "answer": the model's answer}``
    plus ``label`` (classification) / ``value`` (ratings) parsed from it, ``invalid: true`` for an
    answer that names no label or is empty, and ``raw`` when the parsed answer differs from what the
    model wrote. ``model``: a generator name, folder, URL or instance."""
    from somelvlm.models import load_generator

    generator = load_generator(model) if isinstance(model, (str, Path)) else model
    pipeline = Pipeline(generator, [task_name], generator=generator, prompt_index=prompt_index,
                        batch_size=batch_size)
    results = pipeline.generate([(p, task_name) for p in posts], max_new_tokens=max_new_tokens)
    rows = []
    for post, result in zip(posts, results):
        raw = result["answer"]
        answer = result.get("text", raw)  # a generation task's parsed answer, else the raw one
        row = {"id": post.id, "text": post.text or "", "answer": answer}
        row |= {k: v for k, v in result.items() if k in ("label", "value", "invalid")}
        if result.get("label") == "invalid":
            row["invalid"] = True
        if answer != raw:
            row["raw"] = raw
        rows.append(row)
    return rows
