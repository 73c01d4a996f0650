"""Fixtures of the MCP tests: a real hub, an McpService, and the SDK's own client.

The in-memory client (``Client(service.tools.server)``) talks to the very server object the
transports serve; ``mode`` picks the protocol era: ``legacy`` (the initialize handshake, what
today's hosts speak) or ``auto`` (the 2026 per-request protocol when both sides have it).
"""

from __future__ import annotations

import contextlib
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

import httpx2  # noqa: E402
from mcp import Client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

from bollydog.entrypoint.mcp.app import McpService  # noqa: E402
from bollydog.models.service import AppService  # noqa: E402
from bollydog.service.app import HubService  # noqa: E402
from tests.http.conftest import Keys  # noqa: E402  (RSA keys and tokens, as the HTTP tests make them)

ROOT = Path(__file__).resolve().parents[2]
APPS = ROOT / "tests" / "apps"
LIBRARY_CONFIG = APPS / "library.yaml"
HANDLERS = "tests.mcp.tool_handlers"
MODES = ["legacy", "auto"]

if str(APPS) not in sys.path:  # libraryapp, whose config key (library) is not its package
    sys.path.insert(0, str(APPS))


def demo_app() -> AppService:
    return AppService.create_from(domain="tooldemo", handlers=[HANDLERS])


@contextlib.asynccontextmanager
async def started(
    *entrypoints: Any, hub_options: dict[str, Any] | None = None, **options: Any
) -> AsyncIterator[tuple[HubService, McpService]]:
    """A started hub serving domain ``tooldemo``, with an McpService on a free port."""
    hub = HubService(apps=[demo_app()], **(hub_options or {}))
    for entrypoint in entrypoints:
        hub.add_entrypoint(entrypoint)
    service = McpService(port=0, **options)
    hub.add_entrypoint(service)
    async with hub:
        yield hub, service


@pytest.fixture
async def service() -> AsyncIterator[McpService]:
    async with started() as (_, service):
        yield service


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """Each test taking it runs in both protocol eras.

    Clients are opened inside the test, never by a fixture: pytest-asyncio tears fixtures down
    in another task, and the SDK's (anyio) task groups must close in the task that opened them.
    """
    return str(request.param)


def connect(service: McpService, mode: str = "legacy") -> Client:
    """The SDK's in-memory client of ``service``'s server (use it with ``async with``)."""
    return Client(service.tools.server, mode=mode)


@contextlib.asynccontextmanager
async def http_client(url: str, mode: str = "auto", token: str | None = None) -> AsyncIterator[Client]:
    """A connected SDK client over streamable HTTP, with a bearer token when given."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            yield client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys()


@pytest.fixture(scope="session")
def other_keys() -> Keys:
    return Keys()
