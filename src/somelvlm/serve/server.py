"""Running the app with uvicorn: in the foreground (``somelvlm serve``) or in a background thread
(tests, notebooks, the interop evaluation)."""

from __future__ import annotations

import socket
import threading
import time

from somelvlm.serve.config import ServeConfig


def uvicorn_config(app, config: ServeConfig, **overrides):
    """uvicorn settings that bound slow clients: header deadline, keep-alive, h11 header size."""
    import uvicorn

    from somelvlm.serve.guards import bounded_h11_protocol

    options = dict(host=config.host, port=config.port, http=bounded_h11_protocol(config.header_timeout_s),
                   timeout_keep_alive=5, h11_max_incomplete_event_size=64 * 1024, log_level="warning",
                   access_log=False, lifespan="on")
    options.update(overrides)
    return uvicorn.Config(app, **options)


def serve(config: ServeConfig) -> None:
    """Build the app (loads the models) and serve until interrupted."""
    import uvicorn

    from somelvlm.serve.app import create_app

    app = create_app(config)
    print(f"somelvlm serving {app.state.service.model_name} on http://{config.host}:{config.port}/ "
          f"(docs: /docs; token: {'required' if config.token else 'off'})", flush=True)
    uvicorn.Server(uvicorn_config(app, config)).run()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class BackgroundServer:
    """An app served by uvicorn in a daemon thread on a free loopback port.

    >>> with BackgroundServer(app) as server:          # doctest: +SKIP
    ...     httpx.get(server.url + "/healthz")
    """

    def __init__(self, app, config: ServeConfig | None = None, port: int | None = None) -> None:
        import uvicorn

        config = config or app.state.config
        self.host = "127.0.0.1"
        self.port = port or free_port(self.host)
        self.server = uvicorn.Server(uvicorn_config(app, config, host=self.host, port=self.port))
        self.thread = threading.Thread(target=self.server.run, daemon=True, name=f"uvicorn-{self.port}")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server on port {self.port} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def stop_process(proc, timeout: float = 20.0) -> int:
    """Stop a ``somelvlm serve`` subprocess as Ctrl-C would (uvicorn shuts down cleanly), killing it
    after ``timeout`` seconds; returns its exit code."""
    import signal
    import subprocess

    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
