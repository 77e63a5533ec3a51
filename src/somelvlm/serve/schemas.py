"""Request and response bodies (pydantic), which also make the OpenAPI docs at /docs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

Digits = Field(4, ge=1, le=9, description="Decimal digits of probabilities; 9 keeps float32 exact "
                                           "(what the OpenAIClassifier asks for).")
MAX_TASK_NAMES = 256
"""Most entries a ``tasks`` list may have (the taxonomy has about 30 tasks): a longer list is a 422
before any work, so a 50,000-entry list cannot hold the event loop."""
MAX_LEVEL_NAMES = 32
"""Most entries a ``levels`` list may have (there are 5 levels)."""
MAX_NAME_CHARS = 100
"""Longest task or level name accepted."""


def _unique(names: list[str] | None) -> list[str] | None:
    """The names in first-seen order without repeats (validated once, so work runs once per name)."""
    return None if names is None else list(dict.fromkeys(names))


Name = Annotated[str, Field(max_length=MAX_NAME_CHARS)]
TaskNames = Annotated[list[Name] | None, Field(max_length=MAX_TASK_NAMES), AfterValidator(_unique)]
LevelNames = Annotated[list[Name] | None, Field(max_length=MAX_LEVEL_NAMES), AfterValidator(_unique)]


class AnalyzeRequest(BaseModel):
    """A post to analyze: text and/or a base64 image; which tasks or levels to run (default: every head)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"text": "I just love Mondays... #not", "levels": ["knowledge_comprehension"]}]})

    id: str | None = Field(None, max_length=200, description="Echoed back.")
    text: str | None = Field(None, description="The post text.")
    image: str | None = Field(None, description="Image bytes as base64 or a data: URI (never a path or URL).")
    tasks: TaskNames = Field(None, description=f"Task names, e.g. ['emotion', 'irony'] (at most {MAX_TASK_NAMES}; "
                                                "repeats are dropped).")
    levels: LevelNames = Field(None, description="Cognitive level ids, e.g. ['knowledge_comprehension'] (at most "
                                                 f"{MAX_LEVEL_NAMES}; repeats are dropped).")
    generate: bool = Field(True, description="Run generation tasks of the chosen levels when a generator is loaded.")
    probability_digits: int = Digits


class LevelView(BaseModel):
    id: str
    name: str
    description: str
    score: float | None = Field(description="Mean confidence of the level's classifications (the radar chart).")
    tasks: list[dict[str, Any]]


class AnalyzeResponse(BaseModel):
    id: str | None
    model: str
    text_source: str = Field(description="'text', or 'ocr' when the text was read off the image.")
    text_read: str | None = Field(None, description="The text read off the image, when text_source is 'ocr'.")
    image: dict[str, int] | None = Field(None, description="Width and height of the decoded image (reduced to at "
                                                           "most 768 px on its shorter side and 2048 on its longer, "
                                                           "as the models read it; from its header when no "
                                                           "chosen task reads it: it is then not decoded); "
                                                           "null when no image was sent.")
    results: dict[str, dict[str, Any]] = Field(description="task -> prediction, as somelvlm.analyze gives it.")
    generated: dict[str, str] = Field(default_factory=dict, description="Generation task -> generated text.")
    skipped: dict[str, str] = Field(default_factory=dict, description="Tasks chosen but not run, and why.")
    levels: list[LevelView]
    seconds: float


class GenerateRequest(BaseModel):
    """Prompts for the generative model; ``images[i]`` (base64 / data URI, or null) goes with ``prompts[i]``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"prompts": ["Rewrite politely: shut up, idiot"], "max_new_tokens": 32}]})

    prompts: list[str] = Field(min_length=1, max_length=64)
    images: list[str | None] | None = None
    max_new_tokens: int = Field(128, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = None


class GenerateResponse(BaseModel):
    model: str
    texts: list[str]
    seconds: float


class ImageURL(BaseModel):
    url: str = Field(description="A data: URI (data:image/png;base64,...); http(s) URLs are refused.")
    detail: str | None = None


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["text", "image_url"]
    text: str | None = None
    image_url: ImageURL | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = Field(False, description="Send a last chunk with the token counts (no choices).")


class ChatRequest(BaseModel):
    """OpenAI ``/v1/chat/completions``. With ``model: "some-mini"`` the answer is the analysis of the
    last user message as JSON text; with the generator's name, its generated answer, the conversation
    rendered by the model's chat template. ``tasks``, ``levels`` and ``probability_digits`` are
    extensions (send them in the body, e.g. the OpenAI SDK's ``extra_body``). Options we cannot honour
    (``n`` > 1, ``tools``, ``tool_choice``, ``functions``, ``response_format`` other than text,
    ``logprobs``, ``logit_bias``, penalties, audio) are a 400 naming the option; unknown others
    (``user``, ``metadata``, ``store``, ...) are ignored."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"model": "some-mini", "messages": [{"role": "user", "content": "what a lovely day #sun"}]}]})

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    seed: int | None = None
    n: int = Field(1, ge=1, description="Only one choice is supported (n > 1 is a 400).")
    stream: bool = Field(False, description="Server-sent events: chat.completion.chunk objects, then data: [DONE].")
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = Field(None, description="Up to 4 strings; the answer ends before the first one.")
    tasks: TaskNames = None
    levels: LevelNames = None
    probability_digits: int = Digits
