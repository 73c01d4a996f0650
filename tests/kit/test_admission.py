"""One admission (``bollydog.entrypoint.kit.admission``): every entrypoint's messages go
through the hub's bounds (queue size, concurrency limit, shutdown), and beyond them every
entrypoint refuses at once, in its own words: HTTP 503 with Retry-After, a WebSocket error
frame, an MCP ``-32030`` protocol error, each saying when to retry."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError
from websockets.asyncio.client import connect

from bollydog.entrypoint.mcp.server import UNAVAILABLE
from bollydog.errors import HubNotRunningError
from bollydog.models.service import AppService
from bollydog.service.app import HubService
from tests.kit.conftest import HANDLERS, serving, until
from tests.kit.kit_handlers import Gate, WhichTask, gates
from tests.mcp.conftest import http_client

#: Two run at once, two wait in the queue (and one more held by the hub's intake).
BOUNDS = {"concurrency": 2, "queue_max_size": 2}
#: Requests sent once two are running: at most three more fit.
MORE = 8


@pytest.fixture(autouse=True)
def fresh_gates() -> None:
    gates.reset()


async def test_submit_runs_in_the_callers_task_with_capacity_else_queues_within_the_bounds() -> None:
    # What an entrypoint's request costs on the hot path: no task of its own when the hub has
    # room; the same bounds as put_message when it has not.
    app = AppService.create_from(domain="kitdemo", handlers=[HANDLERS])
    hub = HubService(apps=[app], concurrency=1, queue_max_size=2)
    with pytest.raises(HubNotRunningError):
        await hub.submit(WhichTask())
    async with hub:
        assert await hub.submit(WhichTask()) == id(asyncio.current_task())
        running = asyncio.create_task(hub.submit(Gate()))
        await until(lambda: gates.running == 1)
        waiting = asyncio.create_task(hub.submit(WhichTask()))
        queued = asyncio.create_task(hub.submit(Gate()))
        await asyncio.wait([waiting, queued], timeout=0.2)
        assert not waiting.done() and not queued.done() and gates.most == 1  # queued, not run
        gates.opened.set()
        assert await running == "through" and await queued == "through"
        assert await waiting != id(waiting)  # it ran in a task of the hub's
        assert gates.most == 1


async def test_http_requests_beyond_the_bounds_get_503_instead_of_running() -> None:
    async with serving(BOUNDS) as served:
        async with httpx.AsyncClient(base_url=served.http.url, timeout=10) as client:
            path = served.path("gate")
            first = [asyncio.create_task(client.get(path)) for _ in range(2)]
            await until(lambda: gates.running == 2)
            more = [asyncio.create_task(client.get(path)) for _ in range(MORE)]
            await until(lambda: sum(t.done() for t in more) >= MORE - 3)  # the refused answer at once
            assert gates.running == 2
            gates.opened.set()
            answers = await asyncio.gather(*first, *more)
    refused = [r for r in answers if r.status_code == 503]
    assert MORE - 3 <= len(refused) <= MORE - 2
    for r in refused:
        assert r.json()["error"] == "QueueFullError" and r.headers["retry-after"] == "1"
    assert all(r.status_code == 200 and r.json() == "through" for r in answers if r not in refused)
    assert gates.most == 2


async def test_websocket_requests_beyond_the_bounds_get_an_error_frame() -> None:
    async with serving(BOUNDS) as served:
        async with connect(served.ws.url) as ws:
            for n in range(2):
                await ws.send(json.dumps({"name": "kitdemo.gate", "id": n}))
            await until(lambda: gates.running == 2)
            for n in range(2, 2 + MORE):
                await ws.send(json.dumps({"name": "kitdemo.gate", "id": n}))
            frames: dict[Any, list[dict[str, Any]]] = {}

            async def receive(count: int) -> None:
                for _ in range(count):
                    frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    frames.setdefault(frame["id"], []).append(frame)

            await receive(2 + MORE)  # an accepted frame each, or an error frame
            assert gates.running == 2
            gates.opened.set()
            admitted = [i for i, got in frames.items() if got[0]["type"] == "accepted"]
            await receive(len(admitted))
    refused = [got for got in frames.values() if got[0]["type"] == "error"]
    assert MORE - 3 <= len(refused) <= MORE - 2
    for (frame,) in refused:
        assert (frame["error"], frame["status"], frame["retry_after"]) == ("QueueFullError", 503, 1)
    assert all(frames[i][1] == {"type": "result", "id": i, "data": "through"} for i in admitted)
    assert gates.most == 2


async def test_mcp_calls_beyond_the_bounds_get_a_protocol_error() -> None:
    async with serving(BOUNDS) as served:
        async with http_client(served.mcp.url, "legacy") as client:
            await client.list_tools()

            async def call() -> Any:
                try:
                    return (await client.call_tool("kitdemo_gate", {})).structured_content
                except MCPError as exc:
                    return exc.error

            first = [asyncio.create_task(call()) for _ in range(2)]
            await until(lambda: gates.running == 2)
            more = [asyncio.create_task(call()) for _ in range(MORE)]
            await until(lambda: sum(t.done() for t in more) >= MORE - 3)
            assert gates.running == 2
            gates.opened.set()
            answers = await asyncio.gather(*first, *more)
    refused = [a for a in answers if not isinstance(a, dict)]
    assert MORE - 3 <= len(refused) <= MORE - 2
    for error in refused:
        assert error.code == UNAVAILABLE and error.data == {"error": "QueueFullError", "retryAfter": 1}
    assert all(a == {"result": "through"} for a in answers if isinstance(a, dict))
    assert gates.most == 2


async def test_an_mcp_call_still_running_past_the_grace_is_answered_with_a_protocol_error() -> None:
    async with serving({"shutdown_grace": 1.0}, mcp={"shutdown_grace": 0.2}) as served:
        async with http_client(served.mcp.url, "legacy") as client:
            await client.list_tools()
            call = asyncio.create_task(client.call_tool("kitdemo_pause", {"seconds": 30}))
            await until(lambda: len(served.mcp.tools.calls) == 1)
            began = time.monotonic()
            stopping = asyncio.create_task(served.hub.stop())
            with pytest.raises(MCPError) as caught:
                await call
            assert time.monotonic() - began < 1.0  # the service's grace, not the hub's
            assert caught.value.error.code == UNAVAILABLE
            assert caught.value.error.data == {"error": "HubNotRunningError", "retryAfter": 1}
            await stopping
