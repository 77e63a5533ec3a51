"""What the endpoints compute, apart from HTTP: task selection, the batched classifier call, the
results grouped by cognitive level (with the radar chart's score per level), and generation.

The classifier call is shared by every concurrent request: the micro-batcher hands ``classify`` a
list of ``(text, tasks)`` items; one encoder pass serves them all, and each request keeps only the
tasks it asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from somelvlm.serve.errors import APIError


@dataclass
class TaskChoice:
    """The tasks one request runs: classifier heads, generation tasks, and those it cannot run (why)."""

    classify: list[str]
    generate: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


class AnalysisService:
    """The loaded classifier (an ``Analyzer``) and optional ``Generator`` behind the endpoints."""

    def __init__(self, analyzer, generator=None) -> None:
        self.analyzer = analyzer
        self.model = analyzer.model
        self.generator = generator
        self.model_name = self.model.folder.name
        from somelvlm.taxonomy.levels import LEVELS

        self._levels = list(LEVELS)
        self._task_meta: dict[str, dict] = {}

    # ----- tasks -------------------------------------------------------------------------------------
    def choose(self, tasks: list[str] | None, levels: list[str] | None, generate: bool = True) -> TaskChoice:
        """Tasks for a request; unknown names are a 400 naming the closest ones."""
        from somelvlm.registry import UnknownNameError
        from somelvlm.taxonomy.registry import select_tasks

        heads = set(self.model.tasks)
        if not tasks and not levels:
            return TaskChoice(classify=list(self.model.tasks))
        try:
            chosen = select_tasks(tasks or [], levels or [])
        except UnknownNameError as err:
            raise APIError(400, str(err), param="levels" if levels and "level" in str(err) else "tasks") from None
        choice = TaskChoice(classify=[])
        for task in chosen:
            if task.name in heads:
                choice.classify.append(task.name)
            elif task.kind == "generation":
                if self.generator is None:
                    choice.skipped[task.name] = "no generative model loaded (start the server with --generator)"
                elif generate:
                    choice.generate.append(task.name)
                else:
                    choice.skipped[task.name] = "generation not asked for (generate=false)"
            else:
                choice.skipped[task.name] = f"the model {self.model_name} has no head for it"
        if not choice.classify and not choice.generate:
            raise APIError(400, f"none of the chosen tasks can run here: {choice.skipped}; this model serves: "
                                f"{', '.join(self.model.tasks)}", param="tasks")
        return choice

    # ----- the batched model call -------------------------------------------------------------------
    def classify(self, items: list[tuple[str, tuple[str, ...]]]) -> list[dict[str, np.ndarray]]:
        """One encoder pass for all items; ``items[i] = (text, tasks)`` -> ``{task: probabilities}``."""
        union = sorted({t for _, tasks in items for t in tasks})
        probs = self.model.predict_proba([text for text, _ in items], union) if union else {}
        return [{t: probs[t][i] for t in tasks} for i, (_, tasks) in enumerate(items)]

    def format(self, task: str, row: np.ndarray, digits: int = 4) -> dict:
        """A prediction as ``somelvlm.analyze`` gives it (probabilities to 4 digits, ratings to 3 by
        default); ``digits`` = 9 round-trips float32 exactly."""
        spec = self.model.specs[task]
        if spec.kind == "regression":
            return {"value": _round(float(np.clip(row, 0, 5)), digits if digits >= 9 else min(digits, 3))}
        if spec.groups:
            return {"targets": {g: _label(spec.labels, row[j], digits) for j, g in enumerate(spec.groups)}}
        return _label(spec.labels, row, digits)

    # ----- generation -------------------------------------------------------------------------------
    def generate(self, items: list[tuple]) -> list[str]:
        """Batched generation; ``items[i] = (prompt, image or None, GenerationConfig)``, one config per call."""
        prompts = [p for p, _, _ in items]
        images = [img for _, img, _ in items]
        return self.generator.generate(prompts, images if any(i is not None for i in images) else None,
                                       config=items[0][2])

    def task_image(self, task: str, image):
        """The post's image for a task that reads one; text tasks (detoxify, hashtags) get None, so a
        text-only generator can still run them on image posts."""
        from somelvlm.taxonomy.registry import get_task

        return image if get_task(task).modality != "text" else None

    def task_prompt(self, task: str, text: str) -> str:
        from somelvlm.taxonomy.registry import get_task

        return get_task(task).render(0, text)

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
                if name in results:
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
        """The classifier's heads as /v1/models lists them (what a remote client needs to decode)."""
        return [{"task": s.task, "kind": s.kind, "labels": list(s.labels), "groups": list(s.groups)}
                for s in self.model.specs.values()]


def _round(x: float, digits: int) -> float:
    return float(f"{x:.{digits}g}") if digits >= 9 else round(x, digits)


def _label(labels, p: np.ndarray, digits: int) -> dict:
    k = int(np.argmax(p))
    return {"label": labels[k], "prob": _round(float(p[k]), digits),
            "probs": {lab: _round(float(x), digits) for lab, x in zip(labels, p)}}


def _confidence(result: dict) -> float:
    if "value" in result:
        return result["value"] / 5.0
    if "targets" in result:
        return float(np.mean([t["prob"] for t in result["targets"].values()]))
    return float(result["prob"])
