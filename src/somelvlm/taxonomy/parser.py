"""Map a model's free-text answer to a task's label (or number), or to ``INVALID``.

Acc counts ``INVALID`` answers as wrong over all items; Acc* scores only the items whose answer
parsed to a valid label (SoMeLVLM's zero-shot protocol).

How an answer is read (classification):

1. Empty, refusing ("I cannot ...", "As an AI ..."), "None of the above", or in another language:
   ``INVALID``.
2. The answer is cut into sentences; the first sentence that decides wins, so an explanation
   after the answer does not count against it.
3. In a sentence, every whole-word mention of a label (its name or a YAML ``aliases`` entry) is
   found; a mention inside a longer one counts once ("hate" inside "not hate").
4. A mention after a negation in the same clause ("not", "no", "isn't", "does not contain",
   "neither ... nor", "non-") counts for the other label of a two-label task and for nothing in a
   larger one. Mentions inside a "whether ..." clause are hypothetical and do not count.
5. Aliases ``yes`` / ``no`` (declared by tasks whose question asks about one label: "Is it
   sarcastic?") count only as the first word of a sentence; ``true`` / ``false`` count anywhere.
6. A choice given by its position: "B", "(2)", "Option b" - in the order of the prompt's choice
   list when ``prompt`` is passed, else the task's label order (the order prompts show).
7. One label left: that label. Two different labels: ``INVALID`` (ambiguous).

Regression: the first number once the scale itself is removed ("out of 5", "from 0 to 5",
"/5"); number words count ("four"); outside the task's range: ``INVALID``.

>>> from somelvlm.taxonomy import get_task
>>> parse_answer(get_task("hate"), "Answer: Not hate.")
'not_hate'
>>> parse_answer(get_task("hate"), "This post does not contain hate.")
'not_hate'
>>> parse_answer(get_task("sarcasm"), "No, it isn't sarcastic.")
'not_sarcastic'
>>> parse_answer(get_task("humor_rating"), "out of 5 I'd say 4")
4.0
>>> parse_answer(get_task("hate"), "I cannot tell.")
'invalid'
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from somelvlm.taxonomy.task import Task, display_label

INVALID = "invalid"

_PREFIX = re.compile(
    r"^\s*(?:(?:the\s+)?(?:final\s+|correct\s+|best\s+)?(?:answer|label|prediction|output|category|choice|"
    r"classification|response)\s*(?:would\s+be|is|:|=|-)?\s*)+",
    re.IGNORECASE,
)
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?![\w])")
_SENTENCE_END = re.compile(r"\n+|(?<=[.!?])(?<!\b\w\.)\s+")
"""Sentence ends; not after a lone choice mark ("B. hate" stays one sentence)."""
_CLAUSE_END = re.compile(r"[,;:()\[\]{}]|\s[-\u2013\u2014]\s|\b(?:but|however|although|though|whereas|while|yet|"
                         r"instead|rather|because|since)\b", re.IGNORECASE)

NEGATIONS = frozenset({"not", "no", "non", "never", "neither", "nor", "without", "nothing", "lacks", "lack",
                       "lacking", "absence", "free"})
"""Words that negate a label mentioned after them in the same clause."""
_NOT_NEGATING_NEXT = frozenset({"only", "just", "merely", "simply", "doubt", "sure", "certain", "clear",
                                "necessarily", "exactly", "quite"})
"""``not only hate ...`` / ``no doubt hateful`` do not negate."""
_HYPOTHETICAL = frozenset({"whether", "if"})
NEGATION_WINDOW = 8
"""A negation reaches at most this many words forward."""
ANSWER_WORDS = frozenset({"yes", "no"})
"""Aliases that count only as the first word of a sentence (an answer to a yes/no question)."""

_REFUSAL = re.compile(
    r"\b(?:i\s+(?:can\s+not|cannot|am\s+(?:unable|not\s+able)|m\s+(?:unable|not\s+able)|will\s+not|"
    r"do\s+not\s+(?:know|have)|am\s+sorry|m\s+sorry|apologi[sz]e)|"
    r"as\s+an\s+ai|unable\s+to\s+(?:determine|classify|answer|tell|provide|assist|help)|"
    r"can\s+not\s+be\s+(?:determined|classified)|cannot\s+be\s+(?:determined|classified)|"
    r"not\s+possible\s+to\s+(?:determine|tell|classify)|impossible\s+to\s+(?:determine|tell|say)|"
    r"none\s+of\s+(?:the\s+above|these|those|them|the\s+(?:options|choices|labels|above\s+options)))\b|"
    r"^sorry\b",
)
"""Refusals and "None of the above", matched on normalized text: the answer names no valid label."""

_ENGLISH = frozenset({"the", "is", "it", "this", "a", "an", "of", "and", "to", "in", "that", "not", "post", "tweet",
                      "meme", "i", "be", "are", "as", "with", "for", "or", "yes", "no", "answer"})
_FOREIGN = frozenset({
    "es", "est", "ce", "cette", "une", "des", "les", "pas", "oui", "ist", "nicht", "kein", "keine", "und", "ein",
    "eine", "das", "der", "nein", "ja", "el", "los", "las", "una", "pero", "muy", "sí", "odio", "não", "sim", "é",
    "è", "questo", "questa", "che", "och", "är", "inte", "niet", "een", "haine", "hass", "odioso", "haineux",
    "ironique", "sarcastique", "nao", "sarcástico", "irónico", "ofensivo", "ofensiva", "discurso",
})
"""Function words of other languages (Romance, German, Dutch, Swedish): with none of English's, the
answer is in another language."""
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten".split())}


def normalize(text: str) -> str:
    """Lowercase, underscores/hyphens to spaces, other punctuation dropped, whitespace collapsed."""
    text = text.lower().replace("_", " ").replace("-", " ")
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


def parse_answer(task: Task, answer: str | None, prompt: str | None = None) -> str | float:
    """The label id (classification), the number (regression) or the text (generation) in
    ``answer``; ``INVALID`` when it names no valid answer, refuses, or is ambiguous. ``prompt``
    (optional) is the question the model saw: its choice list fixes what "B" or "2" means."""
    if answer is None or not answer.strip():
        return INVALID
    if task.kind == "generation":
        return answer.strip()
    text = _prepare(answer)
    if _is_foreign(text):
        return INVALID
    if task.kind == "regression":
        return _parse_number(task, text)
    return _parse_label(task, text, prompt)


# --- classification --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Forms:
    """How a task's labels may be written: token tuples -> label id, and the answer words."""

    forms: dict[tuple[str, ...], str]
    answer_words: dict[str, str]
    complement: dict[str, str]
    """Two-label tasks: each label -> the other (what a negated mention counts for)."""
    longest: int


_FORMS: dict[int, tuple[Task, _Forms]] = {}


def _forms(task: Task) -> _Forms:
    """The task's forms, built once per task object."""
    cached = _FORMS.get(id(task))
    if cached is not None and cached[0] is task:
        return cached[1]
    built = _build_forms(task)
    _FORMS[id(task)] = (task, built)
    return built


def _build_forms(task: Task) -> _Forms:
    forms: dict[tuple[str, ...], str] = {}
    answer_words: dict[str, str] = {}
    for lab in task.labels:
        forms[tuple(normalize(display_label(lab)).split())] = lab
    for lab, names in task.aliases.items():
        for alias in names:
            key = tuple(normalize(alias).split())
            if len(key) == 1 and key[0] in ANSWER_WORDS:
                answer_words[key[0]] = lab
            elif key:
                forms[key] = lab
    labels = list(task.labels)
    complement = {labels[0]: labels[1], labels[1]: labels[0]} if len(labels) == 2 else {}
    return _Forms(forms, answer_words, complement, max(len(k) for k in forms))


def _parse_label(task: Task, text: str, prompt: str | None) -> str:
    order = _choice_order(task, prompt)
    for sentence in _sentences(text):
        decided = _decide(task, sentence, order)
        if decided is not None:
            return decided
    return INVALID


def _decide(task: Task, sentence: str, order: list[str]) -> str | None:
    """The label one sentence gives, ``INVALID`` when it refuses or is ambiguous, None when it says
    nothing about the labels (the next sentence is read)."""
    sentence = _PREFIX.sub("", sentence).strip()
    if not sentence:
        return None
    if _REFUSAL.search(normalize(sentence)):
        return INVALID
    picked = _by_position(task, sentence, order)
    if picked is not None:
        return picked
    found = _mentions(task, sentence)
    if len(found) == 1:
        return found.pop()
    return INVALID if found else None


def _mentions(task: Task, sentence: str) -> set[str]:
    """Labels the sentence asserts (negations applied); more than one means ambiguous."""
    f = _forms(task)
    found: set[str] = set()
    first = True
    for clause in _CLAUSE_END.split(sentence):
        if clause is None:
            continue
        words = normalize(clause).split()
        if not words:
            continue
        if first and words[0] in f.answer_words:
            found.add(f.answer_words[words[0]])
        first = False
        for start, end, lab in _spans(words, f):
            if any(w in _HYPOTHETICAL for w in words[:start]):
                continue
            if _negated(words, start):
                if lab in f.complement:
                    found.add(f.complement[lab])
            else:
                found.add(lab)
    return found


def _spans(words: list[str], f: _Forms) -> list[tuple[int, int, str]]:
    """Label mentions as (start, end, label); longer ones first, a mention overlapping a longer (or,
    at equal length, an earlier) one dropped."""
    spans = []
    for n in range(f.longest, 0, -1):
        for i in range(len(words) - n + 1):
            lab = f.forms.get(tuple(words[i:i + n]))
            if lab is not None and not any(i < e and s < i + n for s, e, _ in spans):
                spans.append((i, i + n, lab))
    return sorted(spans)


def _negated(words: list[str], start: int) -> bool:
    for i in range(max(0, start - NEGATION_WINDOW), start):
        if words[i] in NEGATIONS and not (i + 1 < len(words) and words[i + 1] in _NOT_NEGATING_NEXT):
            return True
    return False


_POSITION = re.compile(
    r"^(?:(?:option|choice|number|no\.?)\s*)?\(?(?P<mark>[a-z]|\d{1,2})(?:\)|\.|:|$)\s*(?P<rest>.*)$",
    re.IGNORECASE | re.DOTALL,
)


def _by_position(task: Task, sentence: str, order: list[str]) -> str | None:
    """A choice named by its letter or 1-based number ("B", "(2)", "Option b. hate")."""
    m = _POSITION.match(sentence)
    if m is None:
        return None
    rest = m["rest"].strip().rstrip(".")
    if rest:
        named = _mentions(task, rest)
        if len(named) == 1:
            return named.pop()
        return INVALID if named else None
    mark = m["mark"].lower()
    index = ord(mark) - ord("a") if mark.isalpha() else int(mark) - 1
    return order[index] if 0 <= index < len(order) else INVALID


def _choice_order(task: Task, prompt: str | None) -> list[str]:
    """The labels in the order the prompt lists them (its last ``[...]`` list), else the task's."""
    if prompt:
        lists = re.findall(r"\[([^\[\]]+)\]", prompt)
        if lists:
            items = [x.strip() for x in lists[-1].split(",") if x.strip()]
            labels = [_mentions(task, item) for item in items]
            if items and all(len(x) == 1 for x in labels):
                return [x.pop() for x in labels]
    return list(task.labels)


# --- shared text handling --------------------------------------------------------------------


def _prepare(answer: str) -> str:
    """NFKC, straight apostrophes, contractions spelled out ("isn't" -> "is not"), long quoted
    passages (the post repeated back) dropped."""
    text = unicodedata.normalize("NFKC", answer).replace("\u2019", "'").replace("\u2018", "'")
    text = re.sub(r"\b(can)'t\b", r"\1 not", text, flags=re.IGNORECASE)
    text = re.sub(r"\bwon't\b", "will not", text, flags=re.IGNORECASE)
    text = re.sub(r"n't\b", " not", text, flags=re.IGNORECASE)
    text = re.sub(r"[\"\u201c][^\"\u201c\u201d\n]*(?:\s+\S+){3,}[^\"\u201c\u201d\n]*[\"\u201d]", " ", text)
    return text.strip()


def _sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text) if s.strip()]


def _is_foreign(text: str) -> bool:
    """True when the answer is written in another language (another script, or other languages'
    function words and none of English's)."""
    letters = [ch for ch in text if ch.isalpha()]
    if letters and sum(not ("a" <= ch.lower() <= "z") for ch in letters) > 0.5 * len(letters):
        return True
    words = re.findall(r"[^\W\d_]+", text.lower())
    foreign = sum(w in _FOREIGN for w in words)
    english = sum(w in _ENGLISH for w in words)
    return foreign >= 1 and english == 0 and len(words) >= 2 or foreign >= 2 and foreign > 2 * english


# --- regression ------------------------------------------------------------------------------


def _parse_number(task: Task, text: str) -> float | str:
    if _REFUSAL.search(normalize(text)):
        return INVALID
    low, high = task.range or (float("-inf"), float("inf"))
    if not re.search(r"\d", text):
        text = re.sub(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", lambda m: _NUMBER_WORDS[m[1].lower()], text,
                      flags=re.IGNORECASE)
    text = _drop_scale(text, low, high)
    m = _NUMBER.search(text)
    if m is None:
        return INVALID
    value = float(m.group())
    return value if low <= value <= high else INVALID


def _drop_scale(text: str, low: float, high: float) -> str:
    """Remove the scale a rating is given on ("out of 5", "(0 to 5)", "on a scale of 0-5", "/5")."""
    num = r"(\d+(?:\.\d+)?)"

    def is_scale(a: str | None, b: str) -> bool:
        return float(b) == high and (a is None or float(a) == low)

    text = re.sub(rf"(?:on\s+a\s+scale\s+(?:of|from)\s+|from\s+|between\s+)?{num}\s*(?:to|-|\u2013|and)\s*{num}",
                  lambda m: " " if is_scale(m[1], m[2]) else m[0], text, flags=re.IGNORECASE)
    text = re.sub(rf"(?:out\s+of|/)\s*{num}", lambda m: " " if is_scale(None, m[1]) else m[0], text,
                  flags=re.IGNORECASE)
    return text
