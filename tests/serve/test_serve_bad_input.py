"""Bad input gets a clear 4xx JSON error naming what and where, and the server stays up: every
case checks /healthz afterwards. Slow clients are bounded by the body and header deadlines."""

from __future__ import annotations

import base64
import io
import socket
import time

import httpx
import pytest


def healthy(server) -> bool:
    return httpx.get(server.url + "/healthz", timeout=5).json()["status"] == "ok"


def read_all(sock, seconds: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (or ``seconds`` pass)."""
    sock.settimeout(seconds)
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except TimeoutError:
        pass
    return data


def png_bytes(width: int, height: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def strict(start_server, tiny_analyzer):
    """Small limits so the tests stay small: 200 kB bodies, 1 MP images, 1 s deadlines for slow clients."""
    return start_server(tiny_analyzer, max_body_bytes=200_000, max_image_pixels=1_000_000, body_timeout_s=1.0,
                        header_timeout_s=1.0)


JSON_CASES = [
    ("malformed JSON", b'{"text": "hi",', 400, "malformed JSON"),
    ("not an object", b'["hi"]', 422, "JSON object"),
    ("empty body", b"", 400, "empty"),
    ("not UTF-8", b'{"text": "\xff\xfe"}', 400, "UTF-8"),
    ("wrong type", b'{"text": 5}', 422, "text"),
    ("tasks not a list", b'{"text": "hi", "tasks": "emotion"}', 422, "tasks"),
    ("unknown field", b'{"text": "hi", "txt": "x"}', 422, "txt"),
    ("unknown task", b'{"text": "hi", "tasks": ["emotoin"]}', 400, "emotion"),
    ("unknown level", b'{"text": "hi", "levels": ["knowledge"]}', 400, "knowledge_comprehension"),
    ("no text, no image", b'{"tasks": ["emotion"]}', 400, "text or an image"),
    ("text too long", ('{"text": "%s"}' % ("a" * 20_001)).encode(), 400, "too long"),
    ("digits out of range", b'{"text": "hi", "probability_digits": 30}', 422, "probability_digits"),
    ("invalid base64", b'{"text": "hi", "image": "abc$%^"}', 400, "not valid base64"),
    ("not an image", ('{"text": "hi", "image": "%s"}' % base64.b64encode(b"hello, I am text").decode()).encode(),
     400, "not an image"),
    ("a file path", b'{"text": "hi", "image": "/etc/passwd"}', 400, "never reads files"),
    ("a URL", b'{"text": "hi", "image": "https://example.org/cat.png"}', 400, "never fetches URLs"),
]


@pytest.mark.parametrize("name,body,status,words", JSON_CASES, ids=[c[0] for c in JSON_CASES])
def test_bad_json_bodies_get_a_clear_4xx(strict, name, body, status, words):
    r = httpx.post(strict.url + "/v1/analyze", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert words in r.json()["error"]["message"]
    assert healthy(strict)


def test_huge_bodies_are_refused_by_length_and_while_streaming(strict):
    big = b'{"text": "' + b"a" * 300_000 + b'"}'
    r = httpx.post(strict.url + "/v1/analyze", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "--max-body-bytes" in r.json()["error"]["message"]

    def chunks():  # no Content-Length: counted as it arrives
        yield b'{"text": "'
        for _ in range(30):
            yield b"a" * 10_000
        yield b'"}'

    r = httpx.post(strict.url + "/v1/analyze", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert healthy(strict)


def test_images_over_the_pixel_limit_and_bad_uploads(strict):
    uri = "data:image/png;base64," + base64.b64encode(png_bytes(1200, 1000)).decode()
    r = httpx.post(strict.url + "/v1/analyze", json={"text": "hi", "image": uri})
    assert r.status_code == 413 and "pixels" in r.json()["error"]["message"]
    r = httpx.post(strict.url + "/v1/analyze", files={"image": ("x.png", b"GIF89a broken", "image/png")}, data={"text": "hi"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "image"
    r = httpx.post(strict.url + "/v1/analyze", data={"text": "hi", "image": "/etc/passwd"},
                   files={"other": ("a", b"b")})
    assert r.status_code == 422 and "unknown form fields" in r.json()["error"]["message"]
    r = httpx.post(strict.url + "/v1/analyze", data={"text": "hi", "image": "/etc/passwd"})
    assert r.status_code == 400 and "file itself" in r.json()["error"]["message"]
    r = httpx.post(strict.url + "/v1/analyze", content=b"text=hi", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    assert healthy(strict)


def test_bad_chat_requests(strict):
    url = strict.url + "/v1/chat/completions"
    cases = [
        ({"model": "tiny-mini", "messages": []}, 422),
        ({"model": "tiny-mini", "messages": [{"role": "user", "content": "hi"}], "n": 2}, 400),
        ({"model": "tiny-mini", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]}, 400),
        ({"model": "tiny-mini", "messages": [{"role": "wizard", "content": "hi"}]}, 422),
        ({"model": "tiny-mini", "messages": [{"role": "assistant", "content": "hi"}]}, 400),
        ({"model": "tiny-mini", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]}, 400),
        ({"model": "tiny-mini", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,!!!"}}]}]}, 400),
    ]
    for body, status in cases:
        r = httpx.post(url, json=body)
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["message"]
        assert healthy(strict)


def test_a_client_that_stops_mid_body_gets_408_and_others_are_served(strict):
    with socket.create_connection(("127.0.0.1", strict.port)) as sock:
        sock.sendall(b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"text\": \"half")
        assert httpx.post(strict.url + "/v1/analyze", json={"text": "meanwhile"}).status_code == 200
        answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408") and b"--body-timeout-s" in answer
    assert healthy(strict)


def test_a_client_that_never_finishes_its_headers_is_disconnected(strict):
    with socket.create_connection(("127.0.0.1", strict.port)) as sock:
        sock.sendall(b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Le")
        assert healthy(strict)  # others are served meanwhile
        sock.settimeout(10)
        start = time.monotonic()
        assert sock.recv(4096) == b""  # closed by the server after --header-timeout-s
        assert time.monotonic() - start < 9
    assert healthy(strict)
