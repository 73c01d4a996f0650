"""The HttpService lifecycle: start/stop with the hub, port 0, no signal handlers, options."""

import asyncio
import json
import logging
import signal
import socket
import subprocess
import sys

import httpx
import pytest

from bollydog.entrypoint.http.app import HttpService
from bollydog.errors import ConfigError
from bollydog.service.app import HubService

from conftest import demo_app, serve

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_port_zero_is_bound_and_read_back():
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    async with serve() as (_, http, client):
        assert http.port != 0
        assert (await client.get("/demo/svc/ping")).json() == "pong"
        # uvicorn must not have taken over the process's signals
        assert {s: signal.getsignal(s) for s in before} == before
        url = http.url
    assert {s: signal.getsignal(s) for s in before} == before
    with pytest.raises(httpx.ConnectError):
        async with httpx.AsyncClient() as client:
            await client.get(url + "/demo/svc/ping")


async def test_stop_waits_for_in_flight_requests():
    hub = HubService(apps=[demo_app()])
    http = hub.add_entrypoint(HttpService(port=0))
    await hub.start()
    async with httpx.AsyncClient(base_url=http.url) as client:
        request = asyncio.ensure_future(client.get("/demo/svc/slow", params={"delay": "0.3"}))
        await asyncio.sleep(0.1)
        await hub.stop()
        r = await request
    assert r.status_code == 200 and r.json() == "slept"


async def test_busy_port_is_a_config_error():
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        hub = HubService(apps=[demo_app()])
        hub.add_entrypoint(HttpService(port=port))
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            await hub.start()
        await hub.stop()


async def test_options_then_environment_then_defaults(monkeypatch):
    monkeypatch.setenv("BOLLYDOG_HTTP_SERVICE_PORT", "9123")
    monkeypatch.setenv("BOLLYDOG_HTTP_SERVICE_DEBUG", "true")
    monkeypatch.setenv("BOLLYDOG_HTTP_SERVICE_EXCLUDE", "bollydog.*,demo.fail")
    service = HttpService()
    assert service.port == 9123 and service.settings.debug is True
    assert service.settings.exclude == ["bollydog.*", "demo.fail"]
    assert service.host == "127.0.0.1"
    assert HttpService(port="0", debug="false").settings.debug is False
    monkeypatch.setenv("BOLLYDOG_HTTP_SERVICE_PORT", "not-a-port")
    with pytest.raises(ConfigError, match="port"):
        HttpService()


async def test_unknown_option_is_a_config_error():
    with pytest.raises(ConfigError, match="prot"):
        HttpService(prot=8000)


async def test_without_a_hub_start_fails_clearly():
    with pytest.raises(ConfigError, match="no hub"):
        HttpService(port=0).build_app()


def _import_without(package: str) -> subprocess.CompletedProcess:
    code = (
        f"import sys; sys.modules[{package!r}] = None\n"
        "from bollydog.errors import MissingDependencyError\n"
        "try:\n"
        "    import bollydog.entrypoint.http.app\n"
        "except MissingDependencyError as exc:\n"
        "    print(exc.feature, exc.extra, exc.missing)\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)


async def test_missing_dependency_error_at_import():
    for package in ("starlette", "uvicorn"):
        result = _import_without(package)
        assert result.stdout.strip() == f"HTTP entrypoint http {package}", result.stderr


async def test_keep_alive_requests_are_not_delayed_by_nagle(client):
    # A listening socket without IPPROTO_TCP leaves Nagle on: ~40 ms per keep-alive request.
    loop = asyncio.get_running_loop()
    await client.get("/demo/svc/ping")
    start = loop.time()
    for _ in range(20):
        assert (await client.get("/demo/svc/ping")).status_code == 200
    assert loop.time() - start < 0.5


async def test_request_running_past_the_grace_gets_a_json_503_logged_once(caplog):
    caplog.set_level(logging.INFO)
    hub = HubService(apps=[demo_app()], shutdown_grace=0.5)
    http = hub.add_entrypoint(HttpService(port=0))
    await hub.start()
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(base_url=http.url, timeout=10) as client:
        request = asyncio.ensure_future(client.get("/demo/svc/slow", params={"delay": "30"}))
        await asyncio.sleep(0.2)  # the handler sleeps now
        started = loop.time()
        await hub.stop()
        elapsed = loop.time() - started
        r = await request
    assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"error": "HubNotRunningError", "message": "the hub stopped before this message completed"}
    assert r.headers["x-bollydog-message-id"]  # like every answer about a message
    assert elapsed < 0.5 + 1.0
    cut = [rec for rec in caplog.records if " cut: " in rec.getMessage()]
    assert len(cut) == 1 and cut[0].getMessage().startswith("slow (")
    assert not [rec for rec in caplog.records if rec.exc_info or rec.levelno >= logging.ERROR]


async def test_request_not_at_the_hub_yet_when_the_grace_ends_gets_a_json_503_too(caplog):
    caplog.set_level(logging.INFO)
    hub = HubService(apps=[demo_app()], shutdown_grace=0.3)
    http = hub.add_entrypoint(HttpService(port=0))
    await hub.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", http.port)
    # A body announced but still arriving: the request never reaches the hub.
    writer.write(
        b"POST /demo/svc/echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        b"content-length: 100\r\n\r\n{\"te"
    )
    await writer.drain()
    await asyncio.sleep(0.1)
    await hub.stop()
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503"), raw
    assert b"content-type: application/json" in head and b"retry-after: 1" in head
    assert json.loads(body)["error"] == "HubNotRunningError"
    cut = [rec for rec in caplog.records if " cut: " in rec.getMessage()]
    assert len(cut) == 1 and "POST /demo/svc/echo" in cut[0].getMessage()
    assert not [rec for rec in caplog.records if rec.exc_info or rec.levelno >= logging.ERROR]


async def test_stream_running_past_the_grace_ends_with_a_503_error_event():
    hub = HubService(apps=[demo_app()], shutdown_grace=0.3)
    http = hub.add_entrypoint(HttpService(port=0))
    await hub.start()
    async with httpx.AsyncClient(base_url=http.url, timeout=10) as client:
        async with client.stream(
            "GET", "/demo/svc/slow", params={"delay": "30"}, headers={"accept": "text/event-stream"}
        ) as response:
            stopping = asyncio.ensure_future(hub.stop())
            body = (await response.aread()).decode()
        await stopping
    assert response.status_code == 200
    event, data = body.strip().split("\n")
    assert event == "event: error"
    assert json.loads(data.removeprefix("data: ")) == {
        "error": "HubNotRunningError", "message": "the hub stopped before this message completed", "status": 503,
    }


async def test_a_request_sent_on_a_new_connection_as_the_stop_begins_is_answered():
    # A client connected just before the stop and is sending its first request: a close of
    # that "idle" connection would be a drop it cannot tell from a failure.
    hub = HubService(apps=[demo_app()])
    http = hub.add_entrypoint(HttpService(port=0))
    await hub.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", http.port)
    await asyncio.sleep(0.05)  # accepted by the server, nothing sent yet
    stopping = asyncio.ensure_future(hub.stop())
    await asyncio.sleep(0.01)  # the stop has begun
    writer.write(b"GET /demo/svc/ping HTTP/1.1\r\nhost: x\r\n\r\n")
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 5)  # answered, then closed
    writer.close()
    await stopping
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), raw
    assert json.loads(body) == "pong"
