"""StreamTransport: the lifecycle and routing every stream transport shares.

A stream transport consumes, for each domain its hub runs, that domain's streams in the
domain's consumer group, and sends the messages of the other domains to theirs. Redis and the
in-memory broker differ in storage only; this base class is the rest, once:

- **start**: check ``accept``/``reject`` against the hub's names; take requests; announce this
  process as a consumer of the hub's domains (before any read: once it is up, producers send
  it work); then one consumer service per domain starts, as a dependency of the transport.
  A client only (``consume`` False, one-shot CLI runs) stops after taking requests;
- **stop**: withdraw the heartbeats (producers refuse new requests unless another consumer
  lives); stop the consumers' reads; give the deliveries still running ``grace`` seconds (the
  hub's ``shutdown_grace`` by default), then cancel them: unacknowledged, another consumer
  reclaims them. mode then stops the transport's other dependencies (a reply reader, the
  completion notices of :mod:`bollydog.transport.notices`, started with the consumers);
- **shutdown**: requests still waiting get a :class:`TransportError`; the consumers are
  dropped (a restart makes new ones); the storage closes (:meth:`StreamTransport.close`).
"""

from __future__ import annotations

import abc
import asyncio
from typing import Any, Generic, TypeVar

from mode import Service

from bollydog.errors import TransportError
from bollydog.hub.transport import Transport
from bollydog.models.base import BaseMessage
from bollydog.transport.delivery import Acceptance, Deliverer
from bollydog.transport.inflight import Inflight
from bollydog.transport.notices import NoticeFeed
from bollydog.transport.options import StreamOptions
from bollydog.transport.requests import Requester

__all__ = ["StreamTransport"]

ProducerT = TypeVar("ProducerT", bound=Requester)
DeliveryT = TypeVar("DeliveryT", bound=Deliverer)


class StreamTransport(Transport, Generic[ProducerT, DeliveryT]):
    """Base of the stream transports: ``settings`` parsed, ``producer`` sends requests (and
    takes their replies), :meth:`delivery` handles the entries the consumers read."""

    def __init__(self, settings: StreamOptions, producer: ProducerT) -> None:
        super().__init__()
        self.settings = settings
        self.producer = producer
        self.inflight = Inflight(settings.concurrency)
        #: Whether this process takes ``domain.name`` from the transport (accept/reject).
        self.accepts = Acceptance(settings.message_filter())
        self.hosted: list[str] = []  # the domains consumed here: the hub's, from start on
        self._consumers: list[Service] = []
        #: This process's completion notices (from start on).
        self.notices: NoticeFeed | None = None

    @property
    def consumer(self) -> str:
        """This process's name in the consumer groups."""
        return self.settings.consumer

    @property
    def consumers(self) -> tuple[Service, ...]:
        """The consumers of the hosted domains, one each (from start on)."""
        return tuple(self._consumers)

    # -- what each transport fills in ----------------------------------------------------------

    @abc.abstractmethod
    def delivery(self) -> DeliveryT:
        """How this transport's entries are handled for the hub (made at each start)."""

    @abc.abstractmethod
    def consumer_of(self, domain: str, delivery: DeliveryT) -> Service:
        """The service consuming ``domain``'s streams."""

    @abc.abstractmethod
    def notice_feed(self) -> NoticeFeed:
        """The completion notices of this process (made at each start)."""

    @abc.abstractmethod
    async def announce(self, domains: list[str]) -> None:
        """Tell producers this process consumes ``domains``; never raises."""

    @abc.abstractmethod
    async def withdraw(self, domains: list[str]) -> None:
        """Tell producers this process no longer consumes ``domains``; never raises."""

    @abc.abstractmethod
    async def send_event(self, event: BaseMessage, name: str, domains: tuple[str, ...]) -> None:
        """Add ``event`` (canonical name ``name``) to each of ``domains``' streams."""

    async def close(self) -> None:
        """Release the storage's connections (stopping does it too)."""

    # -- lifecycle -------------------------------------------------------------------------------

    async def on_start(self) -> None:
        hub = self.hub
        if self.settings.filters:
            self.settings.message_filter().check(hub.registry.names(), "distribute", hub.registry.unloaded_domains())
        # A client only (consume False) hosts nothing: no announce, no consumer group read.
        self.hosted = [d for d in hub.apps if d != "bollydog"] if self.consume else []
        self.producer.open()
        await self.announce(self.hosted)
        delivery = self.delivery()
        for domain in self.hosted:
            consumer = self.consumer_of(domain, delivery)
            self._consumers.append(consumer)
            self.add_dependency(consumer)
        self.notices = self.notice_feed()
        self.add_dependency(self.notices)

    async def on_stop(self) -> None:
        await self.withdraw(self.hosted)
        await asyncio.gather(*(consumer.stop() for consumer in self._consumers))
        grace = self.settings.grace
        await self.inflight.drain(self.hub.shutdown_grace if grace is None else grace)

    async def on_shutdown(self) -> None:
        self.producer.close(TransportError(f"{self.producer.name} stopped before the reply arrived"))
        for consumer in self._consumers:
            await self.remove_dependency(consumer)
        self._consumers.clear()
        if self.notices is not None:
            await self.remove_dependency(self.notices)
        await self.close()

    # -- sending ---------------------------------------------------------------------------------

    async def request(self, message: BaseMessage) -> Any:
        domains = self.domains_for(type(message))
        if not domains:
            return await super().request(message)
        return await self.producer.request(message, self.hub.registry.name_of(type(message)), domains[0])

    async def publish(self, event: BaseMessage) -> None:
        domains = self.domains_for(type(event))
        if domains:
            self.producer.check_open()
            await self.send_event(event, self.hub.registry.name_of(type(event)), domains)
