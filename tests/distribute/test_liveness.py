"""Liveness in Redis: heartbeats in ``{prefix}:consumers:{domain}``, the producer's cached yes.

Consumers announce themselves there (a heartbeat scored with its expiry in Redis time) and
withdraw when they stop; producers check it, caching a yes briefly. What every transport does
(refusing a command nobody consumes, waiting when the command asks to) is in
tests/transport/contract.py.
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
