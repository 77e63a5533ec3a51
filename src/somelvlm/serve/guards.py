"""Guards in front of every route: bearer token, body size, slow clients, JSON depth, and a
concurrency limit; plus an HTTP protocol that closes connections whose headers never finish.

The guard is plain ASGI (not a Starlette ``BaseHTTPMiddleware``) and reads each request's body
itself, to its end, before the route runs:

- a ``Content-Length`` over the limit is refused before reading, a chunked body is counted while it
  arrives (413);
- a client that pauses longer than ``body_timeout_s`` mid-body, or has not finished its body
  ``body_deadline_s`` after it began (1 byte every few seconds), gets 408 on every route;
- a client that disconnects mid-body ends the request quietly: no traceback, no route called, and
  /metrics counts it as status 499 ("client closed", ``CLIENT_CLOSED``);
- a JSON body nested deeper than ``max_json_depth`` gets 400 before anyone parses it.

So a route takes its concurrency slot (``ConcurrencyLimit``) only once its body is in memory: slow
senders wait outside the limit and cannot starve the requests that are ready.
"""

from __future__ import annotations

import asyncio
import hmac
import re

from somelvlm.serve.errors import APIError, json_bytes

CLOSE = {"connection": "close"}
"""Sent with answers given before the body was read to its end: the connection cannot be reused."""

PROTECTED_PREFIXES = ("/v1/", "/metrics")
"""Paths that need the bearer token when one is set (the page, /healthz and the docs stay open)."""
PUBLIC_PATHS = frozenset({"/v1/levels"})
"""Open even with a token: the page lists the levels before the user has typed the token."""
MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays / objects a JSON body may have (our requests need about 6)."""
CLIENT_CLOSED = "somelvlm.client_closed"
"""Scope key set when the client disconnected before its body was complete (status 499 in /metrics)."""

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)', re.DOTALL)
"""A JSON string, or an unterminated one up to the end (so the scan stays linear)."""
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(body: bytes, chunk: int = 1 << 20) -> int:
    """The deepest nesting of ``[`` / ``{`` in a JSON text, brackets inside strings not counted.

    Linear time and bounded memory (brackets are counted in chunks of ``chunk`` bytes), so it can
    run on untrusted bodies before ``json.loads``, whose recursion it protects.
    """
    import numpy as np

    if body.count(b"[") + body.count(b"{") <= 1:
        return int(b"[" in body or b"{" in body)
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    depth = peak = 0
    for start in range(0, len(brackets), chunk):
        marks = np.frombuffer(brackets, np.uint8, count=min(chunk, len(brackets) - start), offset=start)
        levels = np.cumsum(np.where((marks == ord("[")) | (marks == ord("{")), 1, -1).astype(np.int32)) + depth
        peak, depth = max(peak, int(levels.max())), int(levels[-1])
    return peak


def bearer_matches(raw_headers, token: bytes) -> bool:
    """Whether the ``Authorization`` header is ``Bearer <token>``: the scheme in any case (HTTP
    schemes are case-insensitive), the token compared as raw bytes in constant time (a UTF-8 token
    arrives as its UTF-8 bytes)."""
    value = next((v for k, v in raw_headers if k.lower() == b"authorization"), b"")
    scheme, _, given = value.strip().partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), token)


class GuardMiddleware:
    """ASGI middleware: token check, body size limit, body read deadlines, JSON depth."""

    def __init__(self, app, *, token: str | None, max_body_bytes: int, body_timeout_s: float,
                 body_deadline_s: float | None = None, max_json_depth: int = MAX_JSON_DEPTH) -> None:
        self.app = app
        self.token = token
        self.token_bytes = token.encode("utf-8") if token else b""
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.body_deadline_s = body_deadline_s
        self.max_json_depth = max_json_depth

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_headers = scope.get("headers", [])
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw_headers}
        path = scope.get("path", "")
        if (self.token and path.startswith(PROTECTED_PREFIXES) and path not in PUBLIC_PATHS
                and scope.get("method") != "OPTIONS" and not bearer_matches(raw_headers, self.token_bytes)):
            await _send_json(send, 401, json_bytes(401, "missing or wrong bearer token: send "
                                                   "'Authorization: Bearer <token>'", "authentication_error"),
                             {"www-authenticate": "Bearer"})
            return
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                await _send_json(send, 400, json_bytes(400, f"Content-Length {length!r} is not a number"))
                return
            if int(length) > self.max_body_bytes:
                await _send_json(send, 413, json_bytes(413, f"the body has {int(length)} bytes, the limit is "
                                                       f"{self.max_body_bytes} (--max-body-bytes)", param="body"))
                return
        try:
            body = await self._read_body(receive)
        except APIError as err:
            await _send_json(send, err.status, json_bytes(err.status, err.message, err.type, err.param))
            return
        if body is None:  # the client went away mid-body: nobody to answer
            scope[CLIENT_CLOSED] = True
            return
        kind = headers.get("content-type", "").split(";")[0].strip().lower()
        if body and (kind in ("", "application/json") or kind.endswith("+json")) \
                and json_depth(body) > self.max_json_depth:
            await _send_json(send, 400, json_bytes(400, f"the JSON body is nested deeper than {self.max_json_depth} "
                                                   "levels of arrays and objects", param="body"), close=False)
            return
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: a disconnect, for streaming responses

        await self.app(scope, replay, send)

    async def _read_body(self, receive) -> bytes | None:
        """The whole body, or None when the client disconnected; 408 / 413 as ``APIError``."""
        loop = asyncio.get_running_loop()
        deadline = None if self.body_deadline_s is None else loop.time() + self.body_deadline_s
        chunks, received = [], 0
        while True:
            wait = self.body_timeout_s
            if deadline is not None:
                wait = min(wait, deadline - loop.time())
            try:
                if wait <= 0:
                    raise TimeoutError
                message = await asyncio.wait_for(receive(), wait)
            except TimeoutError:
                if deadline is not None and loop.time() >= deadline - 1e-3:
                    raise APIError(408, f"the client had not sent its whole body {self.body_deadline_s:g} s after "
                                        "it began (--request-timeout-s)", param="body", headers=CLOSE) from None
                raise APIError(408, f"the client sent no data for {self.body_timeout_s:g} s while sending the body "
                                    "(--body-timeout-s)", param="body", headers=CLOSE) from None
            if message["type"] != "http.request":
                return None
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body_bytes:
                raise APIError(413, f"the body exceeds the limit of {self.max_body_bytes} bytes (--max-body-bytes)",
                               param="body", headers=CLOSE)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


async def _send_json(send, status: int, body: bytes, extra: dict[str, str] | None = None, *,
                     close: bool = True) -> None:
    """A JSON answer from the guard; ``close`` unless the body was read to its end (keep-alive is safe)."""
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ConcurrencyLimit:
    """At most ``limit`` requests inside at once; the next one is answered 429 at once, not queued."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    def __enter__(self) -> ConcurrencyLimit:
        if self.active >= self.limit:
            raise APIError(429, f"the server is busy ({self.limit} requests in progress, --max-concurrency); "
                                "retry shortly", type="rate_limit_error", headers={"retry-after": "1"})
        self.active += 1
        return self

    def __exit__(self, *exc) -> None:
        self.active -= 1


def bounded_h11_protocol(header_timeout_s: float):
    """uvicorn's h11 protocol, plus a deadline for the request headers.

    uvicorn times out idle keep-alive connections but not a client that sends half its headers and
    stops (slowloris): this closes a connection whose headers are not complete ``header_timeout_s``
    after it opened or after its previous response.
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class BoundedH11Protocol(H11Protocol):
        _header_deadline: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._header_deadline = self.loop.call_later(header_timeout_s, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_deadline is not None:
                self._header_deadline.cancel()
                self._header_deadline = None

        def _headers_too_slow(self) -> None:
            self._header_deadline = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            super().connection_lost(exc)

    return BoundedH11Protocol
