"""OpenAI chat messages -> what our models take: the last user turn's text and image for the
classifier, one prompt (and image) for a generator."""

from __future__ import annotations

import time
import uuid

from somelvlm.serve.errors import APIError
from somelvlm.serve.schemas import ChatMessage


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


def generation_prompt(messages: list[ChatMessage]) -> tuple[str, str | None]:
    """One prompt for a ``Generator`` from a conversation, and the last image in it.

    A single user message is sent as it is; a longer conversation as ``Role: text`` lines ending
    with ``Assistant:`` (generators here take one prompt, not a chat template).
    """
    rendered, image = [], None
    for i, message in enumerate(messages):
        text, images = message_parts(message, i)
        if images:
            image = images[-1]
        rendered.append((message.role, text))
    if len(rendered) == 1 and rendered[0][0] == "user":
        return rendered[0][1], image
    lines = [f"{role.capitalize()}: {text}" for role, text in rendered]
    return "\n".join(lines + ["Assistant:"]), image


def completion(model: str, content: str) -> dict:
    """An OpenAI ``chat.completion`` object with one choice."""
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                                         "finish_reason": "stop"}]}
