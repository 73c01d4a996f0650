"""Slow and idle connections are bounded: a request head has a deadline, open connections a
cap (``bollydog.entrypoint.kit.guard``), on the HTTP and the WebSocket server alike."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from websockets.asyncio.client import connect

from bollydog.entrypoint.http.app import HttpService
from bollydog.errors import ConfigError
from tests.reliability.conftest import answer, serving, trickle

HEAD = b"GET /openapi.json HTTP/1.1\r\nHost: test\r\n"
UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
)


async def test_slowloris_connections_are_answered_408_and_closed_while_others_are_served() -> None:
    async with serving(http={"header_timeout": 1.0}) as served:
        attack = [asyncio.create_task(trickle(served.http.port, HEAD)) for _ in range(50)]
        await asyncio.sleep(0.5)  # every attacker has its connection, trickling
        async with httpx.AsyncClient(base_url=served.http.url) as client:
            reply = await client.post(served.path("echo"), json={"text": "hi"})
        assert reply.status_code == 200 and reply.json() == {"echo": "hi"}
        assert not any(task.done() for task in attack)  # served while the attack holds its connections
        results = await asyncio.gather(*attack)
    for data, lasted in results:
        assert data.startswith(b"HTTP/1.1 408 ")
        assert json.loads(data.split(b"\r\n\r\n", 1)[1])["error"] == "RequestTimeout"
        assert 0.9 < lasted < 3.0


async def test_an_idle_connection_is_closed_without_an_answer() -> None:
    async with serving(http={"header_timeout": 0.5}) as served:
        loop = asyncio.get_running_loop()
        began = loop.time()
        assert await answer(served.http.port, b"") == b""
        assert loop.time() - began < 2.5


async def test_the_next_head_on_a_kept_alive_connection_has_the_same_deadline() -> None:
    async with serving(http={"header_timeout": 1.0}) as served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.http.port)
        try:
            writer.write(HEAD + b"\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200 ")
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
            await reader.readexactly(length)
            writer.write(b"GET /openapi.json HTTP/1.1\r\n")  # a second head, never finished

            async def drip() -> None:
                while True:
                    await asyncio.sleep(0.1)
                    writer.write(b"x")
                    await writer.drain()

            dripping = asyncio.create_task(drip())
            try:
                assert (await asyncio.wait_for(reader.read(), 5)).startswith(b"HTTP/1.1 408 ")
            finally:
                dripping.cancel()
                await asyncio.gather(dripping, return_exceptions=True)
        finally:
            writer.close()


async def test_a_websocket_handshake_has_the_head_deadline_too() -> None:
    async with serving(ws={"header_timeout": 1.0}) as served:
        data, lasted = await trickle(served.ws.port, UPGRADE)
    assert data.startswith(b"HTTP/1.1 408 ") and lasted < 3.0


async def test_connections_beyond_max_connections_get_503_until_one_closes() -> None:
    async with serving(http={"max_connections": 4, "header_timeout": 30, "retry_after": 7}) as served:
        idle = [await asyncio.open_connection("127.0.0.1", served.http.port) for _ in range(4)]
        for _, writer in idle:
            writer.write(b"GET / HTTP/1.1\r\n")  # a head under way: not a request yet
            await writer.drain()
        await asyncio.sleep(0.2)
        async with httpx.AsyncClient(base_url=served.http.url) as client:
            refused = await client.post(served.path("echo"), json={"text": "hi"})
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "7"
            assert refused.json()["error"] == "TooManyConnections"
            assert "max_connections" in refused.json()["message"]
            for _, writer in idle:
                writer.close()
            await asyncio.sleep(0.2)
            assert (await client.post(served.path("echo"), json={"text": "hi"})).status_code == 200


async def test_a_websocket_handshake_with_a_header_over_8_kib_is_answered_431() -> None:
    async with serving() as served:
        loop = asyncio.get_running_loop()
        began = loop.time()
        data = await answer(served.ws.port, UPGRADE + b"X-Big: " + b"a" * 9000 + b"\r\n\r\n", timeout=5)
        assert data.startswith(b"HTTP/1.1 431 ")
        assert loop.time() - began < 2.0
        async with connect(served.ws.url) as client:  # and the server still takes handshakes
            await client.send(json.dumps({"type": "ping", "id": 1}))
            assert json.loads(await asyncio.wait_for(client.recv(), 5)) == {"type": "pong", "id": 1}


def test_the_bounds_are_options_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOLLYDOG_HTTP_SERVICE_HEADER_TIMEOUT", "2.5")
    monkeypatch.setenv("BOLLYDOG_HTTP_SERVICE_MAX_CONNECTIONS", "12")
    service = HttpService(port=0)
    assert service.site.limits.header_timeout == 2.5 and service.site.limits.max_connections == 12
    with pytest.raises(ConfigError, match="header_timeout"):
        HttpService(port=0, header_timeout=0)


async def test_the_h11_protocol_has_the_same_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    # uvicorn picks h11 when httptools is not installed: the same deadline, the same cap
    from bollydog.entrypoint.kit import guard, site

    monkeypatch.setattr(site, "http_protocol", lambda: guard._BoundedH11)
    async with serving(http={"header_timeout": 1.0, "max_connections": 2}) as served:
        data, lasted = await trickle(served.http.port, HEAD)
        assert data.startswith(b"HTTP/1.1 408 ") and lasted < 3.0
        async with httpx.AsyncClient(base_url=served.http.url) as client:
            assert (await client.post(served.path("echo"), json={"text": "hi"})).status_code == 200
        idle = [await asyncio.open_connection("127.0.0.1", served.http.port) for _ in range(2)]
        await asyncio.sleep(0.2)
        assert (await answer(served.http.port, HEAD + b"\r\n")).startswith(b"HTTP/1.1 503 ")
        for _, writer in idle:
            writer.close()


async def test_the_408_comes_between_header_timeout_and_a_quarter_more() -> None:
    # One sweep per server, a quarter of header_timeout apart: never early, at most T/4 late.
    async with serving(http={"header_timeout": 0.8}) as served:
        results = await asyncio.gather(*(trickle(served.http.port, HEAD, every=0.05) for _ in range(8)))
    for data, lasted in results:
        assert data.startswith(b"HTTP/1.1 408 ")
        assert 0.8 <= lasted < 0.8 * 1.25 + 0.15  # the slack: loop turns and the client's own read


async def test_an_upgraded_websocket_outlives_the_head_deadline() -> None:
    async with serving(ws={"header_timeout": 0.4}) as served:
        async with connect(served.ws.url) as client:
            await asyncio.sleep(1.0)  # several sweeps: the handshake ended the deadline
            await client.send(json.dumps({"type": "ping", "id": 2}))
            assert json.loads(await asyncio.wait_for(client.recv(), 5)) == {"type": "pong", "id": 2}


async def test_a_request_arms_no_timer_and_the_sweep_stops_with_the_server() -> None:
    from bollydog.entrypoint.kit import guard

    async with serving(http={"header_timeout": 0.4}) as served:
        server = served.http.site._serving.server  # type: ignore[attr-defined]
        sweep = server.sweep
        assert isinstance(sweep, guard.HeadSweep) and sweep.interval == pytest.approx(0.1)
        loop = asyncio.get_running_loop()
        timers = 0
        call_later = loop.call_later

        def counting(delay: float, callback: object, *args: object) -> asyncio.TimerHandle:
            nonlocal timers
            # A timer of the guard's own (uvicorn's keep-alive timer is uvicorn's), not the sweep's.
            defined_in = getattr(getattr(callback, "__func__", callback), "__module__", None)
            if defined_in == guard.__name__ and getattr(callback, "__self__", None) is not sweep:
                timers += 1
            return call_later(delay, callback, *args)  # type: ignore[arg-type]

        async with httpx.AsyncClient(base_url=served.http.url) as client:
            loop.call_later = counting  # type: ignore[method-assign]
            try:
                for _ in range(5):  # keep-alive: five heads on one connection
                    assert (await client.post(served.path("echo"), json={"text": "hi"})).status_code == 200
            finally:
                del loop.call_later  # type: ignore[method-assign]
        assert timers == 0
        assert sweep._timer is not None
    assert sweep._timer is None


async def test_the_sweep_closes_only_connections_past_the_deadline() -> None:
    from bollydog.entrypoint.kit.guard import HeadSweep

    class Connection:
        def __init__(self, armed_at: float) -> None:
            self._armed_at = armed_at
            self.expired = False

        def _head_expired(self) -> None:
            self.expired = True

    loop = asyncio.get_running_loop()
    now = loop.time()
    late, fresh, disarmed = Connection(now - 2.0), Connection(now + 0.5), Connection(float("inf"))
    upgraded = object()  # a WebSocket protocol: no head deadline
    sweep = HeadSweep(1.0, {late, fresh, disarmed, upgraded})
    sweep._sweep(loop)
    try:
        assert late.expired and not fresh.expired and not disarmed.expired
        assert sweep._timer is not None  # it repeats
    finally:
        sweep.stop()
