"""The LLM-judge score (SoMeLVLM's "GPT score", 1-5) by any ``Generator``: a local model or an
OpenAI-compatible endpoint (``GENERATORS.get("openai_http")(base_url=..., model=...)``).

The judge sees the task, the post, the reference answer and the model's answer, and replies with
one integer from 1 (useless) to 5 (as good as the reference). A reply without a number in 1..5 is
counted as unparsed and left out of the mean (the share of parsed replies is reported).

>>> judge_scores(my_judge, "detoxify", ["you idiot"], ["you are wrong"], ["you are not right"])  # doctest: +SKIP
JudgeResult(mean=4.0, parsed=1, total=1, scores=[4])
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from somelvlm.models.generation import GenerationConfig, Generator

JUDGE_PROMPT = """You are grading an answer to a social-media task.
Task: {task}
Post: {post}
Reference answer: {reference}
Answer to grade: {answer}

How good is the answer compared with the reference (meaning kept, task done, fluent)?
Reply with one number from 1 (useless) to 5 (as good as the reference) and nothing else."""

_SCORE = re.compile(r"(?<![\d.])([1-5])(?!\d|\.\d)")


@dataclass
class JudgeResult:
    """Mean 1-5 score over parsed replies, how many parsed, and each item's score (None: unparsed)."""

    mean: float
    parsed: int
    total: int
    scores: list[int | None]


def parse_score(reply: str) -> int | None:
    """The first standalone digit 1-5 of a judge's reply, else None."""
    m = _SCORE.search(reply or "")
    return int(m.group(1)) if m else None


def judge_scores(judge: Generator, task: str, posts: list[str], references: list, answers: list[str],
                 batch_size: int = 8, max_new_tokens: int = 4) -> JudgeResult:
    """Score each answer 1-5 with ``judge``; references may be lists (the first is shown)."""
    if not len(posts) == len(references) == len(answers):
        raise ValueError(f"judge: {len(posts)} posts, {len(references)} references, {len(answers)} answers")
    prompts = [JUDGE_PROMPT.format(task=task, post=p, reference=r[0] if isinstance(r, (list, tuple)) else r,
                                   answer=a or "(empty)") for p, r, a in zip(posts, references, answers)]
    config = GenerationConfig(max_new_tokens=max_new_tokens)
    scores: list[int | None] = []
    for start in range(0, len(prompts), batch_size):
        scores += [parse_score(r) for r in judge.generate(prompts[start:start + batch_size], config=config)]
    got = [s for s in scores if s is not None]
    return JudgeResult(sum(got) / len(got) if got else float("nan"), len(got), len(scores), scores)
