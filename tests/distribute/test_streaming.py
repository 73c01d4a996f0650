"""Partial results of a generator handler in another process reach the caller, in order.

The worker hosts ``calc`` (``calc.count`` yields ``{"i": 0}`` ... then ``{"done": n}``); the
front runs no calc handler: the entries on the reply stream, SSE and WebSocket partial frames
work as they do in one process. ``msg.stream()`` across processes is part of the transport
contract (tests/transport/contract.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from bollydog.errors import INTERNAL_MESSAGE
from tests.distribute import calc_handlers as calc
from tests.distribute.conftest import config, process

PARTIALS = [{"i": 0}, {"i": 1}, {"i": 2}, {"done": 3}]


@asynccontextmanager
async def front(redis_url: str, prefix: str, **entrypoint: Any) -> AsyncIterator[Any]:
    """A started front process (calc runs elsewhere) with one entrypoint; yields the entrypoint."""
    from bollydog.bootstrap import build

    sections = config(redis_url, prefix, ["calc"])
    sections["entrypoint"] = {"port": 0, **entrypoint}
    composition = build(sections, exclude=["calc"])
    async with composition.hub:
        (service,) = composition.entrypoints
        yield service


async def test_partials_precede_the_reply_on_the_wire_and_only_when_asked(redis_url, prefix, raw):
    async with process(redis_url, prefix, ["calc"]), process(redis_url, prefix, []) as caller:
        reply_key = caller.transport.reply_key
        assert await caller.execute(calc.Count(n=3)) == {"done": 3}  # nobody listens: no partials
        (plain,) = [fields for _, fields in await raw.xrange(reply_key)]
        assert "kind" not in plain and plain["ok"] == "1"

        message = calc.Count(n=3)
        run = asyncio.ensure_future(caller.execute(message))
        assert [p async for p in message.stream()] == PARTIALS
        await run
        entries = [fields for _, fields in await raw.xrange(reply_key)][1:]
    assert [e.get("kind") for e in entries] == ["partial"] * 4 + [None]
    assert [int(e["seq"]) for e in entries[:4]] == [0, 1, 2, 3]
    assert [json.loads(e["data"]) for e in entries[:4]] == PARTIALS
    assert {e["id"] for e in entries} == {message.iid}
    assert len({e["entry"] for e in entries}) == 1  # all about the same request entry


def parse_sse(text: str) -> list[tuple[str, Any]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


async def test_sse_through_an_http_front(redis_url, prefix):
    http = {"app": "bollydog.entrypoint.http.app.HttpService"}
    async with process(redis_url, prefix, ["calc"]), front(redis_url, prefix, **http) as service:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{service.port}", timeout=5) as client:
            sse = {"accept": "text/event-stream"}
            async with client.stream("GET", "/calc/appservice/count", params={"n": 3}, headers=sse) as response:
                assert response.status_code == 200
                text = "".join([chunk async for chunk in response.aiter_text()])
            assert parse_sse(text) == [*(("partial", p) for p in PARTIALS), ("result", {"done": 3})]
            failed = await client.get("/calc/appservice/count", params={"n": 1, "fail": "true"}, headers=sse)
            events = parse_sse(failed.text)
            assert events[0] == ("partial", {"i": 0})
            assert events[-1][0] == "error" and events[-1][1]["message"] == INTERNAL_MESSAGE


async def test_websocket_partial_frames_through_a_front(redis_url, prefix):
    from websockets.asyncio.client import connect

    ws = {"app": "bollydog.entrypoint.websocket.app.SocketService"}
    async with process(redis_url, prefix, ["calc"]), front(redis_url, prefix, **ws) as service:
        async with connect(service.url) as client:
            await client.send(json.dumps({"name": "calc.count", "id": 7, "n": 3}))
            frames = []
            while not frames or frames[-1]["type"] not in ("result", "error"):
                frames.append(json.loads(await asyncio.wait_for(client.recv(), 5)))
    assert [f["type"] for f in frames] == ["accepted", "partial", "partial", "partial", "partial", "result"]
    assert [f["data"] for f in frames[1:]] == [*PARTIALS, {"done": 3}]
    assert all(f["id"] == 7 for f in frames)
