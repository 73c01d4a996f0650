"""Request/reply, errors, timeouts, events, priorities, context: hubs talking through Redis."""

from __future__ import annotations

import asyncio
import time

import pytest

from bollydog.context import current_session, remote_parent
from bollydog.errors import HandlerTimeoutError, RemoteHandlerError, TransportError, describe
from bollydog.models.base import Session
from tests.distribute import calc_handlers as calc
from tests.distribute.conftest import process, wait_for
from tests.distribute.orch_handlers import Orchestrate


async def test_request_reply_between_two_hubs(redis_url, prefix):
    async with process(redis_url, prefix, ["calc"]) as consumer, process(redis_url, prefix, []) as front:
        assert "calc" not in front.apps and front.transport.serves(calc.Add)
        assert await front.execute(calc.Add(a=1, b=2)) == 3
        message = await front.put_message(calc.Add(a=20, b=22))
        assert await message.state == 42
        results = await asyncio.gather(*(front.execute(calc.Add(a=i, b=i)) for i in range(50)))
        assert results == [2 * i for i in range(50)]
        assert consumer.transport.serves(calc.Add) is False  # hosted here, not remote


async def test_remote_error_is_raised_as_its_own_class(redis_url, prefix):
    async with process(redis_url, prefix, ["calc"]), process(redis_url, prefix, []) as front:
        with pytest.raises(ValueError) as boom:
            await front.execute(calc.Fail(text="boom"))
        assert type(boom.value) is ValueError and str(boom.value) == "boom"
        assert "another process" in boom.value.__notes__[0]  # shown with its traceback
        message = calc.Fail(text="custom")
        with pytest.raises(calc.OutOfStock) as custom:
            await front.execute(message)
        assert str(custom.value) == "no more widgets"
        with pytest.raises(calc.OutOfStock):
            await message.state
        with pytest.raises(calc.Sold) as caught:  # `except Sold` works as embedded
            await front.execute(calc.Fail(text="sold"))
        assert caught.value.item == "widget" and str(caught.value) == "the last widget is sold"
        embedded = calc.Sold("the last widget is sold", item="widget")
        assert describe(caught.value) == describe(embedded)
        assert describe(caught.value).status == 409


async def test_remote_error_of_a_class_unknown_here_keeps_its_mapping(redis_url, prefix):
    async with process(redis_url, prefix, ["calc"]), process(redis_url, prefix, []) as front:
        with pytest.raises(RemoteHandlerError) as caught:
            await front.execute(calc.Fail(text="gone"))
    remote = caught.value
    assert remote.error_type == "tests.distribute.calc_handlers._unimportable.<locals>.Gone"
    assert remote.remote_message == "that widget is gone for good"
    assert str(remote) == f"{remote.error_type}: that widget is gone for good"
    info = describe(remote)
    assert (info.status, info.code, info.exit_code) == (410, "Gone", 4)
    assert info.body() == {"error": "Gone", "message": "that widget is gone for good", "item": "widget"}


async def test_timeout_follows_expire_time(redis_url, prefix):
    async with process(redis_url, prefix, ["calc"]), process(redis_url, prefix, []) as front:
        started = time.monotonic()
        with pytest.raises(HandlerTimeoutError, match="within 0.3s"):
            await front.execute(calc.Slow(seconds=3, expire_time=0.3))
        assert time.monotonic() - started < 1.5
    # Nobody hosts calc at all, and the command waits for a consumer: it gets its timeout,
    # never a hang.
    async with process(redis_url, f"{prefix}:other", []) as front:
        started = time.monotonic()
        with pytest.raises(HandlerTimeoutError):
            await front.execute(calc.Queued(tag="t", expire_time=0.2))
        assert time.monotonic() - started < 1.0


async def test_events_fan_out_to_every_remote_domain(redis_url, prefix):
    calc.NOTED.clear()
    domains = ["calc", "audit"]
    async with (
        process(redis_url, prefix, ["calc"], domains),
        process(redis_url, prefix, ["audit"], domains),
        process(redis_url, prefix, [], domains) as front,
    ):
        await front.execute(calc.Noted(text="hello"))
        await wait_for(lambda: len(calc.NOTED) >= 2)
        await asyncio.sleep(0.1)  # no duplicate shows up later
        assert sorted(calc.NOTED) == [("audit", "hello"), ("calc", "hello")]


async def test_event_to_process_hosting_two_domains_runs_each_domain_once(redis_url, prefix):
    calc.NOTED.clear()
    domains = ["calc", "audit"]
    async with process(redis_url, prefix, domains, domains), process(redis_url, prefix, [], domains) as front:
        await front.execute(calc.Noted(text="x"))
        await wait_for(lambda: len(calc.NOTED) >= 2)
        await asyncio.sleep(0.1)
        assert sorted(calc.NOTED) == [("audit", "x"), ("calc", "x")]


async def test_higher_priority_is_consumed_first_under_backlog(redis_url, prefix, raw):
    calc.RECORDED.clear()
    async with process(redis_url, prefix, [], wait_for_consumer=True) as front:  # queued before any consumer
        sent = [await front.put_message(calc.Record(tag=f"n{i}")) for i in range(10)]
        sent += [await front.put_message(calc.Record(tag=f"h{i}", priority=5)) for i in range(10)]
        normal, high = f"{prefix}:stream:calc:normal", f"{prefix}:stream:calc:high"

        async def queued() -> tuple[int, int]:
            return await raw.xlen(normal), await raw.xlen(high)

        for _ in range(200):
            if await queued() == (10, 10):
                break
            await asyncio.sleep(0.01)
        assert await queued() == (10, 10)
        # The backlog is there; now a consumer that takes one message at a time starts.
        async with process(redis_url, prefix, ["calc"], concurrency=1, batch=1):
            results = await asyncio.gather(*(m.state for m in sent))
    assert sorted(results) == sorted(m.tag for m in sent)
    # Order within a band is the order the front's concurrent sends reached Redis.
    assert sorted(calc.RECORDED[:10]) == sorted(f"h{i}" for i in range(10))
    assert sorted(calc.RECORDED[10:]) == sorted(f"n{i}" for i in range(10))


async def test_session_and_trace_travel(redis_url, prefix):
    async with process(redis_url, prefix, ["calc"]), process(redis_url, prefix, []) as front:
        session = Session(username="alice")
        token = current_session.set(session)
        parent = remote_parent.set(("ab" * 16, "cd" * 8))  # as an HTTP traceparent would
        try:
            message = calc.WhoAmI(priority=3)
            seen = await front.execute(message)
        finally:
            remote_parent.reset(parent)
            current_session.reset(token)
        assert seen["username"] == "alice" and seen["created_by"] == "alice"
        assert seen["session_uid"] == session.uid
        assert (seen["iid"], seen["trace_id"], seen["span_id"]) == (message.iid, message.trace_id, message.span_id)
        assert seen["trace_id"] == "ab" * 16 and seen["parent_span_id"] == "cd" * 8
        assert seen["priority"] == 3


async def test_orchestration_across_three_processes(redis_url, prefix):
    domains = ["calc", "orch"]
    async with (
        process(redis_url, prefix, ["calc"], domains),
        process(redis_url, prefix, ["orch"], domains),
        process(redis_url, prefix, [], domains) as front,
    ):
        token = current_session.set(Session(username="bob"))
        try:
            command = Orchestrate(a=2, b=3)
            result = await front.execute(command)
        finally:
            current_session.reset(token)
    assert result["total"] == 5
    assert result["caught"] == "ValueError: inner"  # thrown back in as its own class
    nested = result["nested"]
    assert nested["username"] == "bob"
    assert nested["trace_id"] == command.trace_id == result["trace_id"]
    assert nested["parent_span_id"] == command.span_id  # a child of the orchestrating handler


async def test_redis_unreachable_fails_fast(prefix):
    from tests.distribute.conftest import process as proc

    async with proc("redis://127.0.0.1:1/0", prefix, [], op_timeout=1.0) as front:
        started = time.monotonic()
        with pytest.raises(TransportError, match="cannot send calc.add"):
            await front.execute(calc.Add(a=1, b=2, expire_time=5))
        assert time.monotonic() - started < 1.5
        with pytest.raises(TransportError):
            await front.execute(calc.Noted(text="lost"))


async def test_handler_in_flight_during_stop_still_gets_its_remote_replies(redis_url, prefix):
    """The stopping process's reply reader outlives its in-flight handlers: an orchestration that
    asks another domain during the grace period completes instead of hanging and running again."""
    from tests.distribute.orch_handlers import PausedOrchestrate

    domains = ["calc", "orch"]
    async with process(redis_url, prefix, ["calc"], domains), process(redis_url, prefix, [], domains) as front:
        orch = process(redis_url, prefix, ["orch"], domains, grace=3)
        await orch.__aenter__()
        try:
            call = asyncio.ensure_future(front.execute(PausedOrchestrate(pause=0.3, expire_time=5)))
            await asyncio.sleep(0.1)  # the orchestration is running, before its remote request
        finally:
            started = time.monotonic()
            await orch.__aexit__(None, None, None)
        assert time.monotonic() - started < 2
        assert await asyncio.wait_for(call, 1) == 3


async def test_the_same_message_sent_twice_at_once_is_handled_once_and_both_get_the_reply(redis_url, prefix):
    calc.RECORDED.clear()
    async with process(redis_url, prefix, ["calc"]), process(redis_url, prefix, []) as front:
        message = calc.Record(tag="once")
        first, second = await asyncio.gather(
            front.transport.request(message), front.transport.request(message)
        )
        assert first == second == "once"
        await asyncio.sleep(0.05)
    assert calc.RECORDED == ["once"]
