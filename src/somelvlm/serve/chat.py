"""OpenAI chat completions over our models: messages -> what the models take (the last user turn for
the classifier, the whole conversation for a generator's chat template), the options we refuse,
the batched generator call, and the answer as a ``chat.completion`` or as server-sent events.

Streaming is real: a ``stream=true`` request runs alone through the generator (a batch of one),
whose transformers streamer hands each finished word to the event loop while decoding goes on.
The events are OpenAI's::

    data: {"object": "chat.completion.chunk", "choices": [{"delta": {"role": "assistant", "content": ""}}]}
    data: {... "delta": {"content": "piece"} ...}                       (as many as needed)
    data: {... "delta": {}, "finish_reason": "stop" | "length"}
    data: {... "choices": [], "usage": {...}}                          (with stream_options.include_usage)
    data: [DONE]
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from somelvlm.serve.errors import APIError, error_body
from somelvlm.serve.schemas import ChatMessage, ChatRequest

log = logging.getLogger("somelvlm.serve")

IMAGE_TOKEN = "<image>"
"""Where a conversation's image sits (SoMeData's placeholder, which the generators read)."""
MAX_STOP = 4
"""OpenAI's limit on stop strings."""
UNSUPPORTED = {
    "tools": "tool calling is not supported",
    "tool_choice": "tool calling is not supported",
    "functions": "function calling is not supported",
    "function_call": "function calling is not supported",
    "logit_bias": "logit_bias is not supported",
    "audio": "audio output is not supported",
    "prediction": "predicted outputs are not supported",
    "web_search_options": "web search is not supported",
}
"""Options refused whenever they carry a value (None / empty means not asked for)."""


def message_parts(message: ChatMessage, index: int) -> tuple[str, list[str]]:
    """``(text, image data URIs)`` of one message; text parts joined by newlines."""
    if message.content is None:
        return "", []
    if isinstance(message.content, str):
        return message.content, []
    texts, images = [], []
    for j, part in enumerate(message.content):
        where = f"messages[{index}].content[{j}]"
        if part.type == "text":
            if part.text is None:
                raise APIError(400, f"{where}: a text part needs 'text'", param=where)
            texts.append(part.text)
        else:
            if part.image_url is None:
                raise APIError(400, f"{where}: an image_url part needs 'image_url': {{'url': 'data:...'}}", param=where)
            images.append(part.image_url.url)
    return "\n".join(texts), images


def last_user_turn(messages: list[ChatMessage]) -> tuple[str, str | None, str]:
    """``(text, image data URI or None, where)`` of the last user message (the post to analyze)."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "user":
            text, images = message_parts(messages[i], i)
            if len(images) > 1:
                raise APIError(400, f"messages[{i}]: one image per post, got {len(images)}", param=f"messages[{i}]")
            return text, (images[0] if images else None), f"messages[{i}]"
    raise APIError(400, "no user message: the post to analyze is the last message with role 'user'", param="messages")


def conversation(messages: list[ChatMessage]) -> tuple[list[dict], str | None]:
    """The messages as a generator's conversation (``[{"role", "content"}]``, ``developer`` as
    ``system``) and its image (a data URI), which sits where ``<image>`` is put in its message.
    Our generators read one image per conversation: more is a 400 naming the second one."""
    turns, image = [], None
    for i, message in enumerate(messages):
        text, images = message_parts(message, i)
        text = text.replace(IMAGE_TOKEN, "")  # a typed placeholder is no image
        if images:
            if image is not None or len(images) > 1:
                raise APIError(400, f"messages[{i}]: the generators here read one image per conversation; "
                                    "send the other images in separate requests", param=f"messages[{i}].content")
            image = images[0]
            text = f"{IMAGE_TOKEN}\n{text}"
        turns.append({"role": "system" if message.role == "developer" else message.role, "content": text})
    if not any(t["role"] == "user" for t in turns):
        raise APIError(400, "the conversation has no user message", param="messages")
    return turns, image


def flattened(turns: list[dict]) -> str:
    """A conversation as one prompt, for generators that take no conversations (remote servers):
    a single user turn as it is, else ``Role: text`` lines ending with ``Assistant:``."""
    if len(turns) == 1 and turns[0]["role"] == "user":
        return turns[0]["content"]
    return "\n".join([f"{t['role'].capitalize()}: {t['content']}" for t in turns] + ["Assistant:"])


def refuse_unsupported(req: ChatRequest) -> None:
    """A 400 naming the first option asked for that we cannot honour (instead of ignoring it)."""
    extra = req.model_extra or {}
    if req.n > 1:
        raise APIError(400, f"n={req.n}: only one choice per request is supported; send n=1 and repeat the "
                            "request for more", param="n")
    for name, why in UNSUPPORTED.items():
        if extra.get(name) not in (None, [], {}, "none"):
            raise APIError(400, f"{name}: {why} by this server", param=name)
    fmt = extra.get("response_format")
    if fmt is not None and (not isinstance(fmt, dict) or fmt.get("type") != "text"):
        kind = fmt.get("type") if isinstance(fmt, dict) else fmt
        raise APIError(400, f"response_format {kind!r} is not supported: only {{'type': 'text'}}",
                       param="response_format")
    if extra.get("logprobs") or extra.get("top_logprobs"):
        name = "logprobs" if extra.get("logprobs") else "top_logprobs"
        raise APIError(400, f"{name}: log probabilities are not returned by this server", param=name)
    for name in ("presence_penalty", "frequency_penalty"):
        value = extra.get(name)
        if value not in (None, 0, 0.0):
            raise APIError(400, f"{name}={value}: penalties are not supported; send 0 or leave it out", param=name)
    if extra.get("modalities") not in (None, ["text"]):
        raise APIError(400, "modalities: only ['text'] output is supported", param="modalities")


def stop_strings(req: ChatRequest) -> tuple[str, ...]:
    """``stop`` as a tuple of up to 4 non-empty strings (400 otherwise)."""
    stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    if len(stop) > MAX_STOP:
        raise APIError(400, f"stop: at most {MAX_STOP} strings, got {len(stop)}", param="stop")
    if any(not s for s in stop):
        raise APIError(400, "stop: stop strings must not be empty", param="stop")
    return tuple(dict.fromkeys(stop))


# ----- the batched generator call -------------------------------------------------------------------
@dataclass(eq=False)
class ChatItem:
    """One conversation for the chat micro-batcher."""

    turns: list[dict]
    image: Any
    config: Any
    """A ``GenerationConfig`` (items with equal configs share a model call)."""
    on_text: Callable[[str], None] | None = None
    """Streaming: receives the answer piece by piece (the item then runs alone)."""
    cancel: threading.Event = field(default_factory=threading.Event)
    """Set when the client left or timed out: its generation stops at the next token."""

    @property
    def key(self):
        return (self.config, id(self) if self.on_text is not None else None)


def run_chat(generator, items: list[ChatItem]) -> list:
    """The generator's ``Generated`` answers for a batch of conversations (equal configs). Generators
    without ``chat`` (remote servers) get flattened prompts; their token counts are unknown (None)."""
    from somelvlm.models.decoding import cut_at_stop
    from somelvlm.models.generation import Generated

    config = items[0].config
    images = [item.image for item in items]
    images = images if any(im is not None for im in images) else None
    if hasattr(generator, "chat"):
        return generator.chat([item.turns for item in items], images, config, on_text=items[0].on_text,
                              cancel=[item.cancel for item in items])
    texts = generator.generate([flattened(item.turns) for item in items], images, config)
    out = []
    for item, text in zip(items, texts):
        cut, _ = cut_at_stop(text, config.stop)
        if item.on_text is not None and cut.strip():
            item.on_text(cut)
        out.append(Generated(cut.strip()))
    return out


def chat_key(item: ChatItem):
    return item.key


# ----- answers --------------------------------------------------------------------------------------
def usage_of(generated) -> dict | None:
    """OpenAI ``usage`` from a ``Generated`` answer (None when the backend cannot count tokens)."""
    if generated.prompt_tokens is None or generated.completion_tokens is None:
        return None
    return {"prompt_tokens": generated.prompt_tokens, "completion_tokens": generated.completion_tokens,
            "total_tokens": generated.prompt_tokens + generated.completion_tokens}


def new_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def completion(model: str, content: str, finish_reason: str = "stop", usage: dict | None = None) -> dict:
    """An OpenAI ``chat.completion`` object with one choice."""
    body = {"id": new_id(), "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                         "finish_reason": finish_reason, "logprobs": None}]}
    if usage is not None:
        body["usage"] = usage
    return body


def sse(payload: dict | str) -> bytes:
    """One server-sent event (``data: ...`` and a blank line)."""
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


class Chunks:
    """``chat.completion.chunk`` objects of one streamed answer (one id and creation time)."""

    def __init__(self, model: str) -> None:
        self.id, self.created, self.model = new_id(), int(time.time()), model

    def make(self, delta: dict, finish_reason: str | None = None, usage: dict | None = None,
             choices: bool = True) -> dict:
        body = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]
                if choices else []}
        if usage is not None:
            body["usage"] = usage
        return body


class StreamedText:
    """What may be sent of an answer still being generated, so the pieces sent add up to the final
    (stripped, cut at the first stop string) answer: leading spaces dropped, trailing spaces and a
    possible beginning of a stop string held back until more text shows what they are."""

    def __init__(self, stop: tuple[str, ...]) -> None:
        self.stop = stop
        self.raw = ""
        self.sent = ""
        self.hold = max((len(s) for s in stop), default=1) - 1

    def feed(self, piece: str) -> str:
        """The new text that can be sent after ``piece`` arrived ('' when none)."""
        from somelvlm.models.decoding import cut_at_stop

        self.raw += piece
        text, hit = cut_at_stop(self.raw.lstrip(), self.stop)
        if not hit and self.hold:
            text = text[: max(0, len(text) - self.hold)]
        return self._advance(text.rstrip())

    def finish(self, final: str) -> str:
        """The rest of ``final`` (the generator's answer); '' when the pieces already sent differ from
        it (then the stream carries what was sent, logged)."""
        if not final.startswith(self.sent):
            log.warning("streamed text differs from the final answer after %d characters", len(self.sent))
            return ""
        return self._advance(final)

    def _advance(self, text: str) -> str:
        if not text.startswith(self.sent) or len(text) <= len(self.sent):
            return ""
        new, self.sent = text[len(self.sent):], text
        return new


async def stream_answer(submit: Callable[[ChatItem], Awaitable[Any]], item: ChatItem, model: str,
                        include_usage: bool, timeout_s: float, release: Callable[[], None]) -> AsyncIterator[bytes]:
    """Server-sent events for one streamed answer. The item runs through ``submit`` (the chat
    micro-batcher, alone in its batch) while its text arrives piece by piece; a failure or the
    timeout after the first event is an ``error`` event (the status line is already sent). The
    client leaving or the timeout cancels the generation; ``release`` frees the concurrency slot."""
    loop = asyncio.get_running_loop()
    pieces: asyncio.Queue = asyncio.Queue()
    item.on_text = lambda piece: loop.call_soon_threadsafe(pieces.put_nowait, piece)
    task = asyncio.ensure_future(submit(item))
    task.add_done_callback(lambda _: pieces.put_nowait(None))
    chunks, text = Chunks(model), StreamedText(item.config.stop)
    deadline = loop.time() + timeout_s
    try:
        yield sse(chunks.make({"role": "assistant", "content": ""}))
        while (piece := await asyncio.wait_for(pieces.get(), max(0.0, deadline - loop.time()))) is not None:
            if new := text.feed(piece):
                yield sse(chunks.make({"content": new}))
        result = task.result()
        if rest := text.finish(result.text):
            yield sse(chunks.make({"content": rest}))
        yield sse(chunks.make({}, result.finish_reason))
        if include_usage:
            yield sse(chunks.make({}, usage=usage_of(result), choices=False))
        yield sse("[DONE]")
    except TimeoutError:
        yield sse(error_body(504, f"the answer took longer than {timeout_s:g} s (--request-timeout-s)",
                             "timeout_error"))
    except APIError as err:
        yield sse(error_body(err.status, err.message, err.type, err.param))
    except ValueError as err:
        yield sse(error_body(400, str(err)))
    except Exception as err:  # noqa: BLE001 - reported in the stream: the 200 is already sent
        log.exception("streamed chat completion failed")
        yield sse(error_body(500, f"internal error: {type(err).__name__}", "server_error"))
    finally:
        item.cancel.set()
        if not task.done():
            task.cancel()
        release()


async def single_answer_stream(model: str, content: str) -> AsyncIterator[bytes]:
    """Server-sent events for an answer known at once (the classifier's analysis): role, content,
    finish, ``[DONE]``."""
    chunks = Chunks(model)
    yield sse(chunks.make({"role": "assistant", "content": ""}))
    yield sse(chunks.make({"content": content}))
    yield sse(chunks.make({}, "stop"))
    yield sse("[DONE]")
