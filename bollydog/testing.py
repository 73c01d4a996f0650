"""Helpers for testing your own handlers fast, in memory, with the real hub.

    from bollydog.testing import running_hub

    async def test_place_order():
        async with running_hub("shop.handlers", domain="shop") as hub:
            assert await hub.execute(PlaceOrder(...)) == ...
            assert hub.published(OrderPlaced)  # events published while it ran
            assert await hub.drain(5)          # their handlers, run in the background, are done

``FakeProtocol``/``FakeUnitOfWork`` are the in-memory adapters: writes staged per handler,
committed when it returns, discarded when it raises, like a database.

``MemoryTransport`` is the in-memory transport: hubs whose transports share one ``MemoryBroker``
form a split deployment in one process (streams, consumer groups, pending entries, reclaiming,
dead letters, replies), with the Redis transport's behaviour and no Redis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any, TypeVar, overload

from bollydog.adapters.memory import MemoryProtocol as FakeProtocol
from bollydog.adapters.memory import MemoryUnitOfWork as FakeUnitOfWork
from bollydog.context import current_session, get_session, handler_frame
from bollydog.models.base import BaseMessage, Event, Session
from bollydog.models.protocol import Protocol
from bollydog.models.service import AppService
from bollydog.service.app import HubService
from bollydog.transport.memory import MemoryBroker, MemoryTransport

__all__ = [
    "FakeProtocol", "FakeUnitOfWork", "MemoryBroker", "MemoryTransport", "RecordingHub", "running_hub", "handling",
    "as_user",
]


class RecordingHub(HubService):
    """A HubService that remembers every message it was given, for assertions.

    A message is recorded when the hub accepts it (``execute``, ``put_message``, an event
    published by a handler, a domain event published after a commit), not when it runs: events
    published while ``execute`` ran are in :meth:`published` by the time it returns, although
    their handlers may still be running in the background (``await hub.drain(5)`` waits).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.dispatched: list[BaseMessage] = []
        self._recorded: set[str] = set()  # iids: a queued message is dispatched later, once

    def _record(self, message: BaseMessage) -> None:
        if message.iid not in self._recorded:
            self._recorded.add(message.iid)
            self.dispatched.append(message)

    async def execute(self, message: BaseMessage) -> Any:
        # Recorded before it runs, so that it comes before the events its handler publishes.
        self._record(message)
        return await super().execute(message)

    async def put_message(self, message: BaseMessage) -> BaseMessage:
        queued = await super().put_message(message)  # a refused message (queue full) is not kept
        self._record(message)
        return queued

    def publish_nowait(self, event: BaseMessage) -> None:
        # Yielded events and domain events after a commit go through here; the task that runs
        # their handlers starts later, after the publishing handler returned.
        self._record(event)
        super().publish_nowait(event)

    async def dispatch(self, message: BaseMessage) -> Any:
        self._record(message)  # e.g. delivered by a transport
        return await super().dispatch(message)

    @overload
    def published(self) -> list[Event]: ...
    @overload
    def published(self, event_type: type[E]) -> list[E]: ...

    def published(self, event_type: type[Event] = Event) -> list[Any]:
        """Events of ``event_type`` (every event by default) the hub was given, in order."""
        return [m for m in self.dispatched if isinstance(m, event_type)]


E = TypeVar("E", bound=Event)


@asynccontextmanager
async def running_hub(
    *handler_modules: str,
    domain: str = "test",
    protocol: Protocol | None = None,
    apps: Iterable[AppService] = (),
    handlers: Iterable[Any] = (),
    **hub_options: Any,
) -> AsyncIterator[RecordingHub]:
    """A started :class:`RecordingHub` serving ``handler_modules`` as app ``domain``.

    ``protocol`` defaults to a fresh :data:`FakeProtocol` (pass another adapter's protocol to
    test against it); ``handlers`` registers functions directly (same app); ``apps`` adds fully
    built apps; other keywords go to :class:`HubService`. Stopped (and drained) on exit.
    """
    app = AppService.create_from(
        domain=domain, handlers=handler_modules, protocol=protocol if protocol is not None else FakeProtocol()
    )
    hub = RecordingHub(apps=[app, *apps], **hub_options)
    if handlers:
        hub.register(*handlers, app=app)
    async with hub:
        yield hub


@contextmanager
def handling(
    message: BaseMessage, *, hub: HubService | None = None, app: AppService | None = None
) -> Iterator[BaseMessage]:
    """Call a handler function directly, with ``bollydog.globals`` set as the hub would."""
    protocol = app.protocol if app is not None else None
    token = handler_frame.set((message, app, protocol, hub))
    try:
        yield message
    finally:
        handler_frame.reset(token)


@contextmanager
def as_user(username: str, **data: Any) -> Iterator[Session | None]:
    """Run the enclosed code with a session for ``username`` (what an entrypoint would set)."""
    token = current_session.set(Session(username=username, data=data))
    try:
        yield get_session()
    finally:
        current_session.reset(token)
