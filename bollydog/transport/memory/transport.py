"""MemoryTransport: the Redis transport's behaviour over a :class:`MemoryBroker`, for tests.

It shares with :class:`~bollydog.transport.redis.RedisTransport` everything that is not
storage: the wire format (entries are the envelopes of docs/distribute.md, so results come back
as JSON and errors are rebuilt as across processes), the handling of an entry
(:mod:`bollydog.transport.delivery`), request/reply (:mod:`bollydog.transport.requests`),
partial results, the bound on deliveries in flight, and the options and their meaning:
``consumer``, ``concurrency``, ``batch``, ``claim_idle``, ``claim_interval``,
``max_deliveries``, ``high_priority``, ``accept``/``reject``, ``grace``, ``consumer_ttl``,
``wait_for_consumer``, ``notice_interval`` and ``notice_buffer``. The passing of time is real
(``claim_idle: 0.2`` in a test).

Lifecycle as the Redis transport's: a :class:`MemoryConsumer` per hosted domain (its read loop
and its upkeep are tasks of the service), replies taken from start to the very end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from mode import Service

from bollydog.context import get_session
from bollydog.errors import TransportError
from bollydog.models.base import BaseMessage
from bollydog.transport import wire
from bollydog.transport.delivery import Acceptance, Deliverer, Entry
from bollydog.transport.inflight import Inflight
from bollydog.transport.memory.broker import MemoryBroker
from bollydog.transport.notices import NoticeFeed
from bollydog.transport.options import HIGH, NORMAL, StreamOptions, parse
from bollydog.transport.partials import Write
from bollydog.transport.requests import Requester
from bollydog.transport.streams import StreamTransport

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.hub.transport import TransportHost

__all__ = [
    "MemoryConsumer", "MemoryDelivery", "MemoryNotices", "MemoryOptions", "MemoryProducer", "MemoryTransport",
]

log = logging.getLogger("bollydog.transport.memory")


class MemoryOptions(StreamOptions):
    """The options of :class:`MemoryTransport`: those the stream transports share."""


class MemoryProducer(Requester):
    """Sends requests and events to the broker's streams; replies come from the broker's
    listener (:meth:`~bollydog.transport.requests.Requester.receive`)."""

    def __init__(self, broker: MemoryBroker, options: MemoryOptions) -> None:
        super().__init__("the in-memory transport", wait_for_consumer=options.wait_for_consumer)
        self.broker = broker
        self.options = options
        self._reply_to = f"reply:{options.consumer}"

    @property
    def reply_to(self) -> str:
        return self._reply_to

    async def has_consumer(self, message: BaseMessage, domain: str) -> bool:
        return self.broker.alive(domain)

    async def send(self, message: BaseMessage, domain: str, fields: dict[str, str]) -> None:
        self.broker.add(self.broker.stream_key(domain, self.options.band(message.priority)), fields)

    def publish(self, event: BaseMessage, name: str, domains: tuple[str, ...]) -> None:
        fields = wire.encode(event, name, session=get_session())
        for domain in domains:
            self.broker.add(self.broker.stream_key(domain, self.options.band(event.priority)), fields)


class MemoryDelivery(Deliverer):
    """Replies, acknowledgements and dead letters in the broker."""

    def __init__(self, hub: "TransportHost", broker: MemoryBroker, options: MemoryOptions, accepts: Acceptance) -> None:
        super().__init__(hub, options.consumer, accepts, options.max_deliveries)
        self.broker = broker

    async def finish(
        self, entry: Entry, reply_to: str | None, reply: dict[str, str] | None, dedup_key: str | None
    ) -> None:
        if reply_to and reply is not None:
            self.broker.reply(reply_to, reply)
        self.broker.ack(entry.stream, entry.domain, entry.entry_id)

    async def store_dead_letter(
        self, entry: Entry, letter: dict[str, str], reply_to: str | None, reply: dict[str, str] | None
    ) -> str | None:
        dead_letter_id = self.broker.add_dead_letter(letter)
        if reply_to and reply is not None:
            self.broker.reply(reply_to, reply)
        self.broker.ack(entry.stream, entry.domain, entry.entry_id)
        return dead_letter_id

    def reply_writer(self, reply_to: str) -> Write:
        broker = self.broker

        async def write(entries: list[dict[str, str]]) -> None:
            for entry in entries:
                broker.reply(reply_to, entry)

        return write


class MemoryNotices(NoticeFeed):
    """Completion notices over the broker's notice channel."""

    def __init__(self, hub: "TransportHost", broker: MemoryBroker, options: MemoryOptions) -> None:
        super().__init__(hub, options.consumer, options.notice_interval, options.notice_buffer)
        self.broker = broker

    async def listeners(self) -> int:
        return self.broker.watchers()

    async def send(self, notices: list[str]) -> None:
        self.broker.notify(notices)

    async def listen(self) -> None:
        self.broker.watch(self.origin, self.receive)

    async def unlisten(self) -> None:
        self.broker.unwatch(self.origin)


class MemoryConsumer(Service):
    """Consumes one domain's streams of the broker for the hub: reads (own pending entries
    first, then new ones, high band first) and keeps up (heartbeat, touching long deliveries,
    claiming idle entries, dead-lettering those delivered too often)."""

    mundane_level = "debug"

    def __init__(
        self, hub: "TransportHost", domain: str, broker: MemoryBroker, options: MemoryOptions,
        inflight: Inflight, delivery: MemoryDelivery,
    ) -> None:
        super().__init__()
        self.hub = hub
        self.domain = domain
        self.broker = broker
        self.options = options
        self.inflight = inflight
        self.delivery = delivery
        self.streams = (broker.stream_key(domain, HIGH), broker.stream_key(domain, NORMAL))

    def _stopping(self) -> bool:
        return bool(self.should_stop)

    @Service.task
    async def _read(self) -> None:
        broker, options, inflight = self.broker, self.options, self.inflight
        try:
            for stream, entry in broker.own(self.domain, options.consumer, self.streams):
                self.deliver(stream, entry.id, entry.fields)
            while not self._stopping() and self.hub.accepting:
                await inflight.capacity.wait()
                taken = await broker.read_group(self.domain, options.consumer, self.streams, inflight.room(options.batch))
                for stream, entry in taken:
                    self.deliver(stream, entry.id, entry.fields)
        finally:
            broker.withdraw(self.domain, options.consumer)

    @Service.task
    async def _upkeep(self) -> None:
        options = self.options
        tick = min(options.claim_interval, options.claim_idle / 3, options.consumer_ttl / 3)
        next_claim = time.monotonic() + options.claim_interval
        async for _ in self.itertimer(tick, name=f"bollydog-memory-upkeep-{self.domain}"):
            if self.hub.accepting:
                self.broker.announce(self.domain, options.consumer, options.consumer_ttl)
            for stream, ids in self.inflight.stale(self.domain, options.claim_idle / 3).items():
                self.broker.touch(stream, self.domain, options.consumer, ids)
            if time.monotonic() >= next_claim:
                next_claim = time.monotonic() + options.claim_interval
                for stream in self.streams:
                    await self._claim(stream)

    async def _claim(self, stream: str) -> None:
        options, inflight = self.options, self.inflight
        if len(inflight) >= options.concurrency:
            return
        claimed = self.broker.claim(
            stream, self.domain, options.consumer, options.claim_idle, inflight.room(options.batch),
            lambda entry_id: inflight.holds(stream, entry_id),
        )
        for entry, times in claimed:
            if times > options.max_deliveries:
                await self.delivery.dead_letter(
                    Entry(stream, self.domain, entry.id, entry.fields),
                    f"delivered {times} times without an acknowledgement "
                    f"(max_deliveries={options.max_deliveries}): its consumers died or hung",
                    TransportError("delivered too many times; moved to the dead-letter stream"),
                )
            else:
                log.info("reclaimed %s %s (delivery %d)", stream, entry.id, times)
                self.deliver(stream, entry.id, entry.fields)

    def deliver(self, stream: str, entry_id: str, fields: dict[str, str]) -> None:
        """Deliver that entry in a task of its own."""
        self.inflight.start(self.delivery.deliver(Entry(stream, self.domain, entry_id, fields)), stream,
                            self.domain, entry_id)

    async def on_stop(self) -> None:
        self.broker.wake(self.streams)  # the read loop returns instead of being cancelled


class MemoryTransport(StreamTransport[MemoryProducer, MemoryDelivery]):
    """A transport whose "Redis server" is ``broker`` (a fresh one when omitted: one process).

    Give every hub of a test deployment the same :class:`MemoryBroker`::

        broker = MemoryBroker()
        config = {..., "distribute": {"app": "bollydog.testing.MemoryTransport", "broker": broker}}
        front, worker = build(config, exclude=["shop"]).hub, build(config, include=["shop"]).hub

    Other options are those of the Redis transport that concern consuming (module docs).
    """

    def __init__(self, broker: MemoryBroker | None = None, **options: Any) -> None:
        settings = parse(MemoryOptions, options, "MemoryTransport")
        self.broker = broker if broker is not None else MemoryBroker()
        super().__init__(settings, MemoryProducer(self.broker, settings))
        self.settings: MemoryOptions = settings
        self.options = {"consumer": settings.consumer}

    @property
    def reply_key(self) -> str:
        return self.producer.reply_to

    def stream(self, domain: str, band: str) -> str:
        return self.broker.stream_key(domain, band)

    # -- the storage steps of the lifecycle (see bollydog.transport.streams) -------------------

    def delivery(self) -> MemoryDelivery:
        return MemoryDelivery(self.hub, self.broker, self.settings, self.accepts)

    def consumer_of(self, domain: str, delivery: MemoryDelivery) -> MemoryConsumer:
        return MemoryConsumer(self.hub, domain, self.broker, self.settings, self.inflight, delivery)

    def notice_feed(self) -> MemoryNotices:
        return MemoryNotices(self.hub, self.broker, self.settings)

    async def on_start(self) -> None:
        self.broker.listen(self.producer.reply_to, self.producer.receive)
        await super().on_start()

    async def on_shutdown(self) -> None:
        await super().on_shutdown()
        self.broker.unlisten(self.producer.reply_to)

    async def announce(self, domains: list[str]) -> None:
        for domain in domains:
            self.broker.announce(domain, self.consumer, self.settings.consumer_ttl)

    async def withdraw(self, domains: list[str]) -> None:
        for domain in domains:
            self.broker.withdraw(domain, self.consumer)

    async def claim_once(self, key: str, ttl: float) -> bool:
        return self.broker.claim_once(key, ttl)

    async def send_event(self, event: BaseMessage, name: str, domains: tuple[str, ...]) -> None:
        self.producer.publish(event, name, domains)

    # -- dead letters (the DeadLetterStore port, as bollydog deadletters uses it) --------------

    async def dead_letters(self, count: int = 100) -> list[dict[str, str]]:
        return self.broker.dead_letters(count)

    async def replay(self, ids: Iterable[str] | None = None) -> list[str]:
        return self.broker.replay(ids)
