"""The consumer's handling of one stream entry, shared by every stream transport.

:meth:`Deliverer.deliver` is the whole of it: decode the envelope, refuse what this process does
not take, drop what expired, rebuild the message under the sender's session, run it (a command's
partial results relayed as they come), reply, acknowledge. What is stored where is left to the
transport (a template method, like cosmicpython's repositories): :meth:`Deliverer.finish`
replies and acknowledges, :meth:`Deliverer.store_dead_letter` sets an entry aside,
:meth:`Deliverer.reply_writer` writes partial results, and :meth:`Deliverer.dedup_key` /
:meth:`Deliverer.recall` remember handled ids when the transport can.

A handler exception is a reply, not a redelivery. An entry that cannot be handled here (not an
envelope, an unknown or refused name, no handler) goes to the dead letters, with an error reply
when it has a ``reply_to``. A delivery cut by the hub's shutdown is left unacknowledged: another
consumer of the group reclaims it.
"""

from __future__ import annotations

import abc
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bollydog.context import current_session, new_trace_id
from bollydog.errors import EventHandlersError, HubNotRunningError
from bollydog.hub.hooks import DeadLetter
from bollydog.models.base import BaseMessage, Event
from bollydog.names import MessageFilter
from bollydog.transport import wire
from bollydog.transport.partials import PartialRelay, Write

if TYPE_CHECKING:  # pragma: no cover
    from bollydog.hub.transport import TransportHost

__all__ = ["Acceptance", "Deliverer", "Entry"]

log = logging.getLogger("bollydog.transport")


@dataclass(slots=True)
class Entry:
    """A stream entry read by a consumer: where it came from and its fields."""

    stream: str
    domain: str  # the consumer group: the domain whose stream carried it
    entry_id: str
    fields: dict[str, str]


class Acceptance:
    """Which ``domain.name`` this process takes from the transport (``accept``/``reject``),
    answered once per name."""

    __slots__ = ("_filter", "_answers")

    def __init__(self, message_filter: MessageFilter) -> None:
        self._filter = message_filter
        self._answers: dict[str, bool] = {}

    def __call__(self, name: str) -> bool:
        accepted = self._answers.get(name)
        if accepted is None:
            accepted = self._answers[name] = self._filter.allows(name)
        return accepted


class Deliverer(abc.ABC):
    """Handles the entries of a transport's consumers for ``hub``; ``consumer`` is this process's
    name in the groups (it appears in dead letters); ``max_deliveries`` bounds the deliveries of
    an entry, its ``delivery_count`` included (the hub's retries within one delivery)."""

    def __init__(
        self, hub: "TransportHost", consumer: str, accepts: Acceptance, max_deliveries: int | None = None
    ) -> None:
        self.hub = hub
        self.consumer = consumer
        self.accepts = accepts
        self.max_deliveries = max_deliveries

    # -- what each transport fills in ----------------------------------------------------------

    @abc.abstractmethod
    async def finish(
        self, entry: Entry, reply_to: str | None, reply: dict[str, str] | None, dedup_key: str | None
    ) -> None:
        """Send ``reply`` to ``reply_to`` (when both are given), remember the outcome under
        ``dedup_key`` (when given), acknowledge and delete the entry; never raises."""

    @abc.abstractmethod
    async def store_dead_letter(
        self, entry: Entry, letter: dict[str, str], reply_to: str | None, reply: dict[str, str] | None
    ) -> str | None:
        """Add ``letter`` to the dead letters, send ``reply`` (when given) and acknowledge the
        entry, together; the dead letter's id (what ``bollydog deadletters`` lists and
        replays), or None (logged) when that failed and the entry stays pending."""

    @abc.abstractmethod
    def reply_writer(self, reply_to: str) -> Write:
        """Writes a batch of partial-result entries to ``reply_to``, in order."""

    def dedup_key(self, entry: Entry, message_id: str) -> str | None:
        """Where the outcome of a handled id is remembered; None: not remembered (the default)."""
        return None

    async def recall(self, dedup_key: str) -> tuple[bool, dict[str, str] | None]:
        """``(True, its reply)`` when ``dedup_key`` records an earlier handling."""
        return False, None

    # -- the delivery ------------------------------------------------------------------------------

    async def deliver(self, entry: Entry) -> None:
        """Handle ``entry`` from decoding to acknowledgement; never raises for a bad entry."""
        try:
            envelope = wire.decode(entry.fields)
        except wire.WireError as exc:
            await self.dead_letter(entry, str(exc), exc)
            return
        if envelope.id is None:
            envelope.id = new_trace_id()
        reply_to = envelope.reply_to
        dedup_key = self.dedup_key(entry, envelope.id)
        if dedup_key is not None:
            handled, cached = await self.recall(dedup_key)
            if handled:  # a redelivery or a producer's retry
                log.info("%s (%s) already handled; answering from the dedup record", envelope.name, envelope.id)
                await self.finish(entry, reply_to, cached, None)
                return
        if not self.accepts(envelope.name):
            await self.dead_letter(
                entry, f"{envelope.name} is not accepted by consumer {self.consumer} (accept/reject options)",
                wire.WireError(f"{envelope.name} is not accepted from the transport here"), envelope.id,
            )
            return
        if envelope.deadline is not None and time.time() > envelope.deadline:
            log.warning("%s (%s) expired before it was delivered; dropped", envelope.name, envelope.id)
            expired = wire.encode_error_reply(
                envelope.id, entry.entry_id, "bollydog.errors.HandlerTimeoutError", "expired before it was delivered"
            )
            await self.finish(entry, reply_to, expired, None)
            return
        hub = self.hub
        reply: dict[str, str] | None = None
        token = current_session.set(envelope.session)
        try:
            try:
                message = wire.build(wire.resolve(hub.registry, envelope.name), envelope, self.max_deliveries)
            except wire.WireError as exc:
                await self.dead_letter(entry, str(exc), exc, envelope.id)
                return
            if isinstance(message, Event):
                await self._run_event(entry.domain, message)
            elif hub.registry.command_handler(type(message)) is None:
                await self.dead_letter(
                    entry, f"no handler for {envelope.name} in this process",
                    wire.WireError(f"no handler for {envelope.name} in consumer {self.consumer}"), envelope.id,
                )
                return
            else:
                relay = None
                if envelope.partials and reply_to:
                    relay = PartialRelay(self.reply_writer(reply_to), envelope.id, entry.entry_id)
                    message.forward_partials(relay.push)
                try:
                    try:
                        result = await hub.execute(message)
                    except HubNotRunningError:
                        # This process is stopping: leave the entry pending (unacknowledged) so
                        # that another consumer of the group reclaims and runs it.
                        return
                    except Exception as exc:  # the caller gets it back (wire.encode_reply)
                        if reply_to:
                            reply = wire.encode_reply(envelope.id, entry.entry_id, error=exc)
                        else:
                            log.error("%s (%s) from the transport failed: %s: %s", envelope.name, envelope.id,
                                      type(exc).__name__, exc)
                    else:
                        if reply_to:
                            reply = wire.encode_reply(envelope.id, entry.entry_id, result)
                    if relay is not None:
                        await relay.flush()  # every partial result reaches the caller before the reply
                finally:
                    if relay is not None:
                        relay.abort()  # nothing left once flushed; else (cancelled) stop sending
        finally:
            current_session.reset(token)
        await self.finish(entry, reply_to, reply, dedup_key)

    async def _run_event(self, domain: str, event: BaseMessage) -> None:
        # Only the handlers of the domain whose stream carried it: a process hosting two
        # domains that both handle the event receives it once per domain.
        handlers = tuple(
            h for h in self.hub.registry.event_handlers(type(event)) if getattr(h.app, "domain", None) == domain
        )
        if not handlers:
            return
        try:
            await self.hub.run_event_handlers(event, handlers)
        except EventHandlersError:
            pass  # each failure was logged by the hub; an event has no reply

    async def dead_letter(
        self, entry: Entry, reason: str, error: BaseException | None = None, message_id: str | None = None
    ) -> None:
        """Set ``entry`` aside with ``reason``; its caller, if any, gets ``error`` as the reply,
        under ``message_id`` (the id generated for an entry that had none). Reported through
        ``hub.hooks.dead_lettered`` once stored."""
        fields = entry.fields
        letter = {k: v for k, v in fields.items() if not k.startswith("dl_")}
        letter.update(
            dl_reason=reason, dl_stream=entry.stream, dl_group=entry.domain, dl_entry=entry.entry_id,
            dl_time=repr(time.time()), dl_consumer=self.consumer,
        )
        reply_to = fields.get("reply_to") or None
        reply = None
        if reply_to and error is not None:
            reply = wire.encode_reply(message_id or fields.get("id") or "", entry.entry_id, error=error)
        dead_letter_id = await self.store_dead_letter(entry, letter, reply_to, reply)
        if dead_letter_id is None:
            return
        # The dead letter's id first: it is the one ``bollydog deadletters list`` shows and
        # ``replay --id`` takes; the source entry's id is gone from its stream once acknowledged.
        log.error("dead letter %s (was entry %s of %s): %s", dead_letter_id, entry.entry_id, entry.stream, reason)
        hooks = self.hub.hooks
        if hooks.dead_lettered:
            hooks.dead_lettered(DeadLetter(self._known_name(fields.get("name")), entry.domain, reason))

    def _known_name(self, name: Any) -> str:
        """A registered message's canonical name, else "unknown": names from outside producers
        must not become metric attributes (unbounded cardinality)."""
        try:
            registry = self.hub.registry
            return registry.name_of(wire.resolve(registry, str(name)))
        except (wire.WireError, AttributeError):
            return "unknown"
