"""A command for a domain with no live consumer is refused at once and never sent.

Consumers announce themselves in ``{prefix}:consumers:{domain}`` (a heartbeat scored with its
expiry in Redis time) and withdraw when they stop; producers check it, caching a yes briefly.
Commands whose class sets ``wait_for_consumer`` are queued instead, and run once a consumer comes.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from bollydog.errors import HandlerTimeoutError, NoConsumerError
from bollydog.transport.liveness import Liveness
from tests.distribute import calc_handlers as calc
from tests.distribute.conftest import config, process


async def redis_millis(raw: Any) -> int:
    seconds, micros = await raw.time()
    return seconds * 1000 + micros // 1000


async def test_when_every_consumer_stopped_a_command_is_refused_at_once_and_never_runs(redis_url, prefix, raw):
    calc.RECORDED.clear()
    stream = f"{prefix}:stream:calc:normal"
    # liveness_cache=0: the front checks on every request, so the test does not wait for a
    # cached answer to run out.
    async with process(redis_url, prefix, [], liveness_cache=0) as front:
        first = process(redis_url, prefix, ["calc"])
        await first.__aenter__()
        try:
            async with process(redis_url, prefix, ["calc"]):
                assert await raw.zcard(f"{prefix}:consumers:calc") == 2
                assert await front.execute(calc.Record(tag="two up")) == "two up"
            assert await front.execute(calc.Record(tag="one up")) == "one up"  # the other one serves
        finally:
            await first.__aexit__(None, None, None)
        assert await raw.zcard(f"{prefix}:consumers:calc") == 0  # both withdrew on stop

        started = time.monotonic()
        with pytest.raises(NoConsumerError, match="no process is consuming domain 'calc'") as refused:
            await front.execute(calc.Record(tag="refused", expire_time=30))
        assert time.monotonic() - started < 0.5
        assert "wait_for_consumer" in str(refused.value)  # says what to do
        assert await raw.xlen(stream) == 0  # not sent

        async with process(redis_url, prefix, ["calc"]):
            assert await front.execute(calc.Record(tag="back")) == "back"
            await asyncio.sleep(0.05)  # anything queued before "back" would have run by now
    assert calc.RECORDED == ["two up", "one up", "back"]


async def test_a_command_that_waits_for_a_consumer_runs_once_one_comes(redis_url, prefix, raw):
    calc.RECORDED.clear()
    async with process(redis_url, prefix, []) as front:
        call = asyncio.ensure_future(front.execute(calc.Queued(tag="patient", expire_time=10)))
        for _ in range(200):  # until it is in calc's stream
            if await raw.xlen(f"{prefix}:stream:calc:normal") or call.done():
                break
            await asyncio.sleep(0.01)
        assert not call.done()  # not refused: queued
        assert await raw.xlen(f"{prefix}:stream:calc:normal") == 1
        async with process(redis_url, prefix, ["calc"]):
            assert await asyncio.wait_for(call, 5) == "patient"
    assert calc.RECORDED == ["patient"]


async def test_the_transport_option_lets_every_command_wait(redis_url, prefix, raw):
    async with process(redis_url, prefix, [], wait_for_consumer=True) as front:
        with pytest.raises(HandlerTimeoutError):
            await front.execute(calc.Add(a=1, b=2, expire_time=0.2))
        assert await raw.xlen(f"{prefix}:stream:calc:normal") == 1  # queued, runs when calc comes


async def test_events_are_queued_for_later_consumers_not_refused(redis_url, prefix, raw):
    async with process(redis_url, prefix, []) as front:
        await front.execute(calc.Noted(text="for later"))
        assert await raw.xlen(f"{prefix}:stream:calc:normal") == 1


async def test_an_expired_heartbeat_is_no_consumer(redis_url, prefix, raw):
    """A consumer that crashed never withdraws: its heartbeat expiring is what tells. (Here a
    foreign consumer's heartbeat, written as docs/distribute.md says.)"""
    key = f"{prefix}:consumers:calc"
    async with process(redis_url, prefix, [], liveness_cache=10) as front:
        await raw.zadd(key, {"crashed-1": await redis_millis(raw) - 1})
        with pytest.raises(NoConsumerError):
            await front.execute(calc.Add(a=1, b=2, expire_time=5))
        assert await raw.xlen(f"{prefix}:stream:calc:normal") == 0


async def test_a_cached_yes_never_outlives_the_heartbeat_it_saw():
    class Writes:  # answers TIME and ZRANGE as Redis would: the newest heartbeat ends in 200 ms
        async def run(self, *commands):
            return [(1_700_000_000, 0), [("worker-1", 1_700_000_000_200.0)]]

    liveness = Liveness("p", "me", ttl=5, cache=10)
    assert not liveness.fresh("calc")
    assert await liveness.check(Writes(), "calc")
    assert liveness.fresh("calc")
    await asyncio.sleep(0.25)
    assert not liveness.fresh("calc")  # 0.2 s, not the 10 s cache: the next request checks again


async def test_a_failed_request_drops_the_cached_answer(redis_url, prefix, raw):
    key = f"{prefix}:consumers:calc"
    async with process(redis_url, prefix, [], liveness_cache=10) as front:
        await raw.zadd(key, {"hung-1": await redis_millis(raw) + 60_000})  # alive, never answers
        with pytest.raises(HandlerTimeoutError):
            await front.execute(calc.Add(a=1, b=1, expire_time=0.2))
        await raw.zrem(key, "hung-1")
        started = time.monotonic()
        with pytest.raises(NoConsumerError):  # checked again, though the yes was cached for 10 s
            await front.execute(calc.Add(a=1, b=2, expire_time=5))
        assert time.monotonic() - started < 0.5


async def test_a_consumer_renews_its_heartbeat_while_it_runs(redis_url, prefix, raw):
    key = f"{prefix}:consumers:calc"
    async with process(redis_url, prefix, ["calc"], consumer_ttl=0.3) as worker:
        (first,) = await raw.zrange(key, 0, -1, withscores=True)
        assert first[0] == worker.transport.consumer
        await asyncio.sleep(0.35)  # longer than the ttl: alive only if it renewed meanwhile
        (renewed,) = await raw.zrange(key, 0, -1, withscores=True)
        assert renewed[1] > first[1] and renewed[1] > await redis_millis(raw)


async def test_http_front_answers_503_with_retry_after(redis_url, prefix):
    from bollydog.bootstrap import build

    sections = config(redis_url, prefix, ["calc"])
    sections["http"] = {"app": "bollydog.entrypoint.http.app.HttpService", "port": 0}
    composition = build(sections, exclude=["calc"])
    async with composition.hub:
        (http,) = composition.entrypoints
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http.port}", timeout=5) as client:
            started = time.monotonic()
            answer = await client.get("/calc/appservice/add", params={"a": 1, "b": 2})
            assert time.monotonic() - started < 0.5
    assert answer.status_code == 503
    assert answer.headers["retry-after"].isdigit()
    assert answer.json()["error"] == "NoConsumerError"
    assert "no process is consuming domain 'calc'" in answer.json()["message"]
