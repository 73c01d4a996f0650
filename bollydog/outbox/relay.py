"""The transactional outbox and its relay.

With an outbox (``unit_of_work: {outbox: true}`` on the SQLAlchemy adapter), the Events a
handler's transaction raised that another process handles (``hub.transport.serves``) are
written, in the wire format, to the ``bollydog_outbox`` table *in that same transaction*. After
the commit they are published as without an outbox (local handlers and the transport); once the
transport accepted an event its row is deleted. A row whose publication failed (the transport
was down) or never happened (the process died between commit and publish) stays, and the next
start of a hub with that outbox publishes it, with its original id and trace, then deletes it.

Delivery is at least once: a process that dies after the transport accepted an event and
before its row was deleted publishes it again on the next start, with the same message id.
Events that no other process handles never touch the table: local handlers run after the commit
as they always do (in-process, nothing to relay).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from bollydog.context import current_session, get_session, get_hub
from bollydog.errors import TransportError
from bollydog.models.base import BaseMessage, Event
from bollydog.transport import wire

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.models.protocol import TransactionScope
    from bollydog.types import HubT

__all__ = ["Outbox", "OutboxRow", "OutboxStore", "recover_outboxes"]

log = logging.getLogger("bollydog.outbox")


@dataclass(slots=True, frozen=True)
class OutboxRow:
    """One event waiting in an outbox: its message id and its wire fields (JSON)."""

    message_id: str
    fields: str


class OutboxStore(Protocol):
    """Where an outbox keeps its rows (the SQLAlchemy adapter's ``bollydog_outbox`` table)."""

    async def write(self, transaction: Any, rows: Sequence[OutboxRow]) -> None:
        """Add ``rows`` inside ``transaction`` (the handler's own)."""
        ...

    async def pending(self) -> list[OutboxRow]:
        """Every row, oldest first."""
        ...

    async def remove(self, message_ids: Sequence[str]) -> None:
        """Delete the rows of ``message_ids`` (in a transaction of its own)."""
        ...


class Outbox:
    """A unit of work's outbox: stages events in the handler's transaction, deletes their rows
    once the transport accepted them, publishes what is left on start (:meth:`recover`)."""

    def __init__(self, store: OutboxStore) -> None:
        self.store = store
        # message id -> event, from the commit until the hub reports it dispatched.
        self._inflight: dict[str, BaseMessage] = {}
        self._hooked: "HubT | None" = None
        self._removals: set[asyncio.Task[None]] = set()

    async def stage(self, scope: "TransactionScope", transaction: Callable[[], Awaitable[Any]]) -> list[Event]:
        """Before the commit: write the scope's events bound for other processes in the
        scope's ``transaction()`` (begun only when there are some); return them."""
        hub = get_hub()
        if hub is None:
            return []
        events = scope.collect_events()
        # Collected once: the transaction layer reads the same list after the commit.
        scope.events, scope.seen = events, []
        remote = [e for e in events if hub.transport.serves(type(e))]
        if not remote:
            return []
        session = get_session()
        rows = [
            OutboxRow(e.iid, json.dumps(wire.encode(e, hub.registry.name_of(type(e)), session=session)))
            for e in remote
        ]
        await self.store.write(await transaction(), rows)
        # Known before the commit, so that a recovery running meanwhile leaves them alone.
        for event in remote:
            self._inflight[event.iid] = event
        self._listen(hub)
        return remote

    def abandoned(self, events: Iterable[Event]) -> None:
        """The commit failed: nothing was written."""
        for event in events:
            self._inflight.pop(event.iid, None)

    def _listen(self, hub: "HubT") -> None:
        if self._hooked is None:
            hub.hooks.completed.connect(self._completed)
            self._hooked = hub

    def _completed(self, message: BaseMessage, result: Any, error: BaseException | None) -> None:
        if message.iid not in self._inflight:
            return
        del self._inflight[message.iid]
        if not self._inflight and self._hooked is not None:
            # Nobody to watch: the hub's completion report goes back to costing nothing.
            self._hooked.hooks.completed.disconnect(self._completed)
            self._hooked = None
        # A TransportError, or the failure of local handlers that ran after it (its context).
        if isinstance(error, TransportError) or isinstance(getattr(error, "__context__", None), TransportError):
            log.warning(
                "%s (%s) stays in the outbox: the transport refused it (%s); the next start publishes it",
                message.name, message.iid, error,
            )
            return
        task = asyncio.ensure_future(self._remove([message.iid]))
        self._removals.add(task)
        task.add_done_callback(self._removals.discard)

    async def _remove(self, message_ids: Sequence[str]) -> None:
        try:
            await self.store.remove(message_ids)
        except Exception as exc:  # the row stays: published once more on the next start
            log.warning("deleting outbox rows %s failed: %s", ", ".join(message_ids), exc)

    async def flush(self) -> None:
        """Wait for the deletions under way (called when the unit of work disconnects)."""
        if self._removals:
            await asyncio.gather(*self._removals, return_exceptions=True)

    async def recover(self, hub: "HubT") -> int:
        """Publish every row left by an earlier run (not those of events in flight here) and
        delete it; return how many were published. A row that cannot be published stays."""
        published = 0
        for row in await self.store.pending():
            if row.message_id in self._inflight:
                continue
            try:
                envelope = wire.decode(json.loads(row.fields))
                event = wire.build(wire.resolve(hub.registry, envelope.name), envelope)
            except (ValueError, wire.WireError) as exc:
                log.error("outbox row %s cannot be read, left in place: %s", row.message_id, exc)
                continue
            if not hub.transport.serves(type(event)):
                log.warning(
                    "outbox row %s (%s) left in place: no other process handles it in this "
                    "deployment (start a hub whose transport serves it)", row.message_id, envelope.name,
                )
                continue
            token = current_session.set(envelope.session)
            try:
                await hub.transport.publish(event)
            except TransportError as exc:
                log.warning("outbox: publishing %s (%s) failed, left for the next start: %s",
                            envelope.name, row.message_id, exc)
                break
            finally:
                current_session.reset(token)
            await self.store.remove([row.message_id])
            published += 1
        if published:
            log.info("outbox: published %d event(s) left by an earlier run", published)
        return published


async def recover_outboxes(hub: "HubT") -> int:
    """Once the transport runs: each app's outbox publishes what an earlier run left."""
    total = 0
    done: set[int] = set()
    for app in hub.apps.values():
        outbox = getattr(getattr(app.protocol, "unit_of_work", None), "outbox", None)
        if isinstance(outbox, Outbox) and id(outbox) not in done:  # apps may share a unit of work
            done.add(id(outbox))
            total += await outbox.recover(hub)
    return total
