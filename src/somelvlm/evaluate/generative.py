"""Scoring a ``Generator`` on SoMeData records, per task, under SoMeLVLM's zero-shot protocol.

Generation tasks: BLEU (sacrebleu) and ROUGE-L (rouge-score) against every reference (ParaDetox has
up to three), hashtag F1 for hashtags, and optionally a 1-5 judge score by any ``Generator``.
Classification by generation: the answer is parsed to a label or ``invalid``; Acc counts invalid as
wrong over all items, Acc* scores only valid answers, valid share says how many were valid.

Also the "delete the toxic words" detox baseline: a word list learned from ParaDetox train pairs
(words the human rewrites removed), deleted from the toxic input.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable

from somelvlm.evaluate.metrics import score
from somelvlm.models.generation import GenerationConfig, Generator
from somelvlm.taxonomy.parser import INVALID, parse_answer
from somelvlm.taxonomy.registry import get_task

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def references(record: dict) -> list[str]:
    """Every reference of a record: ``meta``'s JSON list when present, else the target."""
    refs = record.get("references")
    return list(refs) if refs else [record["conversations"][1]["value"]]


def generate_answers(generator: Generator, records: list[dict], images: Callable[[dict], object] | None = None,
                     batch_size: int = 8, max_new_tokens: int | Callable[[dict], int] = 48) -> list[str]:
    """One answer per record, from its own human prompt (and image, when ``images`` gives one)."""
    answers: list[str] = []
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        budget = max(max_new_tokens(r) if callable(max_new_tokens) else max_new_tokens for r in chunk)
        imgs = [images(r) if images else None for r in chunk]
        prompts = [r["conversations"][0]["value"] for r in chunk]
        answers += generator.generate(prompts, imgs if any(i is not None for i in imgs) else None,
                                      GenerationConfig(max_new_tokens=budget))
    return answers


def score_task(task_name: str, records: list[dict], answers: list[str]) -> dict:
    """The task's metrics for aligned records and raw answers (0-100 scales; n; empty answers).

    Classification: Acc (invalid counts as wrong), Acc* (valid answers only), valid share, plus every
    metric of the task's YAML on the parsed labels. Ratings: valid share and the task's metrics over
    valid answers. Generation: the task's text metrics (BLEU, ROUGE-L, hashtag F1) against every
    reference. ``records[i]`` has ``target`` (a label or number) or ``references`` / a conversation.
    """
    from somelvlm.evaluate.metrics import task_metrics

    task = get_task(task_name)
    out: dict = {"n": len(records), "empty": sum(not a.strip() for a in answers)}
    if task.kind == "classification":
        gold = [r["target"] for r in records]
        pred = [parse_answer(task, a, _prompt_of(r)) for r, a in zip(records, answers)]
        for m in ("accuracy", "acc_star", "valid_share"):
            out[m] = score(m, gold, pred)
        out.update(task_metrics(task_name, gold, pred))
        return out
    if task.kind == "regression":
        pairs = [(float(r["target"]), v) for r, v in zip(records, (parse_answer(task, a, _prompt_of(r)) for r, a in
                                                                   zip(records, answers)))
                 if isinstance(v, (int, float))]
        out["valid_share"] = 100.0 * len(pairs) / max(1, len(records))
        if pairs:
            out.update(task_metrics(task_name, *map(list, zip(*pairs))))
        return out
    gold = [references(r) for r in records]
    hyps = [a if a.strip() else INVALID for a in answers]
    for m in task.metrics:
        if m.name in ("bleu", "rouge_l"):
            out[m.name] = score(m.name, gold, hyps)
        elif m.name == "hashtag_f1":
            out[m.name] = score(m.name, [g[0] for g in gold], hyps)
    return out


def _prompt_of(record: dict) -> str | None:
    """The question a record asked (its ``prompt``, else its first conversation turn), if known."""
    if record.get("prompt"):
        return record["prompt"]
    turns = record.get("conversations") or []
    return turns[0].get("value") if turns and isinstance(turns[0], dict) else None


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def learn_toxic_words(pairs: list[tuple[str, list[str]]], min_count: int = 3, min_rate: float = 0.5) -> set[str]:
    """Words the human rewrites removed: seen in >= ``min_count`` toxic sentences and absent from
    every rewrite of at least ``min_rate`` of them. ``pairs``: (toxic, [rewrites]) from TRAIN only."""
    seen: Counter = Counter()
    removed: Counter = Counter()
    for toxic, rewrites in pairs:
        kept = set().union(*(set(tokens(r)) for r in rewrites)) if rewrites else set()
        for w in set(tokens(toxic)):
            if not re.match(r"\w", w):
                continue
            seen[w] += 1
            removed[w] += w not in kept
    return {w for w, n in seen.items() if n >= min_count and removed[w] / n >= min_rate}


def delete_words(text: str, words: set[str]) -> str:
    """``text`` without the listed words (case-insensitive, whole words), spaces tidied."""
    kept = [t for t in re.findall(r"\S+", text) if re.sub(r"\W", "", t.lower()) not in words]
    return " ".join(kept)


def judge_task(judge: Generator, task_name: str, records: list[dict], answers: list[str], posts: list[str]) -> dict:
    """Mean 1-5 judge score and the share of parsed judge replies."""
    from somelvlm.evaluate.judge import judge_scores

    result = judge_scores(judge, task_name, posts, [references(r) for r in records], answers)
    return {"judge": result.mean, "judge_parsed": 100.0 * result.parsed / max(1, result.total),
            "judge_mode": result.mode}


def dump(obj) -> str:
    return json.dumps(obj, indent=1, ensure_ascii=False, sort_keys=True)
