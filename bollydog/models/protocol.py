"""Persistence ports: :class:`UnitOfWork` (transaction scope) and :class:`Protocol` (repository).

The hub opens one unit-of-work *scope* around every handler execution of an app that has a
protocol. The transaction inside it starts lazily, the first time the handler touches the
protocol, commits when the handler returns and rolls back when it raises or times out. Domain
events raised by objects the protocol saw (``BaseDomain.raise_event``) or recorded with
:meth:`UnitOfWork.record_event` are handed to the hub only after the commit succeeded.

Nested commands (yielded by a generator handler, or executed from a handler) get scopes of their
own, so each commits or rolls back on its own; the parent's transaction is not shared.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
import typing
from typing import Any, ClassVar

from bollydog.models.base import BaseDomain, Event

log = logging.getLogger("bollydog.uow")


class TransactionScope:
    """What one handler execution did through a unit of work."""

    __slots__ = ("transaction", "started", "seen", "events", "result")

    def __init__(self) -> None:
        self.transaction: Any = None
        self.result: Any = None  # what the handler returned, set before the commit
        self.started = False
        self.seen: list[Any] = []
        self.events: list[Event] = []

    def collect_events(self) -> list[Event]:
        if not self.events and not self.seen:  # most handlers raise none
            return []
        events = list(self.events)
        for obj in self.seen:
            events.extend(obj.collect_events())
        return events


class Inbox(typing.Protocol):
    """Which handler handled which Event already, in the unit of work's own database: an Event
    delivered again (an outbox that published it twice, a transport's redelivery) is not
    handled again by a handler whose transaction recorded it."""

    async def seen(self, message_id: str, handler: str) -> bool:
        """True when ``handler`` committed its handling of ``message_id``."""
        ...

    async def mark(self, transaction: Any, message_id: str, handler: str) -> None:
        """Record the handling inside ``transaction``; :class:`DuplicateDelivery` when another
        transaction recorded it first (that one's handling stands; roll this one back)."""
        ...


class DuplicateDelivery(Exception):
    """This handling of an Event lost to another that recorded it first in the inbox."""


class UnitOfWork:
    """A connection and its transactions. Subclass and implement the four adapter hooks.

    ``connect``/``disconnect`` run when the owning AppService starts and stops;
    ``begin``/``commit``/``rollback`` bracket one handler execution that used the protocol.
    Constructor keyword arguments come from the ``unit_of_work`` section of the config.
    """

    #: Handled Events, when the adapter keeps them (the SQLAlchemy adapter's ``inbox: true``).
    inbox: Inbox | None = None

    def __init__(self, **options: Any) -> None:
        self.options = options
        self._scope: ContextVar[TransactionScope | None] = ContextVar(
            f"bollydog.uow.{id(self):x}", default=None
        )

    # -- adapter hooks --------------------------------------------------------------------

    async def connect(self) -> None:
        """Open pools, create tables; called once at start-up."""

    async def disconnect(self) -> None:
        """Release every connection; called once at shutdown."""

    async def begin(self) -> Any:
        """Start a transaction and return its handle (a session, a connection, ...)."""
        return None

    async def commit(self, transaction: Any) -> None:
        """Make the transaction's writes durable."""

    async def rollback(self, transaction: Any) -> None:
        """Discard the transaction's writes."""

    # -- used by the hub and by protocols ---------------------------------------------------

    def scope(self) -> "_ScopeContext":
        """One handler execution: ``async with uow.scope() as scope``. Commits on exit, rolls
        back on an exception; events are read from the scope after the commit."""
        return _ScopeContext(self)

    def in_handler(self) -> bool:
        """True while a hub-managed scope (a handler execution) is active in this context."""
        return self._scope.get() is not None

    async def transaction(self) -> Any:
        """The current handler's transaction, begun on first use."""
        scope = self._scope.get()
        if scope is None:
            raise RuntimeError(
                "no unit-of-work scope: call the protocol from a handler, or wrap the calls in "
                "'async with unit_of_work.scope():' (or use unit_of_work.operation())"
            )
        if not scope.started:
            scope.transaction = await self.begin()
            scope.started = True
        return scope.transaction

    @asynccontextmanager
    async def operation(self) -> AsyncIterator[Any]:
        """The transaction one protocol call works in.

        Inside a handler: the handler's transaction. Outside (a script, a test's assertions):
        a transaction of its own, committed when the block ends, rolled back if it raises.
        """
        if self._scope.get() is not None:
            yield await self.transaction()
            return
        transaction = await self.begin()
        try:
            yield transaction
        except BaseException:
            await self._rollback_quietly(transaction)
            raise
        await self.commit(transaction)

    async def _rollback_quietly(self, transaction: Any) -> None:
        # The caller must see the handler's exception, not a failure to roll back after it.
        try:
            await self.rollback(transaction)
        except Exception:
            log.exception("%s: rollback failed (the original error is raised)", type(self).__name__)

    def record_event(self, event: Event) -> None:
        """Publish ``event`` after the current transaction commits (dropped on rollback)."""
        scope = self._scope.get()
        if scope is None:
            raise RuntimeError("record_event() needs a running handler (no unit-of-work scope)")
        scope.events.append(event)

    def saw(self, obj: Any) -> None:
        """Track a domain object so that the events it raises are published after commit.

        Any object with a ``collect_events()`` method qualifies: a :class:`BaseDomain`, or an
        ORM-mapped class using an events mixin.
        """
        scope = self._scope.get()
        if scope is not None and (
            isinstance(obj, BaseDomain) or callable(getattr(obj, "collect_events", None))
        ):
            scope.seen.append(obj)


class _ScopeContext:
    """``UnitOfWork.scope()``: written out as a class because it wraps every handler execution
    of an app with a protocol, and a generator-based context manager costs twice as much."""

    __slots__ = ("unit_of_work", "scope", "token")

    def __init__(self, unit_of_work: UnitOfWork) -> None:
        self.unit_of_work = unit_of_work
        self.scope = TransactionScope()

    async def __aenter__(self) -> TransactionScope:
        self.token = self.unit_of_work._scope.set(self.scope)
        return self.scope

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        scope, unit_of_work = self.scope, self.unit_of_work
        try:
            if exc_type is not None:
                if scope.started:
                    await unit_of_work._rollback_quietly(scope.transaction)
                scope.collect_events()  # events of rolled-back changes must not surface later
            elif scope.started:
                await unit_of_work.commit(scope.transaction)
        finally:
            unit_of_work._scope.reset(self.token)


class Protocol:
    """The repository a handler calls. Subclass it with your domain's operations.

    The base class only binds a :class:`UnitOfWork`; adapters add the CRUD surface.
    """

    #: The unit of work this protocol makes of its own keyword options when given none (the
    #: shorthand of a config with a ``protocol`` section only): a config checks them against it.
    unit_of_work_class: ClassVar[type[UnitOfWork] | None] = None

    def __init__(self, unit_of_work: UnitOfWork | None = None, **options: Any) -> None:
        self.unit_of_work = unit_of_work if unit_of_work is not None else UnitOfWork()
        self.options = options

    async def connect(self) -> None:
        await self.unit_of_work.connect()

    async def disconnect(self) -> None:
        await self.unit_of_work.disconnect()
