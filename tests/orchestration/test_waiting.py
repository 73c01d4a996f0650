"""WaitFor: waiting inside handlers for Events other handlers produce."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bollydog.errors import WaitTimeoutError, describe
from bollydog.hub.waiting import WaitFor, wait_for
from bollydog.models.base import Command, Event
from bollydog.service.app import HubService
from bollydog.testing import as_user, running_hub
from bollydog.types import HubT


class Shipped(Event):
    order_id: str
    parcel: int = 0


class Ship(Command):
    order_id: str
    parcels: int = 1


class AwaitShipping(Command):
    order_id: str
    count: int | None = None
    timeout: float = 2.0
    trace: bool = False
    session: bool = False


class ShipThenWait(Command):
    """Dispatches the event synchronously *before* it starts waiting."""

    order_id: str
    twice: bool = False


async def ship(command: Ship, hub: HubT) -> None:
    for parcel in range(command.parcels):
        hub.publish_nowait(Shipped(order_id=command.order_id, parcel=parcel))


async def await_shipping(command: AwaitShipping) -> Any:
    waited = yield WaitFor(
        Shipped, match=lambda e: e.order_id == command.order_id, count=command.count,
        trace=command.trace, session=command.session, timeout=command.timeout,
    )
    yield {"waited": waited}  # an Event yielded bare would be published, not returned


async def ship_then_wait(command: ShipThenWait, hub: HubT) -> Any:
    await hub.execute(Shipped(order_id=command.order_id))  # dispatched and done before the wait
    first = yield WaitFor(Shipped, match={"order_id": command.order_id}, timeout=0.5)
    if not command.twice:
        yield first.iid
        return
    try:
        second = yield WaitFor(Shipped, match={"order_id": command.order_id}, timeout=0.3)
    except WaitTimeoutError:
        second = None
    yield [first.iid, second]


class Round(Command):
    pass


async def round_trip(command: Round, hub: HubT) -> Any:
    wait = WaitFor(Shipped, trace=True, timeout=1)  # created first: its window opens now
    await hub.execute(Shipped(order_id="mine"))  # dispatched from here: this trace
    return (await wait).order_id


class ShipInSession(Command):
    order_id: str


async def ship_in_session(command: ShipInSession, hub: HubT) -> Any:
    wait = WaitFor(Shipped, session=True, timeout=1)
    await hub.execute(Ship(order_id=command.order_id))  # its event is published in this session
    return (await wait).order_id


HANDLERS = (ship, await_shipping, ship_then_wait)


async def test_a_generator_waits_for_an_event_another_handler_publishes_later() -> None:
    async with running_hub(handlers=HANDLERS) as hub:
        waiting = await hub.put_message(AwaitShipping(order_id="o-1"))
        await asyncio.sleep(0.05)
        assert hub.waiting.waiting == 1  # registered, nothing matched yet
        await hub.execute(Shipped(order_id="o-2"))  # another order: not this wait's
        await hub.execute(Ship(order_id="o-1"))
        event = (await asyncio.wait_for(waiting.state, 2))["waited"]
        assert isinstance(event, Shipped) and event.order_id == "o-1"
        assert hub.waiting.waiting == 0


async def test_count_collects_several_events_in_arrival_order() -> None:
    async with running_hub(handlers=HANDLERS) as hub:
        waiting = await hub.put_message(AwaitShipping(order_id="o-1", count=3))
        await asyncio.sleep(0.02)
        await hub.execute(Ship(order_id="o-1", parcels=2))
        await hub.drain(1)
        assert not waiting.state.done()  # two of three
        await hub.execute(Ship(order_id="o-1", parcels=2))
        events = (await asyncio.wait_for(waiting.state, 2))["waited"]
        assert [e.parcel for e in events] == [0, 1, 0]


async def test_until_collects_until_the_condition_holds() -> None:
    async with running_hub() as hub:
        total = wait_for(Shipped, until=lambda got: sum(e.parcel for e in got) >= 5, timeout=2)
        task = asyncio.ensure_future(total)
        await asyncio.sleep(0.01)
        for parcel in (1, 3, 2, 9):
            await hub.execute(Shipped(order_id="x", parcel=parcel))
        events = await task
        assert [e.parcel for e in events] == [1, 3, 2]


async def test_timeout_raises_wait_timeout_error_with_what_came() -> None:
    async with running_hub(handlers=HANDLERS) as hub:
        waiting = await hub.put_message(AwaitShipping(order_id="o-9", count=2, timeout=0.2))
        await asyncio.sleep(0.02)
        await hub.execute(Ship(order_id="o-9"))
        with pytest.raises(WaitTimeoutError) as timed_out:
            await waiting.state
        error = timed_out.value
        assert error.got == 1 and [e.order_id for e in error.received] == ["o-9"]
        info = describe(error)
        assert info.status == 504 and info.code == "WaitTimeoutError"
        assert info.fields == {"waiting_for": "Shipped", "timeout": 0.2, "got": 1}
        assert "got 1 of 2" in str(error)
        assert hub.waiting.waiting == 0


async def test_an_event_dispatched_just_before_the_wait_is_not_missed() -> None:
    async with running_hub(handlers=HANDLERS) as hub:
        assert isinstance(await hub.execute(ShipThenWait(order_id="o-3")), str)


async def test_without_the_buffer_the_same_event_is_missed() -> None:
    # The window is the buffer: with retention 0 a wait sees only what comes after it.
    async with running_hub(handlers=HANDLERS) as hub:
        hub.waiting.retention = 0
        with pytest.raises(WaitTimeoutError):
            await hub.execute(ShipThenWait(order_id="o-3"))


async def test_a_second_wait_of_the_same_run_does_not_get_the_first_ones_event_again() -> None:
    async with running_hub(handlers=HANDLERS) as hub:
        first, second = await hub.execute(ShipThenWait(order_id="o-4", twice=True))
        assert isinstance(first, str) and second is None


async def test_the_buffer_does_not_reach_back_before_the_handlers_message() -> None:
    async with running_hub(handlers=HANDLERS) as hub:
        await hub.execute(Shipped(order_id="o-5"))  # before the waiting message exists
        await asyncio.sleep(0.01)
        with pytest.raises(WaitTimeoutError):
            await hub.execute(AwaitShipping(order_id="o-5", timeout=0.2))


async def test_the_buffer_keeps_events_for_its_retention_only() -> None:
    async with running_hub() as hub:
        hub.waiting.retention = 0.1
        await hub.execute(Shipped(order_id="old"))
        await asyncio.sleep(0.15)
        with pytest.raises(WaitTimeoutError):
            await wait_for(Shipped, match={"order_id": "old"}, timeout=0.1)
        await hub.execute(Shipped(order_id="recent"))
        assert (await wait_for(Shipped, match={"order_id": "recent"}, timeout=0.1)).order_id == "recent"


async def test_trace_correlation_ignores_the_same_event_from_another_trace() -> None:
    async with running_hub(handlers=(*HANDLERS, round_trip)) as hub:
        other = asyncio.ensure_future(hub.execute(AwaitShipping(order_id="o-6", trace=True, timeout=0.3)))
        await asyncio.sleep(0.02)
        await hub.execute(Shipped(order_id="o-6"))  # a top-level event: a trace of its own
        with pytest.raises(WaitTimeoutError):
            await other
        assert await hub.execute(Round()) == "mine"


async def test_session_correlation() -> None:
    async with running_hub(handlers=(*HANDLERS, ship_in_session)) as hub:
        with as_user("ann"):
            waiting = await hub.put_message(AwaitShipping(order_id="o-7", session=True, timeout=0.3))
        await asyncio.sleep(0.02)
        with as_user("ann"):
            await hub.execute(Shipped(order_id="o-7"))  # ann again, but another session
        await asyncio.sleep(0.02)
        assert not waiting.state.done()
        with as_user("ann"):
            # The same session: what the waiting handler dispatches, here or in another process.
            assert await hub.execute(ShipInSession(order_id="o-8")) == "o-8"
        with pytest.raises(WaitTimeoutError):
            await waiting.state  # o-7 never came in ann's first session


async def test_a_wait_created_and_never_awaited_is_dropped_at_its_timeout() -> None:
    async with running_hub() as hub:
        WaitFor(Shipped, timeout=0.05)
        assert hub.waiting.waiting == 1
        await asyncio.sleep(0.1)
        assert hub.waiting.waiting == 0


async def test_a_predicate_that_raises_fails_the_wait_not_the_dispatch() -> None:
    async with running_hub() as hub:
        task = asyncio.ensure_future(wait_for(Shipped, match=lambda e: 1 / 0, timeout=1))
        await asyncio.sleep(0.01)
        assert await hub.execute(Shipped(order_id="x")) == []
        with pytest.raises(ZeroDivisionError):
            await task


async def test_bad_arguments_are_precise_errors() -> None:
    with pytest.raises(TypeError, match="waits for Events"):
        WaitFor(Ship)  # type: ignore[type-var]
    with pytest.raises(ValueError, match="names no field of Shipped: order.*fields: order_id, parcel"):
        WaitFor(Shipped, match={"order": "o-1"})
    with pytest.raises(ValueError, match="count= or until="):
        WaitFor(Shipped, count=2, until=lambda got: True)
    with pytest.raises(ValueError, match="positive number"):
        WaitFor(Shipped, timeout=0)
    with pytest.raises(ValueError, match="needs a current message"):
        WaitFor(Shipped, trace=True)
    with pytest.raises(Exception, match="needs a running hub"):
        await WaitFor(Shipped, timeout=1)


async def test_a_hub_with_no_wait_only_buffers_events() -> None:
    async with HubService() as hub:
        for i in range(300):
            await hub.execute(Shipped(order_id=str(i)))
        recent = hub.waiting._recent[Shipped]
        assert len(recent) == 256 and recent[-1][1].order_id == "299"  # bounded per class
