"""The Redis transport's consumer side: one read loop per hosted domain, and what a delivery writes.

:class:`DomainConsumer` reads the domain's two streams in the domain's consumer group
(``XREADGROUP``), first this consumer's own pending entries (a restart under the same name), then
new ones, the high band first under backlog, and starts a delivery per entry, at most
``concurrency`` at once across the process (:class:`~bollydog.transport.inflight.Inflight`).
It stops reading when its hub stops taking work, and withdraws its heartbeat then.

:class:`RedisDelivery` is the Redis half of a delivery (:mod:`bollydog.transport.delivery`):
once the handler finished, the reply XADD, the dedup record, XACK and XDEL go in one round trip
shared with the other deliveries finishing in the same loop iteration (coalesced).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from bollydog.transport.delivery import Acceptance, Deliverer, Entry
from bollydog.transport.inflight import Inflight
from bollydog.transport.liveness import Liveness
from bollydog.transport.options import HIGH, NORMAL
from bollydog.transport.partials import Write
from bollydog.transport.redis.connections import NETWORK_ERRORS, Backoff, Connections, Outage, ReaderService
from bollydog.transport.redis.deadletters import RedisDeadLetters
from bollydog.transport.redis.options import Keys, RedisOptions
from bollydog.transport.redis.reclaimer import Reclaimer

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.hub.transport import TransportHost

__all__ = ["DomainConsumer", "RedisDelivery"]

log = logging.getLogger("bollydog.transport.redis")

#: Attempts at acknowledging a finished delivery before leaving it to be redelivered.
_ACK_ATTEMPTS = 5


class RedisDelivery(Deliverer):
    """Replies, acknowledgements and dead letters in Redis."""

    def __init__(
        self, hub: "TransportHost", connections: Connections, keys: Keys, options: RedisOptions,
        dead_letters: RedisDeadLetters, accepts: Acceptance, stopping: Callable[[], bool],
    ) -> None:
        super().__init__(hub, keys.consumer, accepts, options.max_deliveries)
        self.stopping = stopping  # the transport stops: an acknowledgement is not retried
        self.connections = connections
        self.keys = keys
        self.options = options
        self.dead_letters = dead_letters

    async def finish(
        self, entry: Entry, reply_to: str | None, reply: dict[str, str] | None, dedup_key: str | None
    ) -> None:
        options = self.options
        commands: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        if reply_to and reply is not None:
            commands.append(("xadd", (reply_to, reply), {"maxlen": options.reply_maxlen, "approximate": True}))
        if dedup_key is not None:
            commands.append(("set", (dedup_key, json.dumps(reply or {})), {"ex": max(1, int(options.dedup_ttl))}))
        commands.append(("xack", (entry.stream, entry.domain, entry.entry_id), {}))
        if options.delete_acked:
            commands.append(("xdel", (entry.stream, entry.entry_id), {}))
        backoff = Backoff(options.reconnect_backoff, options.reconnect_backoff_max)
        for attempt in range(1, _ACK_ATTEMPTS + 1):
            try:
                await self.connections.writes.run(*commands)
                return
            except NETWORK_ERRORS as exc:
                if attempt == _ACK_ATTEMPTS or self.stopping():
                    log.error("could not acknowledge %s %s (%s); it stays pending and will be redelivered",
                              entry.stream, entry.entry_id, exc)
                    return
                await asyncio.sleep(backoff.next())

    async def store_dead_letter(
        self, entry: Entry, letter: dict[str, str], reply_to: str | None, reply: dict[str, str] | None
    ) -> str | None:
        return await self.dead_letters.add(entry, letter, reply_to, reply)

    def reply_writer(self, reply_to: str) -> Write:
        writes, maxlen = self.connections.writes, self.options.reply_maxlen

        async def write(entries: list[dict[str, str]]) -> None:
            await writes.run(*(("xadd", (reply_to, entry), {"maxlen": maxlen, "approximate": True}) for entry in entries))

        return write

    def dedup_key(self, entry: Entry, message_id: str) -> str | None:
        return self.keys.done(entry.domain, message_id) if self.options.dedup_ttl else None

    async def recall(self, dedup_key: str) -> tuple[bool, dict[str, str] | None]:
        try:
            async with self.connections.bounded():
                cached = await self.connections.client.get(dedup_key)
        except NETWORK_ERRORS:
            return False, None
        if cached is None:
            return False, None
        return True, json.loads(cached) or None


class DomainConsumer(ReaderService):
    """Consumes one domain's streams for the hub (see the module documentation)."""

    def __init__(
        self, hub: "TransportHost", domain: str, connections: Connections, keys: Keys, options: RedisOptions,
        inflight: Inflight, delivery: RedisDelivery, liveness: Liveness,
    ) -> None:
        super().__init__(connections, f"consume:{domain}")
        self.hub = hub
        self.domain = domain
        self.keys = keys
        self.options = options
        self.inflight = inflight
        self.delivery = delivery
        self.liveness = liveness
        self.streams = (keys.stream(domain, HIGH), keys.stream(domain, NORMAL))
        self.add_dependency(Reclaimer(self))

    async def run(self) -> None:
        try:
            await self._read()
        finally:
            # Not reading any more (stopping, or the hub stopped taking work): producers must
            # not count on this process for new requests of the domain.
            await self.withdraw()

    async def withdraw(self) -> None:
        try:
            async with asyncio.timeout(self.options.op_timeout):
                await self.liveness.withdraw(self.connections.client, [self.domain])
        except (*NETWORK_ERRORS, TimeoutError) as exc:  # it expires after consumer_ttl anyway
            log.debug("could not withdraw consumer %s: %s", self.keys.consumer, exc)

    async def _ensure_groups(self) -> None:
        for stream in self.streams:
            try:
                # From id 0: entries produced before any consumer existed are consumed too.
                async with self.connections.bounded():
                    await self.connections.client.xgroup_create(stream, self.domain, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def _read(self) -> None:
        domain, consumer, options, inflight = self.domain, self.keys.consumer, self.options, self.inflight
        high, normal = self.streams
        backoff = Backoff(options.reconnect_backoff, options.reconnect_backoff_max)
        outage = Outage(f"reading {domain}")
        ready = False
        resume = True  # first, this consumer's own pending entries (a restart with the same name)
        backlog = True
        while not self.stopping() and self.hub.accepting:
            await inflight.capacity.wait()
            count = inflight.room(options.batch)
            try:
                if not ready:
                    await self._ensure_groups()
                    ready = True
                response = None
                if resume:
                    response = await self.reader.read("xreadgroup", domain, consumer, {high: "0", normal: "0"}, count=1000)
                elif backlog:  # under backlog, drain the high band before looking at the normal one
                    response = await self.reader.read("xreadgroup", domain, consumer, {high: ">"}, count=count)
                if self.stopping():
                    return
                if not response and not resume:
                    response = await self.reader.read(
                        "xreadgroup", domain, consumer, {high: ">", normal: ">"}, count=count, block=options.block_ms,
                    )
            except ResponseError as exc:
                if "NOGROUP" in str(exc):  # Redis restarted empty, or the stream was deleted
                    log.warning("consumer group of %s is gone; recreating it", domain)
                    ready = False
                    continue
                delay = backoff.next()
                log.error("reading %s failed: %s; retrying in %.2fs", domain, exc, delay)
                await self.sleep(delay)
                continue
            except NETWORK_ERRORS as exc:
                if self.stopping():
                    return
                delay = backoff.next()
                outage.failed(exc, delay)
                await self.sleep(delay)
                continue
            backoff.reset()
            outage.recovered()
            received = 0
            for stream, entries in response or ():
                for entry_id, fields in entries:
                    received += 1
                    self.deliver(stream, entry_id, fields)
            backlog = resume or received >= count
            resume = False
            if received:
                # Let the deliveries just started take their first step (a fast handler: up to
                # its reply, written at once) before this loop spends its time on the next read.
                await asyncio.sleep(0)

    def deliver(self, stream: str, entry_id: str, fields: dict[str, str] | None) -> None:
        """Deliver that entry in a task of its own; ``fields`` None: it was deleted from the
        stream meanwhile (only acknowledged)."""
        entry = Entry(stream, self.domain, entry_id, fields or {})
        if fields is None:
            self.inflight.start(self.delivery.finish(entry, None, None, None), stream, self.domain, entry_id)
        else:
            self.inflight.start(self.delivery.deliver(entry), stream, self.domain, entry_id)
