"""The server decodes a post's image only when a chosen task reads it (the Pipeline's ``needs_image``):
an image with corrupt pixel data beside a caption is no error for text-head tasks (its header is still
checked: bytes that are no image stay a 400), and is one (400 naming it) for a task whose image+text
head answers."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
_PNG = (EXAMPLES / "monday_meme.png").read_bytes()
CORRUPT = base64.b64encode(_PNG[:_PNG.index(b"IDAT") + 44] + bytes(range(256)) * 2).decode()
"""A PNG whose header reads fine and whose pixel data is broken: only decoding fails."""
NOT_AN_IMAGE = base64.b64encode(b"hello, I am text").decode()
CAPTION = "WHEN IT'S MONDAY AND THE COFFEE IS GONE"


@pytest.fixture(scope="module")
def shipped_server(start_server, shipped_analyzer):
    return start_server(shipped_analyzer)


def test_an_image_no_task_reads_is_not_opened(shipped_server, shipped_analyzer):
    text_tasks = ["emotion", "offensive"]
    assert not shipped_analyzer.needs_image(True, text_tasks)
    r = httpx.post(shipped_server.url + "/v1/analyze", timeout=120,
                   json={"text": CAPTION, "image": CORRUPT, "tasks": text_tasks})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["image"] == {"width": 320, "height": 240}  # from its header
    assert body["results"]["emotion"]["modality"] == "text"
    plain = httpx.post(shipped_server.url + "/v1/analyze", timeout=120, json={"text": CAPTION, "tasks": text_tasks})
    assert plain.json()["results"] == body["results"]
    r = httpx.post(shipped_server.url + "/v1/analyze", timeout=120,
                   json={"text": CAPTION, "image": NOT_AN_IMAGE, "tasks": text_tasks})
    assert r.status_code == 400 and "not an image" in r.text, r.text


def test_an_image_a_task_reads_is_decoded_and_checked(shipped_server, shipped_analyzer):
    if not shipped_analyzer.image_tasks:
        pytest.skip("no image+text head is in service here")
    task = min(shipped_analyzer.image_tasks)
    r = httpx.post(shipped_server.url + "/v1/analyze", timeout=120,
                   json={"text": CAPTION, "image": CORRUPT, "tasks": ["emotion", task]})
    assert r.status_code == 400 and "corrupt image" in r.text, r.text
