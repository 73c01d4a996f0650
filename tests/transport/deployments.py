"""Split deployments for the transport contract: one per transport implementation.

A :class:`Deployment` builds processes (started hubs, built by the real composition root from a
config whose ``distribute`` section names the transport) that share one "server", and gives
the contract what a test needs to look at that server directly, as a program outside bollydog
would: add raw entries, read a reply stream, read an entry as a consumer that then dies, count
pending entries, list dead letters.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from bollydog.service.app import HubService
from bollydog.testing import MemoryBroker

DOMAINS = {
    "calc": ["tests.distribute.calc_handlers"],
    "audit": ["tests.distribute.audit_handlers"],
    "orch": ["tests.distribute.orch_handlers"],
}

#: The consumer name of the raw reads that stand for a consumer that died.
GHOST = "ghost"


class Deployment(abc.ABC):
    """Processes sharing one server, and a raw view of that server."""

    #: Options making producers check liveness on every request (no cached answer).
    uncached: dict[str, Any] = {}

    @abc.abstractmethod
    def section(self, **options: Any) -> dict[str, Any]:
        """The ``distribute`` config section with ``options``."""

    def build(
        self, hosts: Iterable[str], all_domains: Iterable[str] = ("calc",),
        hub_options: Mapping[str, Any] | None = None, **options: Any,
    ) -> HubService:
        """A hub (not started) running ``hosts`` out of ``all_domains`` (the others are remote)."""
        from bollydog.bootstrap import build

        hosts = list(hosts)
        domains = list(dict.fromkeys([*all_domains, *hosts]))
        config: dict[str, Any] = {d: {"handlers": DOMAINS[d]} for d in domains}
        config["distribute"] = self.section(**options)
        return build(config, exclude=[d for d in domains if d not in hosts], entrypoints=False,
                     hub_options=hub_options).hub

    @asynccontextmanager
    async def process(
        self, hosts: Iterable[str], all_domains: Iterable[str] = ("calc",),
        hub_options: Mapping[str, Any] | None = None, **options: Any,
    ) -> AsyncIterator[HubService]:
        """:meth:`build`, started."""
        async with self.build(hosts, all_domains, hub_options, **options) as hub:
            yield hub

    @property
    @abc.abstractmethod
    def reply_key(self) -> str:
        """A reply stream of a producer outside bollydog."""

    @abc.abstractmethod
    async def inject(self, domain: str, fields: Mapping[str, str | bytes], band: str = "normal") -> str:
        """Add an entry to ``domain``'s stream, as a producer outside bollydog; its id."""

    @abc.abstractmethod
    async def take(self, domain: str, count: int = 10) -> int:
        """Read ``domain``'s new entries as a consumer that dies without acknowledging them."""

    @abc.abstractmethod
    async def pending(self, domain: str, band: str = "normal") -> int:
        """Entries of ``domain``'s stream delivered and not acknowledged."""

    @abc.abstractmethod
    async def length(self, domain: str, band: str = "normal") -> int:
        """Entries in ``domain``'s stream (not acknowledged yet)."""

    @abc.abstractmethod
    async def read_replies(self, key: str) -> list[dict[str, str]]:
        """Every entry of reply stream ``key`` so far."""

    @abc.abstractmethod
    async def dead_letters(self) -> list[dict[str, str]]:
        """Every dead letter, oldest first, with its ``dl_id``."""

    @abc.abstractmethod
    async def consumers(self, domain: str) -> int:
        """How many consumers of ``domain`` are alive (their heartbeat has not expired)."""

    async def replies(self, key: str, count: int, timeout: float = 5.0) -> list[dict[str, str]]:
        """``count`` entries of reply stream ``key``, waiting up to ``timeout`` for them."""
        deadline = time.monotonic() + timeout
        while True:
            found = await self.read_replies(key)
            if len(found) >= count or time.monotonic() > deadline:
                assert len(found) == count, f"expected {count} replies, got {found}"
                return found
            await asyncio.sleep(0.01)


class MemoryDeployment(Deployment):
    def __init__(self) -> None:
        self.broker = MemoryBroker()

    def section(self, **options: Any) -> dict[str, Any]:
        return {"app": "bollydog.testing.MemoryTransport", "broker": self.broker, **options}

    @property
    def reply_key(self) -> str:
        return "raw-replies"

    def _key(self, domain: str, band: str) -> str:
        return self.broker.stream_key(domain, band)

    async def inject(self, domain: str, fields: Mapping[str, str | bytes], band: str = "normal") -> str:
        return self.broker.add(self._key(domain, band), fields)

    async def take(self, domain: str, count: int = 10) -> int:
        return len(self.broker.take(domain, GHOST, [self._key(domain, "normal")], count))

    async def pending(self, domain: str, band: str = "normal") -> int:
        return self.broker.pending(self._key(domain, band), domain)

    async def length(self, domain: str, band: str = "normal") -> int:
        return self.broker.length(self._key(domain, band))

    async def read_replies(self, key: str) -> list[dict[str, str]]:
        return self.broker.replies(key)

    async def dead_letters(self) -> list[dict[str, str]]:
        return self.broker.dead_letters(1000)

    async def consumers(self, domain: str) -> int:
        return len(self.broker.consumers(domain))


class RedisDeployment(Deployment):
    uncached = {"liveness_cache": 0}

    def __init__(self, url: str, prefix: str, raw: Any) -> None:
        self.url, self.prefix, self.raw = url, prefix, raw

    def section(self, **options: Any) -> dict[str, Any]:
        return {"app": "bollydog.transport.redis.RedisTransport", "url": self.url, "prefix": self.prefix,
                "block_ms": 500, **options}

    @property
    def reply_key(self) -> str:
        return f"{self.prefix}:raw-replies"

    def _key(self, domain: str, band: str) -> str:
        return f"{self.prefix}:stream:{domain}:{band}"

    async def inject(self, domain: str, fields: Mapping[str, str | bytes], band: str = "normal") -> str:
        return str(await self.raw.xadd(self._key(domain, band), dict(fields)))

    async def take(self, domain: str, count: int = 10) -> int:
        from redis.exceptions import ResponseError

        stream = self._key(domain, "normal")
        try:
            await self.raw.xgroup_create(stream, domain, id="0", mkstream=True)
        except ResponseError as exc:
            assert "BUSYGROUP" in str(exc)
        response = await self.raw.xreadgroup(domain, GHOST, {stream: ">"}, count=count)
        return sum(len(entries) for _, entries in response or ())

    async def pending(self, domain: str, band: str = "normal") -> int:
        from redis.exceptions import ResponseError

        try:
            return int((await self.raw.xpending(self._key(domain, band), domain))["pending"])
        except ResponseError:  # no group yet
            return 0

    async def length(self, domain: str, band: str = "normal") -> int:
        return int(await self.raw.xlen(self._key(domain, band)))

    async def read_replies(self, key: str) -> list[dict[str, str]]:
        return [fields for _, fields in await self.raw.xrange(key)]

    async def dead_letters(self) -> list[dict[str, str]]:
        return [{"dl_id": i, **f} for i, f in await self.raw.xrange(f"{self.prefix}:deadletter")]

    async def consumers(self, domain: str) -> int:
        seconds, micros = await self.raw.time()
        now = int(seconds) * 1000 + int(micros) // 1000
        return int(await self.raw.zcount(f"{self.prefix}:consumers:{domain}", f"({now}", "+inf"))
