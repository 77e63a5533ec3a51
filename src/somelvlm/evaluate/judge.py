"""The LLM-judge score (SoMeLVLM's "GPT score", 1-5) by any ``Generator``: a local model or an
OpenAI-compatible endpoint (``GENERATORS.get("openai_http")(base_url=..., model=...)``).

The judge sees the task, the post, the reference answer and the model's answer, and replies with
one integer from 1 (useless) to 5 (as good as the reference). A reply without a number in 1..5 is
counted as unparsed and left out of the mean (the share of parsed replies is reported).

A judge that exposes its next-token probabilities (``option_probs``: our local ``lvlm`` models) is
read the G-Eval way instead: the score is the expectation of 1..5 under its probabilities for the
first answer token, so every item gets a score, even from a small judge that rarely replies with a
bare digit.

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

DIGITS = ["1", "2", "3", "4", "5"]
_SCORE = re.compile(r"(?<![\d.])([1-5])(?!\d|\.\d)")


@dataclass
class JudgeResult:
    """Mean 1-5 score over parsed replies, how many parsed, and each item's score (None: unparsed)."""

    mean: float
    parsed: int
    total: int
    scores: list[float | None]
    mode: str = "text"
    """``text``: the digit of each reply; ``probability``: expected score under the judge's probabilities."""


def parse_score(reply: str) -> int | None:
    """The first standalone digit 1-5 of a judge's reply, else None."""
    m = _SCORE.search(reply or "")
    return int(m.group(1)) if m else None


def judge_scores(judge: Generator, task: str, posts: list[str], references: list, answers: list[str],
                 batch_size: int = 8, max_new_tokens: int = 16) -> JudgeResult:
    """Score each answer 1-5 with ``judge``; references may be lists (the first is shown)."""
    if not len(posts) == len(references) == len(answers):
        raise ValueError(f"judge: {len(posts)} posts, {len(references)} references, {len(answers)} answers")
    prompts = [JUDGE_PROMPT.format(task=task, post=p, reference=r[0] if isinstance(r, (list, tuple)) else r,
                                   answer=a or "(empty)") for p, r, a in zip(posts, references, answers)]
    scores: list[float | None] = []
    probabilistic = callable(getattr(judge, "option_probs", None))
    config = GenerationConfig(max_new_tokens=max_new_tokens)
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start:start + batch_size]
        if probabilistic:
            scores += [sum(k * p for k, p in zip(range(1, 6), row)) for row in judge.option_probs(chunk, DIGITS)]
        else:
            scores += [parse_score(r) for r in judge.generate(chunk, config=config)]
    got = [s for s in scores if s is not None]
    return JudgeResult(sum(got) / len(got) if got else float("nan"), len(got), len(scores), scores,
                       "probability" if probabilistic else "text")
