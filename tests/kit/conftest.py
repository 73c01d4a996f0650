"""A hub serving domain ``kitdemo`` over HTTP, WebSocket and MCP at once, on free ports.

The kit's tests ask the three entrypoints the same question and compare the answers: what
the kit shares, they must answer alike.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

pytest.importorskip("mcp")

from bollydog.entrypoint.http.app import HttpService  # noqa: E402
from bollydog.entrypoint.mcp.app import McpService  # noqa: E402
from bollydog.entrypoint.websocket.app import SocketService  # noqa: E402
from bollydog.models.service import AppService  # noqa: E402
from bollydog.service.app import HubService  # noqa: E402

HANDLERS = "tests.kit.kit_handlers"


@dataclass(slots=True)
class Served:
    hub: HubService
    http: HttpService
    ws: SocketService
    mcp: McpService

    def path(self, name: str) -> str:
        """The HTTP path of ``kitdemo.<name>``."""
        return next(spec.path for spec in self.http.routes if spec.key == f"kitdemo.{name}")


@contextlib.asynccontextmanager
async def serving(
    hub_options: dict[str, Any] | None = None,
    *,
    http: dict[str, Any] | None = None,
    ws: dict[str, Any] | None = None,
    mcp: dict[str, Any] | None = None,
) -> AsyncIterator[Served]:
    """A started hub with HttpService, SocketService and McpService (HTTP), ports picked free."""
    hub = HubService(apps=[AppService.create_from(domain="kitdemo", handlers=[HANDLERS])], **(hub_options or {}))
    served = Served(
        hub,
        hub.add_entrypoint(HttpService(port=0, **(http or {}))),
        hub.add_entrypoint(SocketService(port=0, **(ws or {}))),
        hub.add_entrypoint(McpService(port=0, **(mcp or {}))),
    )
    async with hub:
        yield served


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``condition()`` until it holds (what it watches gives no event to wait for)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.01)
