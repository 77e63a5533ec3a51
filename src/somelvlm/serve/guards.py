"""Safety guards that sit in front of every route: bearer token, body size, slow clients, and a
concurrency limit; plus an HTTP protocol that closes connections whose headers never finish.

The guard is plain ASGI (not a Starlette ``BaseHTTPMiddleware``) so it can check the body as it
streams in: a ``Content-Length`` over the limit is refused before reading, a chunked body is
counted while it arrives, and a client that stops sending mid-body gets 408 after
``body_timeout_s`` instead of holding a worker forever.
"""

from __future__ import annotations

import asyncio
import hmac

from somelvlm.serve.errors import APIError, json_bytes

CLOSE = {"connection": "close"}
"""Sent with answers given before the body was read to its end: the connection cannot be reused."""

PROTECTED_PREFIXES = ("/v1/", "/metrics")
"""Paths that need the bearer token when one is set (the page, /healthz and the docs stay open)."""
PUBLIC_PATHS = frozenset({"/v1/levels"})
"""Open even with a token: the page lists the levels before the user has typed the token."""


class GuardMiddleware:
    """ASGI middleware: token check, body size limit, body read timeout."""

    def __init__(self, app, *, token: str | None, max_body_bytes: int, body_timeout_s: float) -> None:
        self.app = app
        self.token = token
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path = scope.get("path", "")
        if (self.token and path.startswith(PROTECTED_PREFIXES) and path not in PUBLIC_PATHS
                and scope.get("method") != "OPTIONS"):
            given = headers.get("authorization", "")
            if not (given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(), self.token.encode())):
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
        received = 0
        body_done = False

        async def guarded_receive():
            nonlocal received, body_done
            if body_done:  # after the body: waiting for a disconnect needs no deadline
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.body_timeout_s)
            except TimeoutError:
                raise APIError(408, f"the client sent no data for {self.body_timeout_s:g} s while sending the body "
                                    "(--body-timeout-s)", param="body", headers=CLOSE) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise APIError(413, f"the body exceeds the limit of {self.max_body_bytes} bytes "
                                        "(--max-body-bytes)", param="body", headers=CLOSE)
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        started = False

        async def tracked_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, tracked_send)
        except APIError as err:  # raised while reading the body outside a route's error handling
            if not started:
                await _send_json(send, err.status, json_bytes(err.status, err.message, err.type, err.param))


async def _send_json(send, status: int, body: bytes, extra: dict[str, str] | None = None) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"connection", b"close")]
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
