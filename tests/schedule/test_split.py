"""A schedule fires once per tick across the processes running its domain: two hubs on one
real Redis (and on the in-memory broker) with one manual clock, and two real ``bollydog
service`` processes on the system clock."""

from __future__ import annotations

import asyncio
import math
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bollydog.bootstrap import build
from bollydog.schedule import ManualClock, Scheduler
from bollydog.testing import MemoryBroker
from tests.distribute.conftest import redis_url_or_skip
from tests.schedule import ticking_handlers

ROOT = Path(__file__).resolve().parents[2]
TICKS = 6


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    """A Redis key prefix of the test's own, deleted afterwards (when Redis is used)."""
    value = f"bdtest:{secrets.token_hex(4)}"
    yield value
    url = os.environ.get("BOLLYDOG_TEST_REDIS_URL", "").strip()
    if url:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(url)
        try:
            keys = [k async for k in client.scan_iter(match=f"{value}:*", count=1000)]
            if keys:
                await client.delete(*keys)
        finally:
            await client.aclose()


def _distribute(kind: str, prefix: str, broker: MemoryBroker) -> dict[str, Any]:
    if kind == "redis":
        url = redis_url_or_skip()
        return {"app": "bollydog.transport.redis.RedisTransport", "url": url, "prefix": prefix}
    return {"app": "bollydog.testing.MemoryTransport", "broker": broker}


@pytest.mark.parametrize("kind", ["redis", "memory"])
async def test_two_hubs_running_the_domain_fire_each_tick_once(kind: str, prefix: str) -> None:
    ticking_handlers.CALLS.clear()
    clock = ManualClock(1_800_000_000.0)
    broker = MemoryBroker()

    def process() -> Any:
        config = {
            "jobs": {"handlers": ["tests.schedule.ticking_handlers"]},
            "scheduler": {"app": "bollydog.schedule.Scheduler", "clock": clock,
                          "schedules": {"beat": {"message": "jobs.tick", "every": 60}}},
            "distribute": _distribute(kind, prefix, broker),
        }
        return build(config)

    first, second = process(), process()
    schedulers: list[Scheduler] = [*first.schedulers, *second.schedulers]
    beats = [next(p for p in s.planned if p.name == "beat") for s in schedulers]
    async with first.hub, second.hub:
        await clock.asleep(2)  # both schedulers wait for the first tick
        for tick in range(1, TICKS + 1):
            await clock.advance(60)  # returns once both claimed (or lost) the tick
            assert sum(b.fired for b in beats) == tick
        await first.hub.drain(5)
        await second.hub.drain(5)
    tocks = [c for c in ticking_handlers.CALLS if c["label"] == "tick"]
    assert len(tocks) == TICKS  # once per tick, not once per process
    assert sum(b.fired for b in beats) == TICKS


def _service(config: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bollydog", "service", "--config", str(config)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


async def test_two_processes_over_redis_fire_each_tick_once(tmp_path: Path, prefix: str) -> None:
    url = redis_url_or_skip()
    interval = 0.5
    config = tmp_path / "jobs.yaml"
    config.write_text(
        "jobs:\n  handlers: [tests.schedule.ticking_handlers]\n"
        "scheduler:\n  app: !module bollydog.schedule.Scheduler\n  schedules:\n"
        f"    beat: {{message: jobs.tick, every: {interval}}}\n"
        f"distribute:\n  app: !module bollydog.transport.redis.RedisTransport\n  url: {url}\n  prefix: {prefix}\n"
    )
    key = f"{prefix}:ticks"
    env = {**os.environ, "TICKS_REDIS_URL": url, "TICKS_KEY": key, "PYTHONPATH": str(ROOT)}
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url, decode_responses=True)
    processes = [_service(config, env), _service(config, env)]
    try:
        # Both announce themselves as consumers of jobs once up; then ticks are counted.
        deadline = time.monotonic() + 30
        while await client.zcard(f"{prefix}:consumers:jobs") < 2:
            assert all(p.poll() is None for p in processes), [p.stderr.read() for p in processes if p.stderr]
            assert time.monotonic() < deadline, "the two services did not come up"
            await asyncio.sleep(0.05)
        started = time.time()
        await asyncio.sleep(3.2)
        ended = time.time()
    finally:
        for p in processes:
            p.send_signal(signal.SIGTERM)
        for p in processes:
            assert p.wait(15) == 0
    records = [line.split() for line in await client.lrange(key, 0, -1)]
    await client.aclose()
    times = [float(at) for _, at in records if started <= float(at) <= ended]
    ticks = [math.floor(t / interval) for t in times]  # the tick each message was made for
    assert len(times) >= 5
    assert len(ticks) == len(set(ticks)), sorted(ticks)  # no tick ran twice
