"""End to end: `bollydog service --config example/config.yaml`, a GET, then SIGTERM."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_service_serves_the_seed_url_and_stops_on_sigterm():
    port = _free_port()
    env = {**os.environ, "BOLLYDOG_HTTP_SERVICE_PORT": str(port), "BOLLYDOG_HTTP_SERVICE_HOST": "127.0.0.1"}
    bollydog = Path(sys.executable).with_name("bollydog")
    command = [str(bollydog)] if bollydog.exists() else [sys.executable, "-m", "bollydog.cli.main"]
    process = subprocess.Popen(
        [*command, "service", "--config", "example/config.yaml"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}/example/exampleservice/taskcount"
        deadline = time.monotonic() + 15
        while True:
            try:
                r = httpx.get(url, timeout=2)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(process.stdout.read().decode(errors="replace")) from None
                time.sleep(0.1)
        assert r.status_code == 200
        assert isinstance(r.json(), int)
        assert httpx.get(f"http://127.0.0.1:{port}/count", timeout=2).status_code == 200  # alias
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=8) == 0, process.stdout.read().decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
