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
    env = {
        **os.environ,
        "BOLLYDOG_HTTP_SERVICE_PORT": str(port), "BOLLYDOG_HTTP_SERVICE_HOST": "127.0.0.1",
        # Every port free: the suite must pass while the example service runs on 8000/8001.
        "BOLLYDOG_WS_SERVICE_PORT": str(_free_port()), "BOLLYDOG_WS_SERVICE_HOST": "127.0.0.1",
    }
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
        # The example's persistent domain (SQLite through SQLAlchemy).
        todo = f"http://127.0.0.1:{port}/todo/todoservice"
        created = httpx.post(f"{todo}/addtask", json={"title": "over http"}, timeout=5)
        assert created.status_code == 200, created.text
        task_id = created.json()["id"]
        done = httpx.get(f"{todo}/completetask", params={"task_id": task_id}, timeout=5)
        assert done.json() == {"id": task_id, "title": "over http", "done": True}
        listed = httpx.get(f"{todo}/listtasks", params={"done": "true"}, timeout=5).json()
        assert {"id": task_id, "title": "over http", "done": True} in listed
        invalid = httpx.post(f"{todo}/addtask", json={"title": ""}, timeout=5)
        assert invalid.status_code == 422 and invalid.json()["errors"][0]["field"] == "title"
        unknown = httpx.get(f"{todo}/completetask", params={"task_id": 999999}, timeout=5)
        assert unknown.status_code == 404 and unknown.json()["error"] == "UnknownTask"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=8) == 0, process.stdout.read().decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
