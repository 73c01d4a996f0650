"""Subscriptions on the front of a split deployment see the work done in the other processes.

The front serves the WebSocket and runs no handler of ``wsdemo``; a worker hosts ``wsdemo``
(``bollydog service --include wsdemo``), over Redis, and over the in-memory broker standing for
it. A subscriber of the front sees what it would see in one process: the command the worker
ran and the event the worker published, each once.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect

from bollydog.bootstrap import build
from bollydog.entrypoint.websocket.app import SocketService
from bollydog.service.app import HubService
from bollydog.testing import MemoryBroker
from tests.transport.contract import eventually
from tests.websocket.conftest import HANDLERS, call, recv, send


@pytest.fixture(params=["memory", "redis"])
async def distribute(request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    if request.param == "memory":
        yield {"app": "bollydog.testing.MemoryTransport", "broker": MemoryBroker(), "notice_interval": 0.05}
        return
    import redis.asyncio as aioredis

    from tests.distribute.conftest import redis_url_or_skip

    url = redis_url_or_skip()
    prefix = f"bdtest:{secrets.token_hex(4)}"
    yield {"app": "bollydog.transport.redis.RedisTransport", "url": url, "prefix": prefix,
           "block_ms": 200, "notice_interval": 0.05}
    raw = aioredis.Redis.from_url(url, decode_responses=True)
    keys = [k async for k in raw.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await raw.delete(*keys)
    await raw.aclose()


def _hub(distribute: dict[str, Any], front: bool) -> HubService:
    config: dict[str, Any] = {"wsdemo": {"handlers": [HANDLERS]}, "distribute": distribute}
    if front:
        config["websocket"] = {"app": "bollydog.entrypoint.websocket.app.SocketService", "port": 0}
        return build(config, exclude=["wsdemo"]).hub
    return build(config, include=["wsdemo"], entrypoints=False).hub


async def _true(value: bool) -> bool:
    return value


async def _absent(client: Any, seconds: float = 0.3) -> bool:
    try:
        await asyncio.wait_for(client.recv(), seconds)
    except TimeoutError:
        return True
    return False


async def test_a_front_subscriber_sees_the_workers_messages_once(distribute: dict[str, Any]) -> None:
    async with _hub(distribute, front=False) as worker, _hub(distribute, front=True) as front:
        (service,) = [e for e in front.entrypoints if isinstance(e, SocketService)]
        feed, worker_feed = front.transport.notices, worker.transport.notices
        async with connect(service.url) as watcher, connect(service.url) as caller:
            await call(caller, {"name": "ring", "value": 1})
            assert not feed.listening and worker_feed.published == 0  # no subscriber: nothing sent

            await send(watcher, {"type": "subscribe", "id": "s", "topics": ["wsdemo.*"]})
            assert (await recv(watcher))["type"] == "subscribed"
            assert await eventually(lambda: _true(feed.listening and worker_feed.wanted))
            (result,) = [f for f in await call(caller, {"name": "ring", "value": 7}) if f["type"] == "result"]
            assert result["data"] == "rung"
            notes = {}
            for _ in range(2):
                note = await recv(watcher)
                notes[note["topic"]] = note
            assert set(notes) == {"wsdemo.ring", "wsdemo.pinged"}
            assert notes["wsdemo.pinged"]["data"]["value"] == 7 and notes["wsdemo.ring"]["result"] == "rung"
            assert await _absent(watcher)  # the front and the worker both report ring: sent once

            await send(watcher, {"type": "unsubscribe", "id": "u"})
            assert (await recv(watcher))["type"] == "unsubscribed"
            assert await eventually(lambda: _true(not feed.listening and not worker_feed.wanted))
