"""A hosted domain's upkeep: this consumer's heartbeat, its long deliveries kept alive, and the
entries of dead consumers taken over.

Every tick (a third of ``claim_idle``, of ``consumer_ttl``, at most ``claim_interval``) the
:class:`Reclaimer` renews the heartbeat while the hub takes work, resets the idle time of the
entries its own handlers have been running for a third of ``claim_idle`` (``XCLAIM ... JUSTID``:
idle time, not delivery count), and every ``claim_interval`` takes over the entries left pending
for ``claim_idle`` seconds (``XAUTOCLAIM``), as many as there is room for. An entry delivered more
than ``max_deliveries`` times goes to the dead letters instead: its consumers keep dying on it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from mode import Service

from bollydog.errors import TransportError
from bollydog.transport.delivery import Entry
from bollydog.transport.redis.connections import NETWORK_ERRORS

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.transport.redis.consumer import DomainConsumer

__all__ = ["Reclaimer"]

log = logging.getLogger("bollydog.transport.redis")


class Reclaimer(Service):
    """The upkeep of ``consumer``'s domain; a dependency of the consumer, stopped with it."""

    mundane_level = "debug"

    def __init__(self, consumer: "DomainConsumer") -> None:
        super().__init__()
        self.consumer = consumer
        options = consumer.options
        # Touch often enough that our entries never look idle for claim_idle (touched when a
        # third of it has passed, checked at least every third): idle stays under 2/3 claim_idle.
        # The heartbeat likewise renews at least every third of its ttl.
        self.tick = min(options.claim_interval, options.claim_idle / 3, options.consumer_ttl / 3)

    @Service.task
    async def _upkeep(self) -> None:
        consumer = self.consumer
        interval = consumer.options.claim_interval
        next_claim = time.monotonic() + interval
        async for _ in self.itertimer(self.tick, name=f"bollydog-redis-upkeep-{consumer.domain}"):
            try:
                if consumer.hub.accepting and not consumer.should_stop:
                    async with consumer.connections.bounded():
                        await consumer.liveness.announce(consumer.connections.client, [consumer.domain])
                await self._touch()
                if time.monotonic() >= next_claim and not consumer.should_stop:
                    next_claim = time.monotonic() + interval
                    for stream in consumer.streams:
                        await self._claim(stream)
            except NETWORK_ERRORS as exc:
                log.debug("upkeep of %s: %s", consumer.domain, exc)

    async def _touch(self) -> None:
        consumer = self.consumer
        stale = consumer.inflight.stale(consumer.domain, consumer.options.claim_idle / 3)
        for stream, ids in stale.items():
            async with consumer.connections.bounded():
                await consumer.connections.client.xclaim(
                    stream, consumer.domain, consumer.keys.consumer, 0, ids, justid=True
                )

    async def _claim(self, stream: str) -> None:
        consumer = self.consumer
        client, options, inflight = consumer.connections.client, consumer.options, consumer.inflight
        domain, name = consumer.domain, consumer.keys.consumer
        start = "0-0"
        while not consumer.should_stop and len(inflight) < options.concurrency:
            async with consumer.connections.bounded():
                response = await client.xautoclaim(
                    stream, domain, name, int(options.claim_idle * 1000), start_id=start,
                    count=inflight.room(options.batch),
                )
            start = response[0]
            claimed = [(i, f) for i, f in response[1] if not inflight.holds(stream, i)]
            if claimed:
                ids = [i for i, _ in claimed]
                async with consumer.connections.bounded():
                    pending = await client.xpending_range(
                        stream, domain, min=ids[0], max=ids[-1], count=len(ids) + len(inflight) + 16,
                        consumername=name,
                    )
                deliveries = {p["message_id"]: p["times_delivered"] for p in pending}
                for entry_id, fields in claimed:
                    times = deliveries.get(entry_id, 1)
                    if fields is not None and times > options.max_deliveries:
                        await consumer.delivery.dead_letter(
                            Entry(stream, domain, entry_id, fields),
                            f"delivered {times} times without an acknowledgement "
                            f"(max_deliveries={options.max_deliveries}): its consumers died or hung",
                            TransportError("delivered too many times; moved to the dead-letter stream"),
                        )
                    else:
                        if fields is not None:
                            log.info("reclaimed %s %s (delivery %d)", stream, entry_id, times)
                        consumer.deliver(stream, entry_id, fields)
            if start in ("0-0", "0"):
                return
