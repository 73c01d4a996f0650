"""One listener for every entrypoint (``bollydog.entrypoint.kit.site``): the same binding,
socket options and errors for HTTP, WebSocket and MCP."""

from __future__ import annotations

import gc
import json
import socket
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from bollydog.errors import ConfigError
from tests.kit.conftest import serving
from tests.mcp.conftest import http_client


def _sockets(port: int) -> list[socket.socket]:
    """This process's sockets bound to ``port``: the listening one and the server side of
    every accepted connection (a client's socket is bound to another port)."""
    found = []
    for obj in gc.get_objects():
        try:
            if not isinstance(obj, socket.socket) or obj.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            if obj.fileno() != -1 and obj.getsockname()[1] == port:
                found.append(obj)
        except (OSError, ReferenceError):  # closed meanwhile, or a dead weak proxy
            continue
    return found


def _accepted(port: int) -> list[socket.socket]:
    accepted = []
    for sock in _sockets(port):
        try:
            sock.getpeername()
        except OSError:
            continue  # the listening socket
        accepted.append(sock)
    return accepted


async def test_every_entrypoint_sets_tcp_nodelay_on_its_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    # asyncio sets TCP_NODELAY only on connections accepted from a socket created with
    # IPPROTO_TCP; without it Nagle holds a reply's second write for the client's delayed ACK
    # (~40 ms a request). Some resolvers answer protocol 0, which a binder must not pass on.
    resolve = socket.getaddrinfo

    def protocol_zero(*args: Any, **kwargs: Any) -> list[Any]:
        return [(f, t, 0, c, a) for f, t, _, c, a in resolve(*args, **kwargs)]

    monkeypatch.setattr(socket, "getaddrinfo", protocol_zero)
    async with serving() as served:
        async with httpx.AsyncClient(base_url=served.http.url) as client:
            assert (await client.get(served.path("ping"))).status_code == 200
            http = _accepted(served.http.port)
            async with connect(served.ws.url) as ws:
                await ws.send(json.dumps({"name": "kitdemo.ping", "id": 1}))
                assert json.loads(await ws.recv())["type"] == "accepted"
                websocket = _accepted(served.ws.port)
                async with http_client(served.mcp.url, "legacy") as mcp:
                    await mcp.call_tool("kitdemo_ping", {})
                    agent = _accepted(served.mcp.port)
                    for name, accepted in (("http", http), ("websocket", websocket), ("mcp", agent)):
                        assert accepted, name
                        for sock in accepted:
                            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), name


async def test_a_busy_port_is_a_config_error_naming_host_and_port_everywhere() -> None:
    from bollydog.entrypoint.http.app import HttpService
    from bollydog.entrypoint.mcp.app import McpService
    from bollydog.entrypoint.websocket.app import SocketService

    async with serving() as served:
        for kind, taken in ((HttpService, served.http), (SocketService, served.ws), (McpService, served.mcp)):
            other = kind(port=taken.port)
            other.hub = served.hub
            with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{taken.port}"):
                await other.on_start()


async def test_the_port_is_the_requested_one_until_bound() -> None:
    from bollydog.entrypoint.kit.site import Site

    site = Site("127.0.0.1", 0, section="test", env="TEST_PORT", shutdown_timeout=1)
    assert site.port == 0 and site.url("http") == "http://127.0.0.1:0"

    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    await site.start(app)
    try:
        assert site.port != 0
        async with httpx.AsyncClient() as client:
            assert (await client.get(site.url("http", "/x"))).status_code == 204
    finally:
        await site.stop()
    assert site.port != 0  # the one that was bound
