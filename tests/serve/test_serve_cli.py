"""`somelvlm serve` as a user runs it: a subprocess on a free loopback port, answered, then stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def test_bad_options_exit_2_naming_the_flag(capsys):
    from somelvlm.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--port", "0"])
    assert exit_info.value.code == 2
    assert "--port" in capsys.readouterr().err


@pytest.mark.slow
def test_serve_command_starts_answers_and_stops_on_sigint(tiny_model):
    from somelvlm.serve.server import free_port

    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               SOMELVLM_API_TOKEN="token-from-env")
    proc = subprocess.Popen([sys.executable, "-m", "somelvlm.cli", "serve", "--port", str(port), "--model",
                             str(tiny_model), "--threads", "1"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not start in 120 s"
            time.sleep(0.3)
        assert httpx.post(url + "/v1/analyze", json={"text": "hi"}).status_code == 401
        r = httpx.post(url + "/v1/analyze", json={"text": "hi", "tasks": ["emotion"]},
                       headers={"Authorization": "Bearer token-from-env"})
        assert r.status_code == 200 and r.json()["model"] == "tiny-mini"
    finally:
        from somelvlm.serve.server import stop_process

        stop_process(proc)
    assert proc.returncode in (0, -signal.SIGINT)
