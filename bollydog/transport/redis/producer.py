"""The Redis transport's producer side: requests and their replies, publishing events.

A request is an XADD to the domain's stream (its band) with ``reply_to`` = this process's reply
stream; :class:`ReplyReader`, one per process, reads that stream (``XREAD BLOCK``) and resolves
the waiting request by message id (see :mod:`bollydog.transport.requests`). Before sending, the
producer asks :class:`~bollydog.transport.liveness.Liveness` whether the domain has a live
consumer (a cached yes costs nothing). Writes go through the coalescer: what concurrent tasks
send in one loop iteration shares one round trip.
"""

from __future__ import annotations

import asyncio
import logging

from bollydog.context import get_session
from bollydog.errors import TransportError
from bollydog.models.base import BaseMessage
from bollydog.transport import wire
from bollydog.transport.liveness import Liveness
from bollydog.transport.redis.connections import NETWORK_ERRORS, Backoff, Connections, Outage, ReaderService
from bollydog.transport.redis.options import Keys, RedisOptions
from bollydog.transport.requests import Requester

__all__ = ["RedisProducer", "ReplyReader"]

log = logging.getLogger("bollydog.transport.redis")

#: Seconds between renewals of the reply stream's expiry (a dead caller's stream expires).
_REFRESH_EVERY = 60.0
_REPLY_TTL = 3600


class RedisProducer(Requester):
    """Sends requests and events to the domains' streams."""

    def __init__(self, connections: Connections, keys: Keys, options: RedisOptions, liveness: Liveness) -> None:
        super().__init__("the Redis transport", wait_for_consumer=options.wait_for_consumer)
        self.connections = connections
        self.keys = keys
        self.options = options
        self.liveness = liveness

    @property
    def reply_to(self) -> str:
        return self.keys.reply

    def fresh(self, domain: str) -> bool:
        return self.liveness.fresh(domain)

    def forget(self, domain: str) -> None:
        self.liveness.forget(domain)

    async def has_consumer(self, message: BaseMessage, domain: str) -> bool:
        try:
            return await self.liveness.check(self.connections.writes, domain)
        except NETWORK_ERRORS as exc:
            raise self._send_error(message, domain, exc) from exc

    async def send(self, message: BaseMessage, domain: str, fields: dict[str, str]) -> None:
        try:
            await self.connections.writes.run((
                "xadd", (self.keys.stream(domain, self.options.band(message.priority)), fields),
                {"maxlen": self.options.maxlen, "approximate": True},
            ))
        except NETWORK_ERRORS as exc:
            raise self._send_error(message, domain, exc) from exc

    def _send_error(self, message: BaseMessage, domain: str, exc: BaseException) -> TransportError:
        return TransportError(
            f"cannot send {message.domain}.{message.name} to domain '{domain}' "
            f"through Redis ({self.options.url}): {type(exc).__name__}: {exc}"
        )

    async def publish(self, event: BaseMessage, name: str, domains: tuple[str, ...]) -> None:
        """XADD ``event`` (canonical name ``name``) to each of ``domains``' streams, in one round
        trip; :class:`TransportError` when Redis cannot be reached."""
        fields = wire.encode(event, name, session=get_session())
        band = self.options.band(event.priority)
        try:
            await self.connections.writes.run(*(
                ("xadd", (self.keys.stream(domain, band), fields), {"maxlen": self.options.maxlen, "approximate": True})
                for domain in domains
            ))
        except NETWORK_ERRORS as exc:
            raise TransportError(
                f"cannot publish {event.domain}.{event.name} to {', '.join(domains)} through Redis "
                f"({self.options.url}): {type(exc).__name__}: {exc}"
            ) from exc


class ReplyReader(ReaderService):
    """Reads this process's reply stream and hands each entry to the producer; it runs until
    the transport's in-flight handlers are done, so their own requests get their replies."""

    # A reply is not checked as an envelope is: what is not UTF-8 in it reads as U+FFFD.
    encoding_errors = "replace"

    def __init__(self, connections: Connections, producer: RedisProducer) -> None:
        super().__init__(connections, "replies")
        self.producer = producer

    async def run(self) -> None:
        producer, options = self.producer, self.connections.options
        key = producer.reply_to
        last = "0-0"  # the reply key is this process's own: everything in it is for us
        backoff = Backoff(options.reconnect_backoff, options.reconnect_backoff_max)
        outage = Outage("reply reader")
        loop = asyncio.get_running_loop()
        refreshed = 0.0
        while not self.stopping():
            try:
                response = await self.reader.read("xread", {key: last}, count=512, block=options.block_ms)
                if loop.time() - refreshed > _REFRESH_EVERY:
                    refreshed = loop.time()
                    async with self.connections.bounded():
                        await self.connections.client.expire(key, _REPLY_TTL)
            except NETWORK_ERRORS as exc:
                if self.stopping():
                    return
                producer.fail_waiting(TransportError(
                    f"lost the connection to Redis ({options.url}) while waiting for replies: {exc}"
                ))
                delay = backoff.next()
                outage.failed(exc, delay)
                await self.sleep(delay)
                continue
            backoff.reset()
            outage.recovered()
            received = False
            for _, entries in response or ():
                for entry_id, fields in entries:
                    last = entry_id
                    received = True
                    producer.receive(fields)
            if received:
                # The callers just answered resume (and send their next requests) before this
                # loop spends its time on the next read.
                await asyncio.sleep(0)
