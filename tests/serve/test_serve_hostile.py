"""Issue 15's hostile requests against the real server on loopback: each is answered with a clear
4xx quickly, nobody else waits, the log holds no traceback, /metrics counts what happened."""

from __future__ import annotations

import base64
import io
import json
import logging
import socket
import threading
import time

import httpx
import pytest
from test_serve_bad_input import healthy, read_all


@pytest.fixture(scope="module")
def hostile(start_server, tiny_analyzer, tiny_generator):
    """Small deadlines: 1 s of silence or 3 s for a whole body; a token with a non-ASCII character."""
    return start_server(tiny_analyzer, tiny_generator, body_timeout_s=1.0, request_timeout_s=3.0,
                        token="s3cret-t\u00f6ken-\u2603")


def auth(token: str = "s3cret-t\u00f6ken-\u2603", scheme: str = "Bearer") -> dict:
    return {"Authorization": f"{scheme} {token}".encode()}


def post(server, path: str, **kwargs) -> httpx.Response:
    headers = {**auth(), **kwargs.pop("headers", {})}
    return httpx.post(server.url + path, headers=headers, timeout=30, **kwargs)


def requests_counted(server, route: str, status: str) -> float:
    text = httpx.get(server.url + "/metrics", headers=auth()).text
    key = f'somelvlm_requests_total{{method="POST",route="{route}",status="{status}"}} '
    return next((float(line.split()[-1]) for line in text.splitlines() if line.startswith(key)), 0.0)


# --- row 1: long task / level lists --------------------------------------------------------------

def test_a_50k_entry_task_list_is_refused_at_once_and_health_never_waits(hostile):
    body = json.dumps({"text": "hi", "tasks": ["emotion"] * 50_000, "levels": ["application"] * 10}).encode()
    assert 1_000_000 > len(body) > 400_000
    health = []

    def probe():
        start = time.monotonic()
        health.append((httpx.get(hostile.url + "/healthz").status_code, time.monotonic() - start))

    start = time.monotonic()
    threads = [threading.Thread(target=probe) for _ in range(3)]
    for t in threads:
        t.start()
    r = post(hostile, "/v1/analyze", content=body, headers={"Content-Type": "application/json"})
    for t in threads:
        t.join()
    assert r.status_code == 422 and "at most 256" in r.json()["error"]["message"]
    assert r.json()["error"]["param"] == "tasks"
    assert time.monotonic() - start < 5 and all(code == 200 for code, _ in health)
    many_levels = post(hostile, "/v1/analyze", json={"text": "hi", "levels": ["creation"] * 33})
    assert many_levels.status_code == 422 and "levels" in many_levels.json()["error"]["message"]


def test_repeated_task_names_run_once(hostile):
    r = post(hostile, "/v1/analyze", json={"text": "hi", "tasks": ["emotion", "irony", "emotion"] * 80})
    assert r.status_code == 200 and list(r.json()["results"]) == ["emotion", "irony"]
    chat = post(hostile, "/v1/chat/completions", json={"model": "tiny-mini", "tasks": ["emotion"] * 300,
                                                       "messages": [{"role": "user", "content": "hi"}]})
    assert chat.status_code == 422 and "tasks" in chat.json()["error"]["message"]


# --- row 2: slow senders do not hold concurrency slots -------------------------------------------

def test_slow_senders_wait_outside_the_concurrency_limit(start_server, tiny_analyzer):
    server = start_server(tiny_analyzer, max_concurrency=2, body_timeout_s=5.0, request_timeout_s=8.0)
    socks = []
    try:
        for _ in range(6):  # more slow bodies than slots
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{")
            socks.append(sock)
        time.sleep(0.3)
        for _ in range(5):
            assert httpx.post(server.url + "/v1/analyze", json={"text": "ready"}).status_code == 200
        assert healthy(server)
    finally:
        for sock in socks:
            sock.close()


def test_the_limit_still_answers_429_and_slow_work_504(start_server, tiny_analyzer):
    """The concurrency limit and the request timeout, on work (the micro-batcher's wait), not on bodies."""
    busy = start_server(tiny_analyzer, max_concurrency=1, batch_wait_ms=1500, request_timeout_s=5.0)
    answers = []

    def ask(text):
        answers.append(httpx.post(busy.url + "/v1/analyze", json={"text": text}, timeout=30))

    threads = [threading.Thread(target=ask, args=(t,)) for t in ("a", "b")]
    for t in threads:  # the first holds the only slot for 1.5 s (the batcher's wait)
        t.start()
        time.sleep(0.2)
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in answers) == [200, 429]
    refused = next(r for r in answers if r.status_code == 429)
    assert refused.headers["retry-after"] == "1" and "--max-concurrency" in refused.json()["error"]["message"]
    assert httpx.post(busy.url + "/v1/analyze", json={"text": "after"}, timeout=30).status_code == 200
    slow = start_server(tiny_analyzer, batch_wait_ms=3000, request_timeout_s=0.5)
    r = httpx.post(slow.url + "/v1/analyze", json={"text": "hi"}, timeout=30)
    assert r.status_code == 504 and "--request-timeout-s" in r.json()["error"]["message"]
    assert healthy(slow)


# --- row 4: plain base64 JPEG ---------------------------------------------------------------------

def test_plain_base64_jpeg_is_an_image_not_a_path(hostile):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (20, 120, 200)).save(buf, format="JPEG")
    b64 = base64.b64encode(buf.getvalue()).decode()
    assert b64.startswith("/9j/")
    r = post(hostile, "/v1/analyze", json={"text": "a photo", "image": b64, "tasks": ["emotion"]})
    assert r.status_code == 200, r.text
    assert r.json()["image"] == {"width": 64, "height": 48}
    for path in ("/etc/passwd", "/etc/hosts1", "/var/lib/data.png", "/9j/../../etc/passwd"):
        r = post(hostile, "/v1/analyze", json={"text": "hi", "image": path})
        assert r.status_code == 400 and "never reads files" in r.json()["error"]["message"], path


# --- row 7: deeply nested JSON --------------------------------------------------------------------

def test_json_nested_5000_deep_is_a_400_and_the_connection_stays_usable(hostile, caplog):
    deep = b'{"text": "hi", "tasks": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    caplog.set_level(logging.WARNING)
    with socket.create_connection(("127.0.0.1", hostile.port)) as sock:
        token = "s3cret-t\u00f6ken-\u2603".encode()
        for path in (b"/v1/analyze", b"/v1/chat/completions", b"/v1/generate"):
            sock.sendall(b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Authorization: Bearer " + token + b"\r\n"
                         b"Content-Length: " + str(len(deep)).encode() + b"\r\n\r\n" + deep)
            head, body = _one_response(sock)
            assert head.startswith(b"HTTP/1.1 400") and b"connection: close" not in head.lower(), head
            assert "nested deeper than 64" in json.loads(body)["error"]["message"]
        good = b'{"text": "still here"}'  # the same keep-alive connection answers the next request
        sock.sendall(b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + token + b"\r\n"
                     b"Content-Length: " + str(len(good)).encode() + b"\r\n\r\n" + good)
        head, body = _one_response(sock)
        assert head.startswith(b"HTTP/1.1 200") and json.loads(body)["text_source"] == "text"
    assert not [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    strings = json.dumps({"text": "[[[[{{{{" * 200})  # brackets inside strings are text
    assert post(hostile, "/v1/analyze", content=strings, headers={"Content-Type": "application/json"}).status_code == 200


def _one_response(sock) -> tuple[bytes, bytes]:
    """One HTTP response (head, body) read off a keep-alive connection by its Content-Length."""
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, rest = data.split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    while len(rest) < length:
        rest += sock.recv(4096)
    return head, rest[:length]


# --- row 9: a client that disconnects mid-body ----------------------------------------------------

def test_a_client_that_leaves_mid_body_is_no_500_and_no_traceback(hostile, caplog):
    caplog.set_level(logging.WARNING)
    before_500 = requests_counted(hostile, "/v1/analyze", "500")
    before_499 = requests_counted(hostile, "/v1/analyze", "499")
    with socket.create_connection(("127.0.0.1", hostile.port)) as sock:
        sock.sendall(b"POST /v1/analyze HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Authorization: Bearer " + "s3cret-t\u00f6ken-\u2603".encode() + b"\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"text\": \"half")
        time.sleep(0.2)
    deadline = time.monotonic() + 5
    while requests_counted(hostile, "/v1/analyze", "499") == before_499 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert requests_counted(hostile, "/v1/analyze", "499") == before_499 + 1
    assert requests_counted(hostile, "/v1/analyze", "500") == before_500
    assert not [r for r in caplog.records if r.exc_info or "ClientDisconnect" in r.getMessage()]
    assert healthy(hostile)


# --- row 12: a slow body on chat completions ------------------------------------------------------

@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/analyze"])
def test_a_trickled_body_gets_408_on_every_route(hostile, path):
    body = json.dumps({"model": "tiny-llama", "messages": [{"role": "user", "content": "hi"}]}).encode() \
        if "chat" in path else b'{"text": "trickled"}'
    with socket.create_connection(("127.0.0.1", hostile.port)) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".encode()
                     + b"Authorization: Bearer " + "s3cret-t\u00f6ken-\u2603".encode() + b"\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode())
        start = time.monotonic()
        sock.settimeout(0.5)
        answer = b""
        for byte in body:  # one byte every 0.4 s: never silent for 1 s, never done in 3 s
            try:
                sock.sendall(bytes([byte]))
                answer += sock.recv(4096)
                break
            except TimeoutError:
                continue
            except OSError:
                break
        answer += read_all(sock, 5)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"--request-timeout-s" in answer and 2.5 < time.monotonic() - start < 8
    assert healthy(hostile)


# --- row 14: the bearer scheme in any case, a non-ASCII token ---------------------------------------

def test_bearer_scheme_is_case_insensitive_and_utf8_tokens_match(hostile):
    url = hostile.url + "/v1/analyze"
    for scheme in ("Bearer", "bearer", "BEARER", "bEaReR"):
        assert httpx.post(url, json={"text": "x"}, headers=auth(scheme=scheme)).status_code == 200, scheme
    for headers in (auth(token="s3cret-token-x"), auth(scheme="Basic"), auth(token="s3cret-t\u00f6ken-"),
                    {"Authorization": "Bearer s3cret-t\u00f6ken-\u2603".encode("latin-1", "replace")}, {}):
        r = httpx.post(url, json={"text": "x"}, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"


# --- row 17: text of invisible characters only -------------------------------------------------------

def test_zero_width_only_text_is_no_text_not_a_labelled_post(hostile):
    r = post(hostile, "/v1/analyze", json={"text": "\u200b\u200b", "tasks": ["emotion"]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "text" and "results" not in r.json()
    assert post(hostile, "/v1/analyze", json={"text": "\u200bhi", "tasks": ["emotion"]}).status_code == 200
