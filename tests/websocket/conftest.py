"""A real hub with a real SocketService on a free port, and a real WebSocket client."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from bollydog.entrypoint.websocket.app import SocketService
from bollydog.models.service import AppService
from bollydog.service.app import HubService

HANDLERS = "tests.websocket.handlers"
TIMEOUT = 5.0


async def start(**options: Any) -> tuple[HubService, SocketService]:
    hub = HubService(apps=[AppService.create_from(domain="wsdemo", handlers=[HANDLERS])])
    service = SocketService(port=0, **options)
    hub.add_entrypoint(service)
    await hub.start()
    return hub, service


@pytest.fixture
async def service() -> AsyncIterator[SocketService]:
    hub, service = await start()
    try:
        yield service
    finally:
        await hub.stop()


@pytest.fixture
async def ws(service: SocketService) -> AsyncIterator[ClientConnection]:
    async with connect(service.url) as client:
        yield client


async def recv(client: ClientConnection, timeout: float = TIMEOUT) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(client.recv(), timeout))


async def send(client: ClientConnection, frame: Any) -> None:
    await client.send(frame if isinstance(frame, str) else json.dumps(frame))


async def call(client: ClientConnection, frame: dict[str, Any]) -> list[dict[str, Any]]:
    """Send one request and collect its frames up to the result or error."""
    await send(client, frame)
    frames = []
    while True:
        reply = await recv(client)
        frames.append(reply)
        if reply["type"] in ("result", "error"):
            return frames
