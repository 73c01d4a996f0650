"""Partial results across processes: a remote generator handler's yields reach the caller's stream.

The caller asks for them (``partials`` in the request envelope) only when its message has
:meth:`~bollydog.models.base.BaseMessage.stream` listeners, so a plain request/reply costs
nothing more. The consumer then relays each partial result to the request's ``reply_to`` stream
as a ``kind=partial`` entry numbered ``seq`` 0, 1, 2...; the caller's reply reader hands them to
``message.emit_partial`` in that order, before the final reply resolves the request.

Order is kept by construction, not by sorting at the caller: a relay has at most one batch of
writes in flight, and the reply is sent only once the relay is flushed. ``seq`` lets the caller
drop what a redelivery sends again (the handler re-runs from the start on another consumer).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from bollydog.models.base import BaseMessage
from bollydog.transport import wire

log = logging.getLogger("bollydog.transport.redis")

#: Writes a batch of reply-stream entries, in order (one pipeline).
Write = Callable[[list[dict[str, str]]], Awaitable[Any]]


class PartialRelay:
    """The consumer's end: sends one request's partial results to its caller, in order.

    :meth:`push` is the message's forwarder (``message.forward_partials(relay.push)``): called
    synchronously in the handler's task, it encodes the value at once (what the handler yielded,
    as it was then) and makes sure a sender runs. The sender writes everything pushed meanwhile
    in one batch, waits for it, and repeats until nothing is left. A batch that cannot be
    written is logged and dropped (the caller sees a gap in ``seq``); the reply still follows.
    """

    __slots__ = ("_write", "_message_id", "_entry_id", "_seq", "_pending", "_sender")

    def __init__(self, write: Write, message_id: str, entry_id: str) -> None:
        self._write = write
        self._message_id, self._entry_id = message_id, entry_id
        self._seq = 0
        self._pending: list[dict[str, str]] = []
        self._sender: asyncio.Task[None] | None = None

    def push(self, value: Any) -> None:
        try:
            entry = wire.encode_partial(self._message_id, self._entry_id, self._seq, value)
        except (TypeError, ValueError, RecursionError) as exc:  # never fail the handler for it
            log.warning("partial result %d of %s is not JSON-encodable (%s); not sent", self._seq,
                        self._message_id, exc)
            return
        self._pending.append(entry)
        self._seq += 1
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._write(batch)
            except Exception as exc:  # the caller loses these partial results, not the reply
                log.warning("could not send %d partial result(s) of %s: %s: %s",
                            len(batch), self._message_id, type(exc).__name__, exc)

    async def flush(self) -> None:
        """Return once every partial result pushed so far is written (or given up)."""
        if self._sender is not None:
            await self._sender

    def abort(self) -> None:
        """Stop sending: the delivery was cancelled and will not be answered from here."""
        self._pending.clear()
        if self._sender is not None:
            self._sender.cancel()


@dataclass(slots=True)
class PartialSink:
    """The caller's end: hands a remote handler's partial results to the waiting message."""

    message: BaseMessage
    next_seq: int = 0

    def receive(self, partial: wire.Partial) -> None:
        if partial.seq < self.next_seq:  # sent again by a redelivery that re-ran the handler
            return
        self.next_seq = partial.seq + 1
        self.message.emit_partial(partial.value)
