"""The caller's end of request/reply, shared by every stream transport.

:meth:`Requester.request` sends a command's envelope (with this process's reply stream as
``reply_to``) and waits for the reply with the same message id, at most the message's
``expire_time``; whatever reads the reply stream hands each entry to :meth:`Requester.receive`.
Partial results (``kind=partial`` entries) go to the message's stream listeners first. A
command whose domain has no live consumer is refused before anything is sent
(:class:`~bollydog.errors.NoConsumerError`) unless it waits for one. How an envelope is sent and
how liveness is known is left to the transport (:meth:`Requester.send`,
:meth:`Requester.has_consumer`, :meth:`Requester.fresh`, :meth:`Requester.forget`).

Requests are taken between :meth:`Requester.open` (the transport started) and
:meth:`Requester.close` (it stopped: whoever still waits gets a :class:`TransportError`).
"""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from typing import Any

from bollydog.context import get_session
from bollydog.errors import HandlerTimeoutError, NoConsumerError, TransportError
from bollydog.models.base import BaseMessage
from bollydog.settings import get_settings
from bollydog.transport import wire
from bollydog.transport.partials import PartialSink

__all__ = ["Requester", "outcome"]

log = logging.getLogger("bollydog.transport")


def outcome(reply: dict[str, str]) -> Any:
    """A reply's result, or its error raised."""
    ok, value = wire.decode_reply(reply)
    if ok:
        return value
    raise value


class Requester(abc.ABC):
    """Requests in flight, by message id, and how a transport sends them. ``name`` names the
    transport in errors ("the Redis transport")."""

    def __init__(self, name: str, *, wait_for_consumer: bool = False) -> None:
        self.name = name
        #: Queue every command even when its domain has no live consumer (the option).
        self.wait_for_consumer = wait_for_consumer
        self._waiting: dict[str, asyncio.Future[dict[str, str]]] = {}
        self._sinks: dict[str, PartialSink] = {}  # message id -> its caller, for requests streamed
        self._closed: TransportError | None = TransportError(f"{name} is not running: it starts with its hub")

    # -- what each transport fills in ----------------------------------------------------------

    @property
    @abc.abstractmethod
    def reply_to(self) -> str:
        """The stream this process reads its replies from."""

    @abc.abstractmethod
    async def send(self, message: BaseMessage, domain: str, fields: dict[str, str]) -> None:
        """Add the envelope ``fields`` to ``domain``'s stream; :class:`TransportError` when it
        cannot be sent."""

    @abc.abstractmethod
    async def has_consumer(self, message: BaseMessage, domain: str) -> bool:
        """Whether some process consumes ``domain`` now; :class:`TransportError` (about sending
        ``message``) when that cannot be known."""

    def fresh(self, domain: str) -> bool:
        """A recent :meth:`has_consumer` said yes (no round trip needed); False by default."""
        return False

    def forget(self, domain: str) -> None:
        """A request to ``domain`` failed: what is known of its liveness is stale."""

    # -- lifecycle -------------------------------------------------------------------------------

    def open(self) -> None:
        """Take requests (the transport started)."""
        self._closed = None

    def close(self, error: TransportError) -> None:
        """Take no more requests; those waiting get ``error`` (the transport stopped)."""
        self._closed = TransportError(f"{self.name} is not running: it stopped with its hub")
        self.fail_waiting(error)

    def check_open(self) -> None:
        """Raise :class:`TransportError` unless requests (and events) are taken now."""
        if self._closed is not None:
            raise self._closed

    # -- the request -----------------------------------------------------------------------------

    async def request(self, message: BaseMessage, name: str, domain: str) -> Any:
        """Send ``message`` (canonical name ``name``) to ``domain`` and return its result, or
        raise its error; :class:`HandlerTimeoutError` after its ``expire_time``."""
        self.check_open()
        limit = message.expire_time or get_settings().command_expire_time
        iid = message.iid
        pending = self._waiting.get(iid)
        if pending is not None and not pending.done():
            # The same message is already on its way (sent twice concurrently): share its reply
            # rather than sending it again or orphaning the first caller.
            return await self._share(pending, message, domain, limit)
        # Partial results come back only when someone listens: plain request/reply stays as it was.
        streamed = message.has_stream_listeners()
        fields = wire.encode(
            message, name, reply_to=self.reply_to, deadline=time.time() + limit,
            session=get_session(), partials=streamed,
        )
        future: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        self._waiting[iid] = future
        if streamed:
            self._sinks[iid] = PartialSink(message)
        try:
            async with asyncio.timeout(limit):
                try:
                    if not (self.wait_for_consumer or message.wait_for_consumer or self.fresh(domain)):
                        if not await self.has_consumer(message, domain):
                            raise self._no_consumer(message, domain)
                    await self.send(message, domain, fields)
                except TransportError as exc:
                    if not future.done():  # a caller sharing the request: no reply will come
                        future.set_exception(exc)
                    raise
                reply = await future
        except TimeoutError:
            self.forget(domain)  # its consumers may be gone: the next request checks
            raise HandlerTimeoutError(
                f"{message.domain}.{message.name} ({iid}) got no reply from domain '{domain}' within {limit}s"
            ) from None
        except TransportError:
            self.forget(domain)
            raise
        finally:
            if self._waiting.get(iid) is future:
                del self._waiting[iid]
            if streamed:
                self._sinks.pop(iid, None)
            if future.done() and not future.cancelled():
                future.exception()  # failed by the reply reader after the send failed: retrieved
        return outcome(reply)

    def _no_consumer(self, message: BaseMessage, domain: str) -> NoConsumerError:
        return NoConsumerError(
            f"{message.domain}.{message.name} was not sent: no process is consuming domain "
            f"'{domain}' now. Start one (bollydog service --config ... --include {domain}) and "
            "retry, or set wait_for_consumer = True on the command class to queue it until one comes"
        )

    async def _share(
        self, pending: asyncio.Future[dict[str, str]], message: BaseMessage, domain: str, limit: float
    ) -> Any:
        try:
            async with asyncio.timeout(limit):
                reply = await asyncio.shield(pending)  # our timeout must not cancel the first caller
        except TimeoutError:
            raise HandlerTimeoutError(
                f"{message.domain}.{message.name} ({message.iid}) got no reply from domain '{domain}' within {limit}s"
            ) from None
        return outcome(reply)

    # -- replies ---------------------------------------------------------------------------------

    def receive(self, fields: dict[str, str]) -> None:
        """An entry of the reply stream: a partial result, or the reply that ends a request."""
        if wire.is_partial(fields):
            sink = self._sinks.get(fields.get("id", ""))
            if sink is None:  # its request completed or gave up: nobody listens any more
                return
            try:
                sink.receive(wire.decode_partial(fields))
            except wire.WireError as exc:  # from a foreign consumer; the reply still comes
                log.warning("ignored a partial result of %s: %s", fields.get("id"), exc)
            return
        future = self._waiting.pop(fields.get("id", ""), None)
        if future is not None and not future.done():
            future.set_result(fields)

    def fail_waiting(self, error: BaseException) -> None:
        """Every request waiting for its reply gets ``error`` (the reply stream was lost)."""
        waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            if not future.done():
                future.set_exception(error)
