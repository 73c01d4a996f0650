"""Where the transport sits in the hub's lifecycle: a mode service the hub owns, started after
the apps and before the entrypoints, stopped once the hub drained and before the apps."""

from __future__ import annotations

import asyncio
from typing import Any

from bollydog.hub.transport import InProcessTransport, Transport
from bollydog.models.base import Command
from bollydog.models.service import AppService
from bollydog.service.app import HubService
from bollydog.types import Entrypoint

EVENTS: list[str] = []


class Ping(Command):
    domain = "elsewhere"


class RecordingTransport(Transport):
    async def on_start(self) -> None:
        EVENTS.append(f"transport start (hub accepting: {self.hub.accepting})")

    async def on_stop(self) -> None:
        EVENTS.append(f"transport stop (hub accepting: {self.hub.accepting})")

    async def request(self, message: Any) -> Any:
        await asyncio.sleep(0.05)  # a remote reply, arriving while the hub drains
        EVENTS.append("reply")
        return "pong"


class RecordingApp(AppService):
    async def on_start(self) -> None:
        await super().on_start()
        EVENTS.append(f"app {self.domain} start")

    async def on_stop(self) -> None:
        EVENTS.append(f"app {self.domain} stop")
        await super().on_stop()


class RecordingEntrypoint(Entrypoint):
    async def on_start(self) -> None:
        EVENTS.append("entrypoint start")

    async def on_stop(self) -> None:
        EVENTS.append("entrypoint stop")


async def test_the_transport_starts_between_apps_and_entrypoints_and_stops_after_the_drain():
    EVENTS.clear()
    transport = RecordingTransport()
    transport.add_remote("elsewhere", [Ping])
    hub = HubService([RecordingApp(domain="shop")], transport=transport, builtins=False)
    hub.add_entrypoint(RecordingEntrypoint())
    hub.add_app(RecordingApp(domain="late"))  # added after the entrypoint: still started before the transport
    async with hub:
        assert transport.hub is hub
        call = asyncio.ensure_future(hub.execute(Ping()))
        await asyncio.sleep(0)  # the call is in flight when the hub stops
    assert await call == "pong"
    assert EVENTS == [
        "app shop start", "app late start", "transport start (hub accepting: True)", "entrypoint start",
        "entrypoint stop", "reply", "transport stop (hub accepting: False)", "app late stop", "app shop stop",
    ]


async def test_the_in_process_transport_is_a_dependency_that_routes_nothing():
    hub = HubService()
    assert isinstance(hub.transport, InProcessTransport)
    for _ in range(2):  # a hub can be started again, and its transport with it
        async with hub:
            assert hub.transport.started and hub.transport.hub is hub
            assert not hub.transport.serves(Ping)
