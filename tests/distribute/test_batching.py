"""Write coalescing: concurrent requests and replies share pipelines; errors reach their own caller."""

from __future__ import annotations

import asyncio

import pytest

from bollydog.errors import TransportError
from bollydog.models.base import Command
from bollydog.transport.batching import PipelineCoalescer
from tests.distribute import calc_handlers as calc
from tests.distribute.conftest import process


class Ghost(Command):
    """A command of a domain nobody hosts; its stream key is made unusable by the test.

    It waits for a consumer, so it is sent (and its XADD fails) rather than refused."""

    domain = "ghost"
    wait_for_consumer = True
    n: int


def count_flushes(coalescer: PipelineCoalescer) -> list[int]:
    """Wrap the coalescer's pipeline execution: the returned list gets one batch size per flush."""
    sizes: list[int] = []
    execute = coalescer._execute

    async def counting(batch):
        sizes.append(sum(len(item.commands) for item in batch))  # commands, not callers
        await execute(batch)

    coalescer._execute = counting
    return sizes


async def test_concurrent_requests_and_replies_are_coalesced(redis_url, prefix):
    async with process(redis_url, prefix, ["calc"]) as consumer, process(redis_url, prefix, []) as front:
        assert await front.execute(calc.Add(a=0, b=0)) == 0  # reply reader started
        sent = count_flushes(front.transport.connections.writes)
        replied = count_flushes(consumer.transport.connections.writes)
        results = await asyncio.gather(*(front.execute(calc.Add(a=i, b=1)) for i in range(50)))
        assert results == [i + 1 for i in range(50)]
        assert sum(sent) == 50  # one XADD per request ...
        assert len(sent) <= 5, sent  # ... in a handful of round trips, not 50
        assert sum(replied) == 150  # reply XADD + XACK + XDEL per request ...
        assert len(replied) < 25, replied  # ... coalesced across the handlers finishing together


async def test_lone_request_is_flushed_alone_and_at_once(redis_url, prefix):
    async with process(redis_url, prefix, ["calc"]) as consumer, process(redis_url, prefix, []) as front:
        sent = count_flushes(front.transport.connections.writes)
        replied = count_flushes(consumer.transport.connections.writes)
        for i in range(3):
            assert await front.execute(calc.Add(a=i, b=i)) == 2 * i
        # The first request checks that calc has a live consumer (TIME + ZRANGE, one round trip);
        # the answer is cached, so the next ones are their XADD alone.
        assert sent == [2, 1, 1, 1]
        assert replied == [3, 3, 3]


async def test_an_error_in_one_batched_command_reaches_only_its_caller(redis_url, prefix, raw):
    from redis.exceptions import ResponseError

    await raw.set(f"{prefix}:not-a-stream", "x")
    coalescer = PipelineCoalescer(raw)
    sizes = count_flushes(coalescer)
    good = [coalescer.submit("xadd", f"{prefix}:ok", {"n": str(i)}) for i in range(3)]
    bad = coalescer.submit("xadd", f"{prefix}:not-a-stream", {"n": "3"})
    good.append(coalescer.submit("xadd", f"{prefix}:ok", {"n": "4"}))
    done = await asyncio.gather(*good, bad, return_exceptions=True)
    assert sizes == [5]  # one pipeline for all of them
    assert all(isinstance(r, str) and "-" in r for r in done[:4])  # entry ids
    assert isinstance(done[4], ResponseError) and "WRONGTYPE" in str(done[4])
    assert await raw.xlen(f"{prefix}:ok") == 4


async def test_a_failed_request_in_a_batch_does_not_fail_the_others(redis_url, prefix, raw):
    async with process(redis_url, prefix, ["calc"]), process(redis_url, prefix, []) as front:
        front.transport.add_remote("ghost", [Ghost])
        await raw.set(f"{prefix}:stream:ghost:normal", "x")  # every XADD to it fails (WRONGTYPE)
        assert await front.execute(calc.Add(a=0, b=0)) == 0
        sent = count_flushes(front.transport.connections.writes)
        calls = [front.execute(calc.Add(a=i, b=i)) for i in range(5)]
        calls.insert(2, front.execute(Ghost(n=1, expire_time=5)))
        results = await asyncio.gather(*calls, return_exceptions=True)
        assert len(sent) <= 2, sent
        assert isinstance(results[2], TransportError) and "cannot send ghost" in str(results[2])
        assert [r for i, r in enumerate(results) if i != 2] == [0, 2, 4, 6, 8]


async def test_a_connection_error_fails_every_caller_of_the_batch_quickly():
    import redis.asyncio as aioredis
    from redis.exceptions import ConnectionError as RedisConnectionError

    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    try:
        coalescer = PipelineCoalescer(client)
        futures = [coalescer.submit("xadd", "k", {"n": str(i)}) for i in range(3)]
        async with asyncio.timeout(2):
            for future in futures:
                with pytest.raises(RedisConnectionError):
                    await future
    finally:
        await client.aclose()


async def test_a_cancelled_run_sends_none_of_its_commands(redis_url, prefix, raw):
    """A consumer cancelled in _finish must not send its XACK without its reply."""
    coalescer = PipelineCoalescer(raw)
    task = asyncio.create_task(coalescer.run(
        ("xadd", (f"{prefix}:reply", {"ok": "1"}), {}), ("set", (f"{prefix}:ack", "1"), {}),
    ))
    await asyncio.sleep(0)  # the run submitted its commands; the flush has not run yet
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.1)
    assert (await raw.exists(f"{prefix}:reply"), await raw.exists(f"{prefix}:ack")) == (0, 0)


async def test_the_acknowledgements_of_one_flush_share_one_xack_and_one_xdel(redis_url, prefix, raw):
    stream, group, replies = f"{prefix}:s", "g", f"{prefix}:replies"
    await raw.xgroup_create(stream, group, id="0", mkstream=True)
    for i in range(5):
        await raw.xadd(stream, {"n": str(i)})
    [(_, entries)] = await raw.xreadgroup(group, "c", {stream: ">"}, count=10)
    coalescer = PipelineCoalescer(raw)
    sent: list[list] = []
    send = coalescer._send

    async def recording(commands):
        sent.append([(name, args) for name, args, _ in commands])
        return await send(commands)

    coalescer._send = recording
    results = await asyncio.gather(*(
        coalescer.run(("xadd", (replies, {"id": entry_id}), {}), ("xack", (stream, group, entry_id), {}),
                      ("xdel", (stream, entry_id), {}))
        for entry_id, _ in entries
    ))
    ids = [entry_id for entry_id, _ in entries]
    assert len(sent) == 1  # one round trip ...
    assert [name for name, _ in sent[0]] == ["xadd"] * 5 + ["xack", "xdel"]  # ... acknowledgements last
    assert sent[0][5] == ("xack", (stream, group, *ids)) and sent[0][6] == ("xdel", (stream, *ids))
    assert [r[1:] for r in results] == [[5, 5]] * 5  # every caller gets the shared replies
    assert (await raw.xpending(stream, group))["pending"] == 0
    assert await raw.xlen(stream) == 0 and await raw.xlen(replies) == 5
