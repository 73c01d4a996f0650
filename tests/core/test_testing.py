"""``bollydog.testing``: what RecordingHub records, and when."""

from __future__ import annotations

import asyncio

from bollydog.adapters.memory import MemoryProtocol
from bollydog.models.base import BaseDomain, Command, Event
from bollydog.service.app import HubService
from bollydog.testing import FakeProtocol, running_hub


class Ship(Command):
    order: str


class Shipped(Event):
    order: str


class Parcel(BaseDomain):
    order: str


class Shipping(Command):
    order: str


def make_handlers(handled: list[str]):
    async def ship(command: Ship, hub: HubService) -> str:
        hub.publish_nowait(Shipped(order=command.order))
        await hub.put_message(Shipped(order=f"{command.order}-queued"))
        return command.order

    async def ship_in_steps(command: Shipping, protocol: MemoryProtocol):
        parcel = Parcel(order=command.order)
        parcel.raise_event(Shipped(order=f"{command.order}-committed"))  # after the commit
        await protocol.add(parcel)
        yield Shipped(order=f"{command.order}-yielded")
        yield "done"

    async def on_shipped(event: Shipped) -> None:
        await asyncio.sleep(0.01)  # still running when execute returns
        handled.append(event.order)

    return [ship, ship_in_steps, on_shipped]


async def test_events_published_by_the_handler_are_recorded_when_execute_returns() -> None:
    handled: list[str] = []
    async with running_hub(handlers=make_handlers(handled)) as hub:
        assert await hub.execute(Ship(order="a")) == "a"
        assert [e.order for e in hub.published(Shipped)] == ["a", "a-queued"]
        assert handled == []  # their handlers run in the background ...
        assert await hub.drain(5)
        assert sorted(handled) == ["a", "a-queued"]  # ... and drain waits for them
        # Recorded once each, although the hub dispatched them later.
        assert [type(m).__name__ for m in hub.dispatched] == ["Ship", "Shipped", "Shipped"]


async def test_yielded_and_domain_events_are_recorded_too() -> None:
    handled: list[str] = []
    async with running_hub(handlers=make_handlers(handled)) as hub:
        assert await hub.execute(Shipping(order="b")) == "done"
        assert sorted(e.order for e in hub.published(Shipped)) == ["b-committed", "b-yielded"]
        assert await hub.drain(5)
    assert sorted(handled) == ["b-committed", "b-yielded"]


async def test_protocol_option_is_the_apps_protocol() -> None:
    protocol = FakeProtocol()
    async with running_hub(handlers=make_handlers([]), protocol=protocol) as hub:
        await hub.execute(Shipping(order="c"))
    assert [p.order for p in await protocol.list(Parcel)] == ["c"]  # committed by the handler
    assert protocol.unit_of_work.commits >= 1
