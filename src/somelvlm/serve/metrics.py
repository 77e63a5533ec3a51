"""Prometheus metrics of one app (its own registry, so several apps can live in one process)."""

from __future__ import annotations

import time

from somelvlm.serve.guards import CLIENT_CLOSED

CLIENT_CLOSED_STATUS = 499
"""The status /metrics counts for a client that went away before sending its whole request."""


class ServerMetrics:
    """Request counts and latencies per route and status, batch sizes and model time per batcher.

    With several server processes (``somelvlm serve --workers N``) the server sets
    ``PROMETHEUS_MULTIPROC_DIR`` before the workers start: prometheus_client then keeps every value in
    a file per process there, and ``render`` sums the files of all workers (``MultiProcessCollector``),
    so any worker answers /metrics with the totals of the whole server.
    """

    def __init__(self) -> None:
        import os

        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))  # values in the workers' shared folder
        self.registry = CollectorRegistry()
        self.requests = Counter("somelvlm_requests", "HTTP requests by route and status code",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("somelvlm_request_seconds", "Request latency by route", ["route"],
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
                                 registry=self.registry)
        self.in_flight = Gauge("somelvlm_requests_in_flight", "Requests being processed", registry=self.registry,
                               multiprocess_mode="livesum")
        self.batch_size = Histogram("somelvlm_batch_size", "Items per model call", ["batcher"],
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=self.registry)
        self.batch_seconds = Histogram("somelvlm_batch_seconds", "Seconds per model call", ["batcher"],
                                       buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                                       registry=self.registry)

    def on_batch(self, batcher: str, size: int, seconds: float) -> None:
        self.batch_size.labels(batcher).observe(size)
        self.batch_seconds.labels(batcher).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if self.multiprocess:
            from prometheus_client import CollectorRegistry, multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """ASGI middleware counting every response by its route template (not the raw path).

    A request whose client disconnected before its body was complete (the guard sets
    ``CLIENT_CLOSED``) counts as status 499 ("client closed", as nginx logs it), not 500; a request
    that ends with no answer for any other reason counts as 500.
    """

    def __init__(self, app, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.in_flight.dec()
            if scope.get(CLIENT_CLOSED) and status == 500:
                status = CLIENT_CLOSED_STATUS
            name = route_name(scope)
            self.metrics.requests.labels(name, scope.get("method", ""), str(status)).inc()
            self.metrics.latency.labels(name).observe(time.perf_counter() - start)


def route_name(scope) -> str:
    """The route template a request went to; for one that ended before routing (the guard answered,
    or the client left mid-body), the template its path matches; ``other`` for none."""
    route = scope.get("route")
    if getattr(route, "path", None):
        return route.path
    if scope["path"].startswith("/static/"):
        return "/static"
    from starlette.routing import Match

    router = getattr(scope.get("app"), "router", None)
    for candidate in getattr(router, "routes", []):
        if getattr(candidate, "path", None) and candidate.matches(scope)[0] == Match.FULL:
            return candidate.path
    return "other"
