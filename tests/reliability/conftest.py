"""A hub serving domain ``wsdemo`` over HTTP and WebSocket on free ports, and raw clients that
misbehave on purpose (they speak TCP, not a client library, so nothing is tidied for them)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from bollydog.entrypoint.http.app import HttpService
from bollydog.entrypoint.websocket.app import SocketService
from bollydog.models.service import AppService
from bollydog.service.app import HubService

HANDLERS = "tests.websocket.handlers"


@dataclass(slots=True)
class Served:
    hub: HubService
    http: HttpService
    ws: SocketService

    def path(self, name: str) -> str:
        """The HTTP path of ``wsdemo.<name>``."""
        return next(spec.path for spec in self.http.routes if spec.key == f"wsdemo.{name}")


@contextlib.asynccontextmanager
async def serving(*, http: dict[str, Any] | None = None, ws: dict[str, Any] | None = None) -> AsyncIterator[Served]:
    hub = HubService(apps=[AppService.create_from(domain="wsdemo", handlers=[HANDLERS])])
    served = Served(
        hub,
        hub.add_entrypoint(HttpService(port=0, **(http or {}))),
        hub.add_entrypoint(SocketService(port=0, **(ws or {}))),
    )
    async with hub:
        yield served


async def answer(port: int, head: bytes, *, timeout: float = 5.0) -> bytes:
    """Send ``head`` at once on a new connection and read until the server closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


async def trickle(port: int, start: bytes, *, every: float = 0.1, timeout: float = 10.0) -> tuple[bytes, float]:
    """A slowloris client: ``start``, then one header byte every ``every`` seconds, never ending
    the head. Returns what the server answered and how long the connection lasted."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def drip() -> None:
        writer.write(start)
        while True:
            await asyncio.sleep(every)
            writer.write(b"x")
            await writer.drain()

    dripping = asyncio.create_task(drip())
    try:
        data = await asyncio.wait_for(reader.read(), timeout)
        return data, loop.time() - began
    finally:
        dripping.cancel()
        await asyncio.gather(dripping, return_exceptions=True)
        writer.close()


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition()`` until it holds (what it watches gives no event to wait for)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.02)
