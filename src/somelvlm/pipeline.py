"""The one road every post takes: ``somelvlm analyze`` / ``generate`` / ``eval``, ``somelvlm.analyze``,
the server's micro-batchers and the batch runner all call a ``Pipeline``.

For a batch of posts it

1. reads each post's text once: its caption, else the text OCR finds on its image;
2. sends each classification or rating task to the best model for the post: the image+text head
   when the post has an image and such a head exists and its image helps (``image_helps``, chosen on
   validation), else the text classifier; each prediction's ``modality`` ("image+text" / "text") says
   which answered; each model is called once per batch for all the tasks it serves; entry points ask
   ``needs_image`` before decoding an image, so an image no task uses is never opened;
3. runs RKC over a retrieval memory when asked (``rkc=INDEX``);
4. asks the generator for generation tasks (and for classification tasks when there is no
   classifier), with each task's own answer budget (task YAML ``generation.max_new_tokens``), and
   parses the answers (``taxonomy.parser``);
5. writes every prediction one way (``models.base.format_prediction``).

>>> pipe = Pipeline("some-mini", tasks=["emotion", "irony"])          # doctest: +SKIP
>>> pipe([Post(id="1", text="what a lovely day #sun")])               # doctest: +SKIP
[{'emotion': {'label': 'joy', 'prob': 0.93, 'probs': {...}, 'in_domain': ..., ...}, 'irony': {...}}]
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from somelvlm.posts import Post, PostError
from somelvlm.registry import Registry

STAGES = Registry("pipeline stage", {"rkc": "somelvlm.retrieval.stage:RKCStage"})
"""Optional stages run after the classifiers, by name (lazy targets: the pipeline does not import them)."""

DEFAULT_IMAGE_HEADS = "some-mini-mm"
DEFAULT_GENERATOR = "some-lvlm"
NO_GENERATOR = "no generative model loaded (give a generator: --generator NAME_OR_FOLDER)"


@dataclass
class TaskChoice:
    """What a set of tasks becomes on this pipeline: tasks answered by a classifier head, tasks answered
    by the generator, and tasks that cannot run here (with the reason)."""

    classify: list[str] = field(default_factory=list)
    generate: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return self.classify + self.generate


class Pipeline:
    """Models plus the chosen tasks; call it on a batch of ``Post``s to get one result dict per post.

    ``model``: the classifier (shipped name, folder, server URL or a loaded ``Classifier``); a
    generator given here is used as the generator and every task is answered by generation.
    ``generator``: for generation tasks (name, folder, URL or a ``Generator``; loaded on first use,
    default ``some-lvlm``). ``image_heads``: image+text heads for posts with an image (default the
    shipped ``some-mini-mm``; ``multimodal=False`` turns them off). ``rkc``: a retrieval memory to
    add RKC predictions from. ``digits``: probability digits of formatted predictions.
    ``auto_generator``: load the default generator when a generation task is named and none was
    given (the server turns this off: it generates only with ``--generator``). ``strict``: a named task
    that cannot run is an error (else it is only listed in ``choice.skipped``, as for ``eval``).
    ``withheld``: also serve the heads a model ships but withholds by default (``withheld`` in its
    ``config.json``: no better than the majority / stratified baselines on validation); by default a
    withheld head's task is not run, and naming it says why (``choice.skipped``, or the strict error).
    """

    def __init__(self, model: Any = None, tasks: list[str] | None = None, levels: list[str] | None = None, *,
                 generator: Any = None, runtime: str = "auto", ocr: bool = True, multimodal: bool = True,
                 image_heads: Any = None, rkc: str | Path | None = None, threads: int | None = None,
                 digits: int = 4, prompt_index: int = 0, batch_size: int = 8, auto_generator: bool = True,
                 strict: bool = True, int8: bool = False, withheld: bool = False) -> None:
        from somelvlm.models import load_model

        if int8:  # the old flag: torch dynamic int8 is a runtime
            runtime = "torch-int8"
        loaded = model if _is_model(model) else load_model(model, runtime=runtime, threads=threads)
        self.classifier = loaded if hasattr(loaded, "predict_proba") else None
        self._generator = generator if _is_model(generator) else None
        if self.classifier is None:  # a generator was named as the model
            self._generator = loaded
        self._generator_name = generator if not _is_model(generator) else None
        self.auto_generator = auto_generator
        self.serve_withheld = withheld
        self.use_ocr, self._ocr, self._ocr_lock = ocr, None, threading.Lock()
        self.digits, self.prompt_index, self.batch_size = digits, prompt_index, batch_size
        self.image_heads = None
        if multimodal and self.classifier is not None:
            self.image_heads = image_heads if _is_model(image_heads) else _optional_image_heads(image_heads, threads)
        choice = self.plan(tasks, levels)
        if not choice.names and strict:
            raise ValueError(f"none of the chosen tasks can run here ({choice.skipped}); this pipeline serves: "
                             f"{', '.join(self.head_tasks) or 'generation tasks only'}")
        if choice.skipped and tasks and strict:
            name, why = next(iter(choice.skipped.items()))
            raise ValueError(f"task {name}: {why}; this model serves: {', '.join(self.head_tasks)}")
        self.choice = choice
        self.stages = [STAGES.get("rkc")(rkc)] if rkc else []
        self._rkc = rkc

    def fingerprint(self) -> dict:
        """What decides this pipeline's answers, for a resumed batch run to compare with the run that
        wrote its output (``batch.output.check_run``): the tasks, each model's name, runtime and a
        digest of its folder's weights and configs, OCR, served withheld heads, digits, RKC index."""
        from somelvlm.digests import model_files_digest

        rkc = Path(self._rkc) if self._rkc else None
        return {"tasks": list(self.tasks), "classifier": _identity(self.classifier),
                "image_heads": _identity(self.image_heads),
                "generator": _identity(self._generator) if self._generator is not None else self._generator_name,
                "ocr": self.use_ocr, "withheld": self.serve_withheld, "digits": self.digits,
                "rkc": None if rkc is None else model_files_digest(rkc, None) if rkc.is_dir() else str(rkc)}

    # ----- what runs where --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        model = self.classifier if self.classifier is not None else self._generator
        return getattr(model, "name", type(model).__name__)

    @property
    def model(self):
        """The classifier (None when every task is answered by generation)."""
        return self.classifier

    @property
    def withheld(self) -> dict[str, str]:
        """``task -> reason`` of the text classifier's heads this pipeline does not serve (empty with
        ``withheld=True``). A task whose text head is withheld but whose image+text head serves is still
        run: posts with an image get the image+text head's answer, the others a ``withheld`` record."""
        if self.serve_withheld or self.classifier is None:
            return {}
        return dict(getattr(self.classifier, "withheld", {}))

    @property
    def head_tasks(self) -> list[str]:
        """Tasks with a served head: the classifier's, less those whose text head is withheld and that
        have no image+text head in service. Image+text heads only replace the text head's answer on posts
        with an image, for tasks the classifier also has (so every post gets every head task)."""
        if self.classifier is None:
            return []
        withheld, image_tasks = self.withheld, self.image_tasks
        return [t for t in self.classifier.specs if t not in withheld or t in image_tasks]

    @property
    def tasks(self) -> list[str]:
        """Every task this pipeline runs by default, heads first."""
        return self.choice.names

    def spec(self, task: str):
        """The head spec of a task (from the text classifier, else the image+text heads, else the taxonomy)."""
        for model in (self.classifier, self.image_heads):
            if model is not None and task in model.specs:
                return model.specs[task]
        from somelvlm.taxonomy.heads import head_spec

        return head_spec(task)

    def plan(self, tasks: list[str] | None = None, levels: list[str] | None = None,
             generate: bool = True) -> TaskChoice:
        """Where each chosen task runs; nothing chosen means every head. A task without a head runs by
        generation when it is a generation task (or there is no classifier) and a generator is at
        hand: one was given, or the task was named and ``auto_generator`` lets the default load.
        Unknown task or level names raise ``UnknownNameError`` naming the closest ones."""
        from somelvlm.taxonomy.registry import select_tasks

        if not tasks and not levels:
            return TaskChoice(classify=self.head_tasks)
        heads, named = set(self.head_tasks), set(tasks or [])
        choice = TaskChoice()
        withheld = self.withheld
        for task in select_tasks(tasks or [], levels or []):
            if task.name in heads:
                choice.classify.append(task.name)
            elif task.name in withheld:
                choice.skipped[task.name] = (f"the {task.name} head of {self.name} is withheld: {withheld[task.name]} "
                                             "(serve it anyway with withheld=True, --withheld)")
            elif task.kind != "generation" and self.classifier is not None:
                choice.skipped[task.name] = f"the model {self.name} has no head for it"
            elif not generate:
                choice.skipped[task.name] = "generation not asked for (generate=false)"
            elif self.has_generator() or (task.name in named and self.auto_generator):
                choice.generate.append(task.name)
            else:
                choice.skipped[task.name] = NO_GENERATOR
        return choice

    @property
    def generator(self):
        """The generative model, loaded on first use."""
        if self._generator is None:
            from somelvlm.models import load_generator

            self._generator = load_generator(self._generator_name or DEFAULT_GENERATOR)
        return self._generator

    @property
    def generation_runtime(self) -> str | None:
        """How the loaded generator decodes (``torch``, ``ctranslate2``, ...); None before it loads or
        for a remote one."""
        return getattr(self._generator, "runtime", None) if self._generator is not None else None

    def has_generator(self) -> bool:
        return self._generator is not None or self._generator_name is not None

    # ----- reading ----------------------------------------------------------------------------------
    def read(self, post: Post) -> tuple[Post, str]:
        """``(post with its text, where the text came from)``: the caption, else OCR of its image (once)."""
        if post.text:
            return post, "text"
        if post.image is not None and self.use_ocr:
            with self._ocr_lock:
                if self._ocr is None:
                    try:
                        from somelvlm.features.ocr import shared_ocr
                    except ImportError as err:
                        raise PostError("needs OCR", "an image-only post needs OCR: pip install "
                                                     f"'somelvlm[features]' ({err})") from None
                    self._ocr = shared_ocr()
                text = self._ocr.read(post.image).strip()
            if text:
                return Post(id=post.id, text=text, image=post.image, meta=post.meta), "ocr"
            raise PostError("no text", "the image carries no readable text and the post has no caption")
        raise PostError("no text", "the post has no text and OCR is off")

    # ----- running ----------------------------------------------------------------------------------
    def __call__(self, posts: list[Post]) -> list[dict | PostError]:
        """One result per post for the pipeline's tasks (the batch runner's ``predict``): a dict, or the
        ``PostError`` of a post that could not be read (the runner writes it as an error record)."""
        return self.run([(p, tuple(self.tasks)) for p in posts])

    def run(self, items: list[tuple[Post, tuple[str, ...]]], digits: int | None = None) -> list[dict | PostError]:
        """Per item ``(post, tasks)``: a result dict ``{task: prediction, ...}`` (plus ``text_source`` and
        ``text_read`` when the text came from OCR, ``rkc`` when RKC runs), or the ``PostError`` that kept
        it out."""
        out: list[dict | PostError] = [{} for _ in items]
        read: list[tuple[int, Post, tuple[str, ...]]] = []
        for i, (post, tasks) in enumerate(items):
            try:
                post, source = self.read(post)
            except PostError as err:
                out[i] = err
                continue
            if source != "text":
                out[i]["text_source"], out[i]["text_read"] = source, post.text
            read.append((i, post, tasks))
        heads = set(self.head_tasks)
        classify = [(i, p, tuple(t for t in tasks if t in heads)) for i, p, tasks in read]
        for (i, _, _), preds in zip(classify, self.classify([(p, t) for _, p, t in classify], digits)):
            out[i].update(preds)
        gen_items = [(i, p, t) for i, p, tasks in read for t in tasks if t not in heads]
        if gen_items:
            for (i, _, task), result in zip(gen_items, self.generate([(p, t) for _, p, t in gen_items])):
                out[i][task] = result
        if self.stages and read:
            rows = [out[i] for i, _, _ in read]
            for stage in self.stages:
                stage([p for _, p, _ in read], [p.text for _, p, _ in read], rows)
        return out

    def classify(self, items: list[tuple[Post, tuple[str, ...]]], digits: int | None = None) -> list[dict]:
        """Formatted predictions per item ``(post with text, head tasks)``; each model runs once."""
        digits = self.digits if digits is None else digits
        out: list[dict] = [{} for _ in items]
        for task, idx, probs, domain, extra in self._head_outputs(items):
            spec = self.spec(task)
            for j, i in enumerate(idx):
                out[i][task] = dict(extra) if probs is None else _format(spec, probs[j], digits, domain, j, extra)
        return out

    def head_probs(self, posts: list[Post], task: str) -> np.ndarray:
        """The raw head output of ``task`` for posts that already carry their text (for ``eval``): routed
        like ``classify``, unformatted, in the input order."""
        result = np.zeros((len(posts), *_shape(self.spec(task))), dtype=np.float32)
        for _, idx, probs, _, extra in self._head_outputs([(p, (task,)) for p in posts]):
            if probs is None:
                raise ValueError(f"task {task}: {extra['withheld']} (score it with Pipeline(..., withheld=True))")
            result[idx] = probs
        return result

    @property
    def image_tasks(self) -> set[str]:
        """Head tasks answered by the image+text head on posts with an image: those it has a head for
        whose image helps (``image_helps`` in its ``config.json``, chosen on validation); the text head
        answers every other task, image or not."""
        if self.image_heads is None or self.classifier is None:
            return set()
        helps = getattr(self.image_heads, "image_helps", {})
        withheld = {} if self.serve_withheld else getattr(self.image_heads, "withheld", {})
        return {t for t in self.image_heads.specs
                if t in self.classifier.specs and helps.get(t, True) and t not in withheld}

    def needs_image(self, has_text: bool, tasks: tuple[str, ...] | list[str] | None = None) -> bool:
        """Whether a post's image must be decoded for ``tasks`` (default: this pipeline's tasks): to OCR
        it (no caption), for an image+text head whose image helps, or for a generation task that reads
        images. When False, entry points leave the image undecoded (the text heads answer)."""
        from somelvlm.taxonomy.registry import get_task

        if (not has_text and self.use_ocr) or self.stages:  # OCR reads it; an RKC memory may embed it
            return True
        tasks = self.tasks if tasks is None else tasks
        heads = set(self.head_tasks)
        return any(t in self.image_tasks or (t not in heads and get_task(t).modality != "text") for t in tasks)

    def _head_outputs(self, items: list[tuple[Post, tuple[str, ...]]]):
        """Yield ``(task, item indices, outputs, domain, extra)`` per model and task it answered; outputs
        None for posts a withheld text head would have answered (``extra`` is then their whole record)."""
        image_tasks = self.image_tasks
        routed: dict[str, list[int]] = {"image": [], "text": []}
        for i, (post, tasks) in enumerate(items):
            if post.image is not None and image_tasks & set(tasks):
                routed["image"].append(i)
            if any(t not in image_tasks or post.image is None for t in tasks):
                routed["text"].append(i)
        if routed["image"]:
            idx = routed["image"]
            union = sorted({t for i in idx for t in items[i][1] if t in image_tasks})
            posts = [items[i][0] for i in idx]
            if hasattr(self.image_heads, "predict_with_domain"):
                probs, domain = self.image_heads.predict_with_domain(posts, union)
            else:  # a user's image model without applicability
                probs, domain = self.image_heads.predict_proba(posts, union), {}
            for task in union:
                keep = [j for j, i in enumerate(idx) if task in items[i][1]]
                dom = domain.get(task)
                dom = (dom[0][keep], dom[1]) if dom is not None else None
                yield task, [idx[j] for j in keep], probs[task][keep], dom, {"modality": "image+text"}
        if routed["text"] and self.classifier is not None:
            idx = routed["text"]
            wanted = {i: {t for t in items[i][1] if t in self.classifier.specs
                          and not (t in image_tasks and items[i][0].image is not None)} for i in idx}
            withheld = self.withheld
            for task in sorted({t for i in idx for t in wanted[i]} & set(withheld)):
                record = {"label": None, "withheld": withheld[task], "modality": "text",
                          "in_domain": None, "domain_score": None}
                yield task, [i for i in idx if task in wanted[i]], None, None, record
            wanted = {i: {t for t in w if t not in withheld} for i, w in wanted.items()}
            idx = [i for i in idx if wanted[i]]
            union = sorted({t for i in idx for t in wanted[i]})
            if not union:
                return
            posts = [items[i][0] for i in idx]
            probs = self.classifier.predict_proba(posts, union)
            domain = self.classifier.domain_scores(posts, union) if hasattr(self.classifier, "domain_scores") else {}
            for task in union:
                keep = [j for j, i in enumerate(idx) if task in wanted[i]]
                threshold = self.classifier.domain_threshold(task) if domain else None
                dom = (domain[task][keep], threshold) if threshold is not None else None
                yield task, [idx[j] for j in keep], probs[task][keep], dom, {"modality": "text"}

    def generate(self, items: list[tuple[Post, str]], prompt_index: int | None = None,
                 max_new_tokens: int | None = None) -> list[dict]:
        """Answers per item ``(post with text, task)``, batched per task with the task's answer budget;
        a classification task's answer is parsed to a label (``invalid`` when it names none)."""
        from somelvlm.models.generation import GenerationConfig
        from somelvlm.taxonomy.registry import get_task

        index = self.prompt_index if prompt_index is None else prompt_index
        out: list[dict] = [{} for _ in items]
        by_task: dict[str, list[int]] = {}
        for i, (_, task) in enumerate(items):
            by_task.setdefault(task, []).append(i)
        reads_images = bool(getattr(self.generator, "reads_images", True))
        for name, idx in by_task.items():
            task = get_task(name)
            config = GenerationConfig(max_new_tokens=max_new_tokens or task.answer_tokens)
            asked = {i: _prompt(task, index, items[i][0]) for i in idx}
            idx = sorted(idx, key=lambda i: len(asked[i]))  # batches of alike length: less padding and prefill
            for start in range(0, len(idx), self.batch_size):
                chunk = idx[start:start + self.batch_size]
                prompts = [asked[i] for i in chunk]
                images = [items[i][0].image if task.modality != "text" and reads_images else None for i in chunk]
                answers = self.generator.generate(prompts, images if any(im is not None for im in images) else None,
                                                  config)
                for i, raw, prompt in zip(chunk, answers, prompts):
                    out[i] = answer_of(task, raw, prompt)
        return out


def answer_of(task, raw: str, prompt: str | None = None) -> dict:
    """A model's answer as a prediction: ``{"answer": raw}`` plus ``label`` for classification
    (``invalid`` when it names no label), ``value`` for ratings, or ``text`` for generation
    (empty, with ``"invalid": true``, when the answer is empty). ``prompt``: the question asked, whose
    choice list fixes what a lettered or numbered answer means."""
    from somelvlm.taxonomy.parser import INVALID, parse_answer

    parsed = parse_answer(task, raw, prompt)
    if task.kind == "classification":
        return {"answer": raw, "label": parsed}
    if task.kind == "regression":
        return {"answer": raw, "value": parsed}
    return {"answer": raw, "text": parsed if parsed != INVALID else ""} | ({"invalid": True} if parsed == INVALID else {})


def _format(spec, row, digits: int, domain, j: int, extra: dict) -> dict:
    from somelvlm.models.base import format_prediction

    dom = (float(domain[0][j]), domain[1]) if domain is not None else None
    return format_prediction(spec, row, digits, dom, **extra)


def _shape(spec) -> tuple[int, ...]:
    if spec.kind == "regression":
        return ()
    return (len(spec.groups), len(spec.labels)) if spec.groups else (len(spec.labels),)


def _prompt(task, index: int, post: Post) -> str:
    """The task's prompt ``index`` for the post; a published prompt kept in ``post.meta["prompt"]``
    (SoMeLVLM's own test items) is asked word for word."""
    meta = dict(post.meta or {})
    return meta["prompt"] if meta.get("prompt") else task.render(index, post.text, meta)


def _is_model(obj: Any) -> bool:
    return obj is not None and not isinstance(obj, (str, Path))


def _identity(model) -> dict | None:
    """A loaded model's name, runtime and folder digest (``digests.model_files_digest``), as far as it has them."""
    from somelvlm.digests import model_files_digest

    if model is None:
        return None
    ident = {"name": str(getattr(model, "name", type(model).__name__)), "kind": type(model).__name__}
    runtime = getattr(model, "runtime", None)
    if isinstance(runtime, str):
        ident["runtime"] = runtime
    folder = getattr(model, "folder", None)
    if folder is not None and Path(folder).is_dir():
        ident["files"] = model_files_digest(folder)
    return ident


def _optional_image_heads(name, threads: int | None):
    """The image+text heads, or None when they are not shipped or their extra is missing (text heads answer)."""
    import logging

    from somelvlm.models import load_model

    try:
        return load_model(name or DEFAULT_IMAGE_HEADS, threads=threads)
    except FileNotFoundError:
        if name:
            raise
        return None
    except ImportError as err:
        logging.getLogger(__name__).warning("image+text heads disabled (pip install 'somelvlm[features]'): %s", err)
        return None
