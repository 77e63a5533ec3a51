"""Running the app with uvicorn: in the foreground (``somelvlm serve``, one process or ``--workers N``)
or in a background thread (tests, notebooks, the interop evaluation).

With ``workers > 1`` uvicorn's supervisor starts N worker processes that share the listening socket;
each builds its own app (and loads the models) through ``app_from_env``, which reads the server's
``ServeConfig`` from ``$SOMELVLM_SERVE_CONFIG``. Before they start, the server points
``PROMETHEUS_MULTIPROC_DIR`` at a fresh temporary folder, so /metrics counts every worker's requests
(see ``serve.metrics``); the folder is removed when the server stops.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import asdict, replace

from somelvlm.serve.config import ServeConfig

CONFIG_ENV = "SOMELVLM_SERVE_CONFIG"
"""Environment variable carrying the ``ServeConfig`` (JSON) from the server to its worker processes."""
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client's folder for the values of several processes (read by ``serve.metrics``)."""


def uvicorn_options(config: ServeConfig, **overrides) -> dict:
    """uvicorn settings that bound slow clients (keep-alive, h11 header size), without the protocol class."""
    options = {"host": config.host, "port": config.port, "timeout_keep_alive": 5,
               "h11_max_incomplete_event_size": 64 * 1024, "log_level": "warning", "access_log": False, "lifespan": "on"}
    options.update(overrides)
    return options


def uvicorn_config(app, config: ServeConfig, **overrides):
    """uvicorn settings that bound slow clients: header deadline, keep-alive, h11 header size."""
    import uvicorn

    from somelvlm.serve.guards import bounded_h11_protocol

    return uvicorn.Config(app, **uvicorn_options(config, http=bounded_h11_protocol(config.header_timeout_s),
                                                 **overrides))


def serve(config: ServeConfig) -> None:
    """Build the app (loads the models) and serve until interrupted; ``config.workers`` processes."""
    import uvicorn

    if config.workers > 1:
        serve_workers(config)
        return
    from somelvlm.serve.app import create_app

    app = create_app(config)
    print(f"somelvlm serving {app.state.service.model_name} on http://{config.host}:{config.port}/ "
          f"(docs: /docs; token: {'required' if config.token else 'off'})", flush=True)
    uvicorn.Server(uvicorn_config(app, config)).run()


def serve_workers(config: ServeConfig) -> None:
    """Serve with ``config.workers`` uvicorn worker processes until interrupted (see the module doc)."""
    import shutil
    import tempfile

    import uvicorn

    if config.threads is None:  # N workers share the cores instead of each taking all of them
        config = replace(config, threads=max(1, (os.cpu_count() or 1) // config.workers))
    metrics_dir = tempfile.mkdtemp(prefix="somelvlm-metrics-")
    os.environ[MULTIPROC_ENV] = metrics_dir  # inherited by the workers, which import prometheus_client anew
    os.environ[CONFIG_ENV] = json.dumps(asdict(config))
    print(f"somelvlm serving {config.model or 'some-mini'} with {config.workers} workers on "
          f"http://{config.host}:{config.port}/ (docs: /docs; token: {'required' if config.token else 'off'})",
          flush=True)
    try:
        uvicorn.run(f"{__name__}:app_from_env", factory=True, workers=config.workers,
                    **uvicorn_options(config, http=f"{__name__}:WorkerH11Protocol"))
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def app_from_env():
    """The app of one worker process, from ``$SOMELVLM_SERVE_CONFIG`` (uvicorn's ``--factory`` target:
    ``uvicorn somelvlm.serve.server:app_from_env --factory``)."""
    import atexit

    from somelvlm.serve.app import create_app

    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        atexit.register(multiprocess.mark_process_dead, os.getpid())  # drop this worker's live gauges
    return create_app(_env_config())


def _env_config() -> ServeConfig:
    raw = os.environ.get(CONFIG_ENV)
    return ServeConfig(**json.loads(raw)) if raw else ServeConfig()


def __getattr__(name: str):
    """``WorkerH11Protocol``: the bounded h11 protocol with the header deadline of the env config (uvicorn
    imports the protocol of worker processes by name, so it cannot be a class made in ``serve``)."""
    if name == "WorkerH11Protocol":
        from somelvlm.serve.guards import bounded_h11_protocol

        return bounded_h11_protocol(_env_config().header_timeout_s)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
