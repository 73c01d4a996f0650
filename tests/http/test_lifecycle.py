"""The HttpService lifecycle: start/stop with the hub, port 0, no signal handlers, options."""

import asyncio
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
