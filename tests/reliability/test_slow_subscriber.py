"""A WebSocket subscriber that stops reading is dropped within ``send_timeout``; its
subscriptions are freed and nobody else waits for it."""

from __future__ import annotations

import asyncio
import base64
import json
import os

import httpx
from websockets.asyncio.client import connect

from tests.reliability.conftest import serving, until
from tests.websocket.handlers import Echo

SEND_TIMEOUT = 1.0


async def subscribe(client, topics: list[str]) -> None:  # type: ignore[no-untyped-def]
    await client.send(json.dumps({"type": "subscribe", "id": "s", "topics": topics}))
    assert json.loads(await asyncio.wait_for(client.recv(), 5))["type"] == "subscribed"


async def test_a_subscriber_that_stops_reading_is_dropped_and_others_keep_working() -> None:
    async with serving(ws={"send_timeout": SEND_TIMEOUT, "notify_queue_size": 10_000}) as served:
        ws = served.ws
        # max_queue=1: the client library stops reading from the socket once one frame waits
        # for recv(), which this client never calls again: the TCP buffers fill up.
        async with connect(ws.url, max_queue=1) as stalled, connect(ws.url, max_size=None) as reader:
            await subscribe(stalled, ["wsdemo.echo"])
            await subscribe(reader, ["wsdemo.echo"])
            assert len(ws.subscribers("wsdemo.echo")) == 2
            events = 300
            received: list[int] = []

            async def read_all() -> None:
                while len(received) < events:
                    frame = json.loads(await reader.recv())
                    if frame.get("type") == "message":
                        received.append(len(frame["result"]["echo"]))

            reading = asyncio.create_task(read_all())
            loop = asyncio.get_running_loop()
            began = loop.time()
            for _ in range(events):  # 100 KB notifications: megabytes the stalled client never takes
                # random text: permessage-deflate does not shrink it
                await ws.hub.execute(Echo(text=base64.b64encode(os.urandom(75_000)).decode()))
            await until(lambda: len(ws.connections) == 1, timeout=SEND_TIMEOUT + 5)
            dropped_after = loop.time() - began
            assert dropped_after < SEND_TIMEOUT + 4
            assert len(ws.subscribers("wsdemo.echo")) == 1  # its subscription is gone
            await asyncio.wait_for(reading, 10)
            assert received == [100_000] * events  # the reading subscriber missed nothing
            await reader.send(json.dumps({"type": "request", "id": 1, "name": "echo", "text": "still"}))
            frames = [json.loads(await asyncio.wait_for(reader.recv(), 5)) for _ in range(3)]
            assert {"type": "result", "id": 1, "data": {"echo": "still"}} in frames
            async with httpx.AsyncClient(base_url=served.http.url) as client:
                reply = await client.post(served.path("echo"), json={"text": "hi"})
                assert reply.status_code == 200
