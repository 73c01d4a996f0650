"""RedisTransport: Commands and Events between processes over Redis Streams.

Every process hosting a domain reads its streams in the domain's consumer group, so N processes
share the load. An entry is acknowledged once its handler finished and its reply was sent (XADD
reply, XACK, XDEL in one round trip). Writes on the hot paths (request XADDs, publishes, replies
and acknowledgements) go through a PipelineCoalescer: what concurrent tasks write in one
event-loop iteration shares one pipeline. A consumer that dies leaves its entries pending;
another one claims them with XAUTOCLAIM once they are idle for ``claim_idle`` seconds. Entries
delivered more than ``max_deliveries`` times, and entries that are not valid envelopes, go to
the dead-letter stream. Handler exceptions are replies, not redeliveries. A request for a domain
with no live consumer is refused (NoConsumerError) rather than sent, unless its class waits for
one. Partial results of a remote generator handler come back on the reply stream before the
reply, when the caller listens to them (partials.py). See docs/distribute.md.

The parts, each a module of this package: ``options`` (the options, the key layout),
``connections`` (clients, blocking readers, backoff), ``producer`` (requests, replies, events),
``consumer`` (a domain's read loop, what a delivery writes), ``reclaimer`` (heartbeat, keeping
entries alive, taking over a dead consumer's), ``deadletters`` (the dead-letter stream),
``notices`` (completion notices on a pub/sub channel, for WebSocket subscribers elsewhere).

Lifecycle (a ``mode`` service the hub starts after its apps, see :mod:`bollydog.hub.transport`
and :mod:`bollydog.transport.streams`): the reply reader runs from start to the very end;
starting announces this process as a consumer of its domains and starts a
:class:`~bollydog.transport.redis.consumer.DomainConsumer` (with its
:class:`~bollydog.transport.redis.reclaimer.Reclaimer`) per domain. Stopping withdraws the
heartbeats, stops the consumers' reads, gives in-flight deliveries ``grace`` seconds (their own
remote requests still get their replies), cancels the rest (unacknowledged: reclaimed
elsewhere), stops the reply reader, fails the requests still waiting, deletes the reply stream
and closes the connections.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bollydog.models.base import BaseMessage
from bollydog.transport.liveness import Liveness
from bollydog.transport.options import parse
from bollydog.transport.redis.connections import NETWORK_ERRORS, Connections
from bollydog.transport.redis.consumer import DomainConsumer, RedisDelivery
from bollydog.transport.redis.deadletters import RedisDeadLetters
from bollydog.transport.redis.notices import RedisNotices
from bollydog.transport.redis.options import Keys, RedisOptions
from bollydog.transport.redis.producer import RedisProducer, ReplyReader
from bollydog.transport.streams import StreamTransport

__all__ = ["RedisTransport"]

log = logging.getLogger("bollydog.transport.redis")


class RedisTransport(StreamTransport[RedisProducer, RedisDelivery]):
    """Redis Streams transport. Options (all optional) come from the config section:

    ``url``, ``prefix``, ``consumer`` (name in the groups; set a stable one per instance to
    resume its own pending entries after a restart), ``concurrency`` (handlers in flight),
    ``batch`` (entries per read), ``block_ms``, ``claim_idle`` and ``claim_interval``
    (seconds), ``max_deliveries``, ``maxlen`` (approximate stream cap, None for none),
    ``delete_acked``, ``dedup_ttl`` (seconds, 0 = off), ``reply_maxlen``, ``high_priority``,
    ``accept``/``reject`` (fnmatch patterns on ``domain.name``), ``op_timeout``,
    ``reconnect_backoff``/``reconnect_backoff_max``, ``deadletter_maxlen``, ``grace``,
    ``max_connections`` (command connections; blocking readers have their own),
    ``consumer_ttl`` (seconds a consumer's heartbeat lasts), ``liveness_cache`` (seconds a
    producer trusts "this domain has a live consumer"), ``wait_for_consumer`` (queue every
    command even when its domain has no live consumer, as if each class set it),
    ``notice_interval`` and ``notice_buffer`` (completion notices, :mod:`bollydog.transport.notices`).
    Parsed into :class:`RedisOptions` (:attr:`settings`); a bad one is a ``ConfigError``.
    """

    def __init__(self, url: str | None = None, **options: Any) -> None:
        settings = parse(RedisOptions, {**options, "url": url} if url else options, "RedisTransport")
        self.keys = Keys(settings.prefix, settings.consumer)
        self.liveness = Liveness(settings.prefix, settings.consumer, settings.consumer_ttl, settings.liveness_cache)
        self.connections = Connections(settings)
        super().__init__(settings, RedisProducer(self.connections, self.keys, settings, self.liveness))
        self.settings: RedisOptions = settings
        self.options = {"url": settings.url, "prefix": settings.prefix, "consumer": settings.consumer}
        self.deadletters = RedisDeadLetters(self.connections, self.keys, settings)
        # First started, last stopped: in-flight deliveries' own requests get their replies.
        self.add_dependency(ReplyReader(self.connections, self.producer))

    # -- what the tests, the CLI and the docs name ---------------------------------------------

    @property
    def url(self) -> str:
        return self.settings.url

    @property
    def prefix(self) -> str:
        return self.settings.prefix

    @property
    def reply_key(self) -> str:
        return self.keys.reply

    @property
    def deadletter_key(self) -> str:
        return self.keys.deadletter

    def stream(self, domain: str, band: str) -> str:
        return self.keys.stream(domain, band)

    # -- the storage steps of the lifecycle (see bollydog.transport.streams) -------------------

    def delivery(self) -> RedisDelivery:
        return RedisDelivery(
            self.hub, self.connections, self.keys, self.settings, self.deadletters, self.accepts, lambda: self.should_stop
        )

    def notice_feed(self) -> RedisNotices:
        return RedisNotices(self.hub, self.connections, self.keys, self.settings)

    def consumer_of(self, domain: str, delivery: RedisDelivery) -> DomainConsumer:
        return DomainConsumer(
            self.hub, domain, self.connections, self.keys, self.settings, self.inflight, delivery, self.liveness
        )

    async def on_start(self) -> None:
        await super().on_start()
        if self.hosted:
            log.info("consuming %s from %s as %s", ", ".join(self.hosted), self.url, self.consumer)

    async def on_shutdown(self) -> None:
        try:
            async with asyncio.timeout(self.settings.op_timeout):
                await self.connections.client.delete(self.keys.reply)
        except (*NETWORK_ERRORS, TimeoutError):
            pass
        await super().on_shutdown()

    async def claim_once(self, key: str, ttl: float) -> bool:
        # SET NX PX: the first process to write the key owns it until it expires; the others
        # see it taken. A network error raises (the caller skips rather than risks a double).
        async with asyncio.timeout(self.settings.op_timeout):
            claimed = await self.connections.client.set(
                self.keys.claim(key), self.consumer, nx=True, px=max(1, int(ttl * 1000))
            )
        return bool(claimed)

    async def announce(self, domains: list[str]) -> None:
        try:
            async with asyncio.timeout(self.settings.op_timeout):
                await self.liveness.announce(self.connections.client, domains)
        except (*NETWORK_ERRORS, TimeoutError) as exc:
            # Not fatal: the reclaimers renew it; meanwhile producers may refuse our domains.
            log.warning("could not announce consumer %s of %s: %s: %s", self.consumer, ", ".join(domains),
                        type(exc).__name__, exc)

    async def withdraw(self, domains: list[str]) -> None:
        try:
            async with asyncio.timeout(self.settings.op_timeout):
                await self.liveness.withdraw(self.connections.client, domains)
        except (*NETWORK_ERRORS, TimeoutError) as exc:  # it expires after consumer_ttl anyway
            log.debug("could not withdraw consumer %s: %s", self.consumer, exc)

    async def probe(self) -> str | None:
        """One ``PING`` within ``op_timeout``: None when Redis answers, else why not (the URL
        without its password)."""
        where = _without_password(self.url)
        try:
            async with asyncio.timeout(self.settings.op_timeout):
                await self.connections.client.ping()
        except TimeoutError:
            return f"cannot reach Redis at {where}: no answer within {self.settings.op_timeout}s (op_timeout)"
        except NETWORK_ERRORS as exc:
            return f"cannot reach Redis at {where}: {exc}"
        return None

    async def send_event(self, event: BaseMessage, name: str, domains: tuple[str, ...]) -> None:
        await self.producer.publish(event, name, domains)

    # -- dead letters (bollydog deadletters) ----------------------------------------------------

    async def dead_letters(self, count: int = 100) -> list[dict[str, str]]:
        """The oldest ``count`` dead letters: their fields plus ``dl_id`` (the entry id)."""
        return await self.deadletters.read(count)

    async def replay(self, ids: Iterable[str] | None = None) -> list[str]:
        """Put dead letters back on their streams (all when ``ids`` is None); the ids replayed."""
        return await self.deadletters.replay(ids)

    async def close(self) -> None:
        """Close the connections (stopping does it too)."""
        await self.connections.close()


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{(parts.username or '')}:***@{netloc[2]}"))
