"""The server opens a post's image only when a chosen task reads it (the Pipeline's ``needs_image``): a
corrupt image beside a caption is not an error for text-head tasks, and is one (400 naming it) for a
task whose image+text head answers."""

from __future__ import annotations

import base64

import httpx
import pytest

CORRUPT = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 20).decode()
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
    assert body["image"] is None and body["results"]["emotion"]["modality"] == "text"
    plain = httpx.post(shipped_server.url + "/v1/analyze", timeout=120, json={"text": CAPTION, "tasks": text_tasks})
    assert plain.json()["results"] == body["results"]


def test_an_image_a_task_reads_is_decoded_and_checked(shipped_server, shipped_analyzer):
    if not shipped_analyzer.image_tasks:
        pytest.skip("no image+text head is in service here")
    task = min(shipped_analyzer.image_tasks)
    r = httpx.post(shipped_server.url + "/v1/analyze", timeout=120,
                   json={"text": CAPTION, "image": CORRUPT, "tasks": ["emotion", task]})
    assert r.status_code == 400 and "image" in r.text, r.text
