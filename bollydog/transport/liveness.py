"""Which domains have a live consumer: heartbeats in Redis, a short-lived answer at the producer.

Every process consuming a domain keeps its consumer name in the sorted set
``{prefix}:consumers:{domain}``, scored with the time its heartbeat expires: milliseconds of the
Redis server's clock (``TIME``) plus ``ttl``, so the hosts' clocks never matter. It renews the
heartbeat every third of ``ttl`` and removes itself when it stops consuming. A consumer that
crashed drops out once its heartbeat expires.

A producer asks "does this domain have a live consumer?" with one round trip (``TIME`` and the
highest score, pipelined with its other writes) and trusts a yes for ``cache`` seconds (never
past the heartbeat's own expiry): on the hot path a request pays a dict lookup, not a round trip.
A no is never cached, so a domain is usable again as soon as a consumer announces itself.
Concurrent requests share one check. A failed request (no reply in time, Redis error) drops the
cached answer, so the next request checks again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

from bollydog.transport.batching import PipelineCoalescer


def _millis(server_time: tuple[int, int]) -> int:
    seconds, micros = server_time
    return int(seconds) * 1000 + int(micros) // 1000


class Liveness:
    """Consumer heartbeats (:meth:`announce`, :meth:`withdraw`) and the producer's view of them
    (:meth:`fresh`, :meth:`check`, :meth:`forget`)."""

    def __init__(self, prefix: str, consumer: str, ttl: float, cache: float) -> None:
        self.prefix, self.consumer = prefix, consumer
        self.ttl_ms = max(1, int(ttl * 1000))
        self.cache = cache
        self._alive_until: dict[str, float] = {}  # domain -> monotonic time a yes holds until
        self._checks: dict[str, asyncio.Task[bool]] = {}  # domain -> the check in flight

    def key(self, domain: str) -> str:
        return f"{self.prefix}:consumers:{domain}"

    # -- consumer side -------------------------------------------------------------------------

    async def announce(self, client: Any, domains: Iterable[str]) -> None:
        """Renew this consumer's heartbeat in ``domains`` (and prune the expired ones)."""
        domains = list(domains)
        if not domains:
            return
        now = _millis(await client.time())
        async with client.pipeline(transaction=False) as pipe:
            for domain in domains:
                key = self.key(domain)
                pipe.zremrangebyscore(key, "-inf", now)
                pipe.zadd(key, {self.consumer: now + self.ttl_ms})
                pipe.pexpire(key, self.ttl_ms)  # renewed by every live consumer; gone with the last
            await pipe.execute()

    async def withdraw(self, client: Any, domains: Iterable[str]) -> None:
        """This consumer no longer takes messages of ``domains``."""
        domains = list(domains)
        if domains:
            async with client.pipeline(transaction=False) as pipe:
                for domain in domains:
                    pipe.zrem(self.key(domain), self.consumer)
                await pipe.execute()

    # -- producer side -------------------------------------------------------------------------

    def fresh(self, domain: str) -> bool:
        """True while a recent check found a live consumer of ``domain`` (no round trip)."""
        return self._alive_until.get(domain, 0.0) > time.monotonic()

    async def check(self, writes: PipelineCoalescer, domain: str) -> bool:
        """Whether ``domain`` has a live consumer now; a yes is cached. Raises Redis errors."""
        task = self._checks.get(domain)
        if task is None:
            task = self._checks[domain] = asyncio.ensure_future(self._query(writes, domain))
            task.add_done_callback(lambda done: self._checked(domain, done))
        # shield: a caller giving up must not cancel the check the others are waiting for.
        return await asyncio.shield(task)

    async def _query(self, writes: PipelineCoalescer, domain: str) -> bool:
        server_time, newest = await writes.run(
            ("time", (), {}), ("zrange", (self.key(domain), -1, -1), {"withscores": True})
        )
        now = _millis(server_time)
        expires = newest[0][1] if newest else 0
        if expires <= now:
            self._alive_until.pop(domain, None)
            return False
        self._alive_until[domain] = time.monotonic() + min(self.cache, (expires - now) / 1000)
        return True

    def _checked(self, domain: str, task: asyncio.Task[bool]) -> None:
        if self._checks.get(domain) is task:
            del self._checks[domain]
        if not task.cancelled():
            task.exception()  # every waiter got it; retrieved so that none is reported as lost

    def forget(self, domain: str) -> None:
        """Drop the cached answer for ``domain``: the next request checks again."""
        self._alive_until.pop(domain, None)
