"""A real `bollydog service --reload` on a temporary app: edits are swapped in on open
connections, a broken save keeps the old code, a config change restarts with no refused
connection."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect as ws_connect

pytest.importorskip("watchfiles", reason="--reload needs the reload extra (watchfiles)")

HANDLERS = '''\
import asyncio

from bollydog.models.base import Command


class Greet(Command):
    who: str


class Slow(Command):
    pass


async def greet(command: Greet) -> str:
    return f"hello {command.who}"


async def slow(command: Slow) -> str:
    await asyncio.sleep(1.5)
    return "old"
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except (OSError, http.client.HTTPException, ValueError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Service:
    root: Path
    http_port: int
    ws_port: int
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str) -> tuple[int, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            return response.status, json.loads(response.read())
        finally:
            conn.close()

    def status(self) -> dict[str, Any]:
        return self.get("/_bollydog/reload")[1]

    def edit(self, old: str, new: str, name: str = "greeter/handlers.py") -> None:
        path = self.root / name
        text = path.read_text()
        assert old in text
        path.write_text(text.replace(old, new))

    def wait_version(self, version: int) -> dict[str, Any]:
        return _wait(lambda: (s := self.status())["code_version"] == version and s, what=f"code version {version}")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    (tmp_path / "greeter").mkdir()
    (tmp_path / "greeter" / "__init__.py").write_text("")
    (tmp_path / "greeter" / "handlers.py").write_text(HANDLERS)
    http_port, ws_port = _free_port(), _free_port()
    (tmp_path / "config.yaml").write_text(
        "front:\n  handlers: [greeter.handlers]\n"
        f"http:\n  app: !module bollydog.entrypoint.http.app.HttpService\n  host: 127.0.0.1\n  port: {http_port}\n"
        f"websocket:\n  app: !module bollydog.entrypoint.websocket.app.SocketService\n  host: 127.0.0.1\n  port: {ws_port}\n"
    )
    log = tmp_path / "service.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "bollydog", "service", "--config", "config.yaml", "--reload"],
            cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    svc = Service(tmp_path, http_port, ws_port, process, log)
    try:
        _wait(lambda: svc.status().get("path") == "none", what="the service to watch")
        yield svc
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            status = process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        assert status == 0, log.read_text()[-3000:]


def test_an_edit_reaches_open_http_and_websocket_connections_while_running_work_finishes_on_old_code(service):
    keep_alive = http.client.HTTPConnection("127.0.0.1", service.http_port, timeout=10)
    keep_alive.request("GET", "/front/appservice/greet?who=ann")
    assert json.loads(keep_alive.getresponse().read()) == "hello ann"
    sock = keep_alive.sock
    with ws_connect(f"ws://127.0.0.1:{service.ws_port}/") as ws:
        ws.send(json.dumps({"name": "front.greet", "id": 1, "who": "bob"}))
        replies = [json.loads(ws.recv(5)) for _ in range(2)]
        assert replies[-1] == {"type": "result", "id": 1, "data": "hello bob"}
        in_flight: dict[str, Any] = {}
        slow = threading.Thread(target=lambda: in_flight.update(result=service.get("/front/appservice/slow")))
        slow.start()
        time.sleep(0.3)  # the slow request is running on the old code
        service.edit('f"hello {command.who}"', 'f"hi {command.who}"')
        service.edit('return "old"', 'return "new"')
        report = service.wait_version(2)
        assert report["path"] == "swap" and report["modules"] == ["greeter.handlers"]
        slow.join(10)
        assert in_flight["result"] == (200, "old")
        keep_alive.request("GET", "/front/appservice/greet?who=ann")
        assert json.loads(keep_alive.getresponse().read()) == "hi ann"
        assert keep_alive.sock is sock  # the same connection
        ws.send(json.dumps({"name": "front.greet", "id": 2, "who": "bob"}))
        replies = [json.loads(ws.recv(5)) for _ in range(2)]
        assert replies[-1] == {"type": "result", "id": 2, "data": "hi bob"}
    assert service.get("/front/appservice/slow") == (200, "new")
    keep_alive.close()


def test_a_broken_save_keeps_the_old_code_and_says_where_then_the_fix_applies_and_openapi_follows(service):
    service.edit("class Slow(Command):\n    pass", "class Slow(Command):\n    pass\n\ndef broken(:")
    report = _wait(lambda: (s := service.status())["path"] == "failed" and s, what="the failed report")
    assert report["code_version"] == 1
    line = (service.root / "greeter/handlers.py").read_text().splitlines().index("def broken(:") + 1
    assert report["where"] == f"{service.root / 'greeter/handlers.py'}:{line}"
    assert "SyntaxError" in report["error"]
    assert service.get("/front/appservice/greet?who=ann") == (200, "hello ann")
    service.edit("\n\ndef broken(:", "")
    service.edit("    who: str\n", "    who: str\n    punctuation: str = '!'\n")
    service.edit('f"hello {command.who}"', 'f"hello {command.who}{command.punctuation}"')
    assert service.wait_version(2)["path"] == "swap"
    assert service.get("/front/appservice/greet?who=ann&punctuation=?") == (200, "hello ann?")
    schema = json.dumps(service.get("/openapi.json")[1])
    assert "punctuation" in schema


def test_a_config_change_restarts_on_the_same_sockets_and_no_request_is_refused(service):
    codes: list[Any] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                codes.append(service.get("/front/appservice/greet?who=ann")[0])
            except (OSError, http.client.HTTPException) as exc:
                codes.append(type(exc).__name__)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        time.sleep(0.5)
        with (service.root / "config.yaml").open("a") as config:
            config.write("# a comment: any change to the config restarts\n")
        _wait(lambda: "ready; draining process" in service.log.read_text(), what="the takeover")
        _wait(lambda: "hub stopped" in service.log.read_text(), what="the old process to stop")
        time.sleep(0.5)
    finally:
        stop.set()
        poller.join(10)
    assert len(codes) > 20
    assert set(codes) == {200}, {c: codes.count(c) for c in set(codes)}
    log = service.log.read_text()
    assert "restart path: the config file config.yaml changed" in log
    status = service.status()  # the new process says why it started
    assert (status["path"], status["reason"]) == ("restart", "the config file config.yaml changed")


def test_a_new_process_that_fails_to_start_leaves_the_old_one_serving_and_says_so(service):
    config = service.root / "config.yaml"
    good = config.read_text()
    config.write_text(good.replace("  port:", "  no_such_option: 1\n  port:", 1))
    report = _wait(lambda: (s := service.status())["path"] == "failed" and s, what="the failed restart")
    assert report["reason"] == "the config file config.yaml changed"
    assert "exited with status 2" in report["error"]
    assert service.get("/front/appservice/greet?who=ann") == (200, "hello ann")
    assert "no_such_option" in service.log.read_text()  # the new process's error, in the log
    config.write_text(good + "# fixed\n")
    _wait(lambda: service.status()["path"] == "restart", what="the next restart")
    assert service.get("/front/appservice/greet?who=ann") == (200, "hello ann")
