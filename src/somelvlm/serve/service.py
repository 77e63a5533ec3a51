"""What the endpoints compute apart from HTTP: task choice and the batched calls into the ``Pipeline``
(the same one ``somelvlm analyze`` runs), and the results grouped by cognitive level.

The micro-batchers hand ``classify`` a list of ``(post, tasks, digits)`` items from concurrent
requests and ``generate`` a list of ``(post, task)`` items; each is one pipeline call, so a post gets
the same answer here as from the CLI or the Python API.
"""

from __future__ import annotations

import numpy as np

from somelvlm.pipeline import TaskChoice  # noqa: F401 - re-exported
from somelvlm.serve.errors import APIError


class AnalysisService:
    """The ``Pipeline`` (and its generator, when the server has one) behind the endpoints."""

    def __init__(self, pipeline, generator=None) -> None:
        from somelvlm.taxonomy.levels import LEVELS

        if generator is not None:  # a copy: the caller's pipeline keeps its own generator (or none)
            import copy

            pipeline = copy.copy(pipeline)
            pipeline._generator = generator
        self.pipeline = pipeline
        self.generator = pipeline._generator
        self.model = pipeline.classifier
        self.model_name = pipeline.name
        self._levels = list(LEVELS)
        self._task_meta: dict[str, dict] = {}

    # ----- tasks -------------------------------------------------------------------------------------
    def choose(self, tasks: list[str] | None, levels: list[str] | None, generate: bool = True,
               image: bool = False) -> TaskChoice:
        """Tasks for a request; unknown names are a 400 naming the closest ones. With an image, generation
        tasks that read images are skipped (with the reason) when the generator cannot read images."""
        from somelvlm.registry import UnknownNameError
        from somelvlm.taxonomy.registry import get_task

        try:
            choice = self.pipeline.plan(tasks, levels, generate)
        except UnknownNameError as err:
            raise APIError(400, str(err), param="levels" if levels and "level" in str(err) else "tasks") from None
        if image and choice.generate and not bool(getattr(self.generator, "reads_images", True)):
            for t in [t for t in choice.generate if get_task(t).modality != "text"]:
                choice.generate.remove(t)
                choice.skipped[t] = f"the generative model {self.generator.name} cannot read images"
        if not choice.classify and not choice.generate:
            raise APIError(400, f"none of the chosen tasks can run here: {choice.skipped}; this model serves: "
                                f"{', '.join(self.pipeline.head_tasks)}", param="tasks")
        return choice

    # ----- the batched pipeline calls ----------------------------------------------------------------
    def classify(self, items: list[tuple]) -> list:
        """``items[i] = (post, tasks, digits)`` (one ``digits`` per call) -> the pipeline's result dict
        or the ``PostError`` that kept the post out (e.g. no readable text)."""
        return self.pipeline.run([(post, tuple(tasks)) for post, tasks, _ in items], digits=items[0][2])

    def generate_tasks(self, items: list[tuple]) -> list[dict]:
        """``items[i] = (post with text, task)`` -> ``{"answer", "text" | "label"}``, with the task's budget."""
        return self.pipeline.generate(list(items))

    def generate(self, items: list[tuple]) -> list[str]:
        """Raw prompts (``/v1/generate``, chat): ``items[i] = (prompt, image or None, GenerationConfig)``."""
        prompts = [p for p, _, _ in items]
        images = [img for _, img, _ in items]
        return self.generator.generate(prompts, images if any(i is not None for i in images) else None,
                                       config=items[0][2])

    # ----- views ------------------------------------------------------------------------------------
    def by_level(self, results: dict[str, dict], generated: dict[str, str]) -> list[dict]:
        """The five levels in order, each naming its tasks (their results stay in ``results`` /
        ``generated``, not repeated here) with a score.

        ``score`` (the radar chart's value) is the mean confidence of the level's classifications:
        the top label's probability, averaged over stance targets; ratings count as value / 5.
        None for a level with no result.
        """
        out = []
        for lv in self._levels:
            entries, scores = [], []
            for name in list(results) + list(generated):
                meta = self._meta(name)
                if meta["level"] != lv.id:
                    continue
                entries.append({"task": name, "family": meta["family"], "kind": meta["kind"]})
                if name in results and not results[name].get("withheld"):
                    scores.append(_confidence(results[name]))
            out.append({"id": lv.id, "name": lv.name, "description": lv.description,
                        "score": round(float(np.mean(scores)), 4) if scores else None, "tasks": entries})
        return out

    def _meta(self, name: str) -> dict:
        """Level, family and description of a task, read once (the page asks for them on every request)."""
        if name not in self._task_meta:
            from somelvlm.taxonomy.levels import family_name
            from somelvlm.taxonomy.registry import get_task

            task = get_task(name)
            self._task_meta[name] = {"level": task.level, "family": family_name(task.family), "kind": task.kind,
                                     "description": task.description}
        return self._task_meta[name]

    def heads(self) -> list[dict]:
        """The heads as /v1/models lists them (what a remote client needs to decode)."""
        specs = [self.pipeline.spec(t) for t in self.pipeline.head_tasks]
        return [{"task": s.task, "kind": s.kind, "labels": list(s.labels), "groups": list(s.groups)} for s in specs]


def _confidence(result: dict) -> float:
    if "value" in result:
        return result["value"] / 5.0
    if "targets" in result:
        return float(np.mean([t["prob"] for t in result["targets"].values()]))
    return float(result["prob"])
