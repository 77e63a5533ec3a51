"""``somelvlm serve --workers 2`` as a real subprocess on loopback: requests spread over two worker
processes, and /metrics, whichever worker answers it, counts all of them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from somelvlm.serve.server import free_port, stop_process

REPO = Path(__file__).resolve().parents[2]
N_REQUESTS = 12


def serve_command(model: Path, port: int) -> list[str]:
    """``somelvlm serve --workers 2`` on the tiny model."""
    return [sys.executable, "-m", "somelvlm.cli", "serve", "--workers", "2", "--model", str(model),
            "--port", str(port), "--no-ocr", "--threads", "1"]


def counted(metrics: str, route: str) -> float:
    pattern = re.compile(r'^somelvlm_requests_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$', re.MULTILINE)
    return sum(float(m["value"]) for m in pattern.finditer(metrics) if f'route="{route}"' in m["labels"])


def test_two_workers_share_one_metrics_view(tiny_model, tmp_path):
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), SOMELVLM_CACHE=str(tmp_path / "cache"))
    for name in ("SOMELVLM_API_TOKEN", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(serve_command(tiny_model, port), env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.5)
        for i in range(N_REQUESTS):  # a new connection each time, so the kernel spreads them over the workers
            r = httpx.post(url + "/v1/analyze", json={"id": str(i), "text": f"what a day #{i}", "tasks": ["emotion"]},
                           headers={"connection": "close"}, timeout=60)
            assert r.status_code == 200, r.text
        views = [httpx.get(url + "/metrics", headers={"connection": "close"}, timeout=30).text for _ in range(6)]
        assert all(counted(v, "/v1/analyze") == N_REQUESTS for v in views), [counted(v, "/v1/analyze") for v in views]
        assert all("somelvlm_requests_in_flight" in v for v in views)
        assert 'somelvlm_batch_size_count{batcher="classify"}' in views[-1]
    finally:
        stop_process(proc, timeout=30)
        log.close()
    assert "with 2 workers" in (tmp_path / "serve.log").read_text()
