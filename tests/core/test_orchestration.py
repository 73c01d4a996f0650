import asyncio
import time

import pytest

from bollydog.errors import ConcurrentDispatchError, HandlerTimeoutError, HubNotRunningError
from bollydog.models.base import Command, Event
from bollydog.service.app import HubService
from bollydog.settings import reload_settings


class Double(Command):
    value: int


class Fail(Command):
    reason: str


class Wait(Command):
    seconds: float


class Flow(Command):
    value: int


class Recovering(Command):
    pass


class Batch(Command):
    fail_one: bool = False


class Shipped(Event):
    value: int


class Chain(Command):
    value: int


class ThroughQueue(Command):
    depth: int


class FromEvent(Event):
    value: int


class Collect(Command):
    value: int


published = []
collected = []


async def double(command: Double) -> int:
    return command.value * 2


async def fail(command: Fail) -> None:
    raise LookupError(command.reason)


async def wait(command: Wait) -> float:
    await asyncio.sleep(command.seconds)
    return command.seconds


async def flow(command: Flow):
    doubled = yield Double(value=command.value)
    yield f"doubled to {doubled}"
    both = yield [Double(value=doubled), Double(value=1)]
    yield Shipped(value=sum(both))
    yield sum(both)


async def recovering(command: Recovering):
    try:
        yield Fail(reason="inner")
    except LookupError as exc:
        yield f"recovered from {exc}"


async def batch(command: Batch):
    started = time.perf_counter()
    messages = [Wait(seconds=0.3), Wait(seconds=0.3), Wait(seconds=0.3)]
    if command.fail_one:
        messages.append(Fail(reason="one of many"))
    failed = None
    try:
        results = yield messages
    except* LookupError as group:
        failed = [str(e) for e in group.exceptions]
    if failed:
        yield {"failed": failed}
    else:
        yield {"results": results, "elapsed": time.perf_counter() - started}


async def on_shipped(event: Shipped) -> None:
    published.append(event)


async def chain(command: Chain) -> Double:
    return Double(value=command.value + 1)  # hand-off


async def through_queue(command: ThroughQueue, hub: HubService) -> int:
    if command.depth == 0:
        return 0
    child = await hub.put_message(ThroughQueue(depth=command.depth - 1))
    return 1 + await child.state


async def from_event(event: FromEvent, hub: HubService) -> int:
    result = await hub.execute(Collect(value=event.value))
    collected.append(result)
    return result


async def collect(command: Collect) -> int:
    return command.value


HANDLERS = [double, fail, wait, flow, recovering, batch, on_shipped, chain, through_queue, from_event, collect]


@pytest.fixture
async def hub():
    published.clear()
    collected.clear()
    hub = HubService(concurrency=1)
    hub.register(*HANDLERS)
    async with hub:
        yield hub


async def test_yielded_commands_send_results_back_and_last_value_is_the_result(hub):
    message = Flow(value=3)
    partials = []

    async def listen():
        async for item in message.stream():
            partials.append(item)

    listener = asyncio.create_task(listen())
    await asyncio.sleep(0)
    assert await hub.execute(message) == 14
    await listener
    assert partials == ["doubled to 6", 14]
    await asyncio.sleep(0.01)
    assert [e.value for e in published] == [14]
    assert published[0].trace_id == message.trace_id
    assert published[0].parent_span_id == message.span_id


async def test_failure_of_a_yielded_command_is_thrown_back_into_the_generator(hub):
    assert await hub.execute(Recovering()) == "recovered from inner"


async def test_yielded_list_runs_concurrently(hub):
    result = await hub.execute(Batch())
    assert result["results"] == [0.3, 0.3, 0.3]
    assert result["elapsed"] < 0.6


async def test_failures_in_a_yielded_list_come_back_as_an_exception_group(hub):
    assert await hub.execute(Batch(fail_one=True)) == {"failed": ["one of many"]}


async def test_uncaught_concurrent_failure_propagates_with_partial_results():
    class Unguarded(Command):
        pass

    async def unguarded(command: Unguarded):
        yield [Double(value=1), Fail(reason="x")]

    hub = HubService()
    hub.register(unguarded, double, fail)
    async with hub:
        with pytest.raises(ConcurrentDispatchError) as info:
            await hub.execute(Unguarded())
    assert info.value.results[0] == 2 and isinstance(info.value.results[1], LookupError)


async def test_a_concurrent_failure_names_each_cause_without_the_text_of_unmapped_ones():
    from bollydog.errors import DomainError

    class Taken(DomainError):
        status_code = 409

    class Claim(Command):
        pass

    class Pair(Command):
        pass

    async def claim(command: Claim) -> None:
        raise Taken("plate G1 is taken")

    async def pair(command: Pair):
        yield [Claim(), Fail(reason="INSERT INTO vehicles VALUES ('secret')"), Double(value=1)]

    hub = HubService()
    hub.register(pair, claim, fail, double)
    async with hub:
        with pytest.raises(ConcurrentDispatchError) as info:
            await hub.execute(Pair())
    text = str(info.value)
    assert text.startswith("2 of 3 concurrent messages failed: claim (Taken: plate G1 is taken); fail (LookupError)")
    assert "secret" not in text  # an unmapped error's text stays in the log


async def test_coroutine_returning_a_message_hands_off_to_it(hub):
    assert await hub.execute(Chain(value=4)) == 10


async def test_nested_put_message_does_not_deadlock_at_concurrency_one(hub):
    queued = await hub.put_message(ThroughQueue(depth=5))
    assert await asyncio.wait_for(queued.state, 2) == 5


async def test_event_handler_dispatching_a_command_through_the_queue_does_not_deadlock(hub):
    event = await hub.put_message(FromEvent(value=7))
    assert await asyncio.wait_for(event.state, 2) == [7]
    assert collected == [7]


async def test_children_inherit_trace_and_point_at_their_parent():
    seen = {}

    class Parent(Command):
        pass

    class Kid(Command):
        pass

    async def parent(command: Parent):
        yield Kid()

    async def kid(command: Kid) -> None:
        from bollydog.globals import message

        seen["kid"] = (message.trace_id, message.parent_span_id)

    hub = HubService()
    hub.register(parent, kid)
    async with hub:
        root = Parent()
        await hub.execute(root)
    assert seen["kid"] == (root.trace_id, root.span_id)


# -- cancellation: compensation ------------------------------------------------------------------


class Reserve(Command):
    sku: str


class Release(Command):
    sku: str


class Released(Event):
    sku: str


class Checkout(Command):
    compensation_seconds: float = 0.0


LEDGER: list[tuple[str, str]] = []


async def reserve(command: Reserve) -> str:
    LEDGER.append(("reserve", command.sku))
    return command.sku


async def release(command: Release) -> None:
    LEDGER.append(("release", command.sku))


async def on_released(event: Released) -> None:
    LEDGER.append(("released event", event.sku))


async def checkout(command: Checkout):
    sku = yield Reserve(sku="apple")
    try:
        yield Wait(seconds=30)  # still running when the hub is stopped
    except asyncio.CancelledError:
        yield Wait(seconds=command.compensation_seconds)
        yield Release(sku=sku)  # dispatched though the hub is stopping
        yield Released(sku=sku)
        raise
    finally:
        LEDGER.append(("finally", sku))


def compensating_hub(**options) -> HubService:
    LEDGER.clear()
    hub = HubService(shutdown_grace=0.2, **options)
    hub.register(checkout, reserve, release, on_released, wait)
    return hub


@pytest.mark.parametrize("call", ["put_message", "execute"])
async def test_a_generator_cut_by_shutdown_gets_the_cancellation_at_its_yield_and_compensates(call):
    hub = compensating_hub(compensation_grace=2)
    await hub.start()
    message = Checkout()
    if call == "put_message":
        await hub.put_message(message)
        outcome = message.state
    else:
        outcome = asyncio.ensure_future(hub.execute(message))
    await asyncio.sleep(0.05)
    assert LEDGER == [("reserve", "apple")]
    await hub.stop()
    assert LEDGER[:3] == [("reserve", "apple"), ("release", "apple"), ("finally", "apple")]
    assert ("released event", "apple") in LEDGER  # the event it yielded ran too
    with pytest.raises(HubNotRunningError):
        await outcome


async def test_compensation_is_bounded_by_the_compensation_grace(caplog):
    hub = compensating_hub(compensation_grace=0.3)
    await hub.start()
    message = await hub.put_message(Checkout(compensation_seconds=30))
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await hub.stop()
    assert loop.time() - started < 0.2 + 0.3 + 1.0
    assert ("release", "apple") not in LEDGER and ("finally", "apple") in LEDGER
    assert any("did not finish within 0.3s" in rec.getMessage() for rec in caplog.records)
    with pytest.raises(HubNotRunningError):
        await message.state


async def test_a_forced_stop_does_not_wait_for_compensation(caplog):
    hub = compensating_hub(compensation_grace=30)
    hub.shutdown_grace = 30
    await hub.start()
    message = await hub.put_message(Checkout(compensation_seconds=30))
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()
    stopping = asyncio.ensure_future(hub.stop())
    await asyncio.sleep(0.05)
    hub.force_stop()
    await stopping
    assert loop.time() - started < 1.0
    assert ("release", "apple") not in LEDGER and ("finally", "apple") in LEDGER
    assert not [rec for rec in caplog.records if "abandoned" in rec.getMessage()]
    with pytest.raises(HubNotRunningError):
        await message.state


async def test_a_timeout_lets_the_generator_compensate_too():
    hub = compensating_hub(compensation_grace=2)
    async with hub:
        with pytest.raises(HandlerTimeoutError):
            await hub.execute(Checkout(expire_time=0.1))
    assert ("release", "apple") in LEDGER


def test_compensation_grace_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("BOLLYDOG_COMPENSATION_GRACE", "0.7")
    try:
        assert reload_settings().compensation_grace == 0.7
        assert HubService().compensation_grace == 0.7
        assert HubService(compensation_grace=0).compensation_grace == 0
    finally:
        monkeypatch.undo()
        reload_settings()
